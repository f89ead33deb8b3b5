"""What a run's log.txt says about its set-up: one seed, the one in force, and the FastReID
release that is installed (the 1.4.0 wheel's own ``__version__`` still says 1.3)."""
import argparse
import importlib.metadata
import random
import re

import numpy as np
import torch

import fastreid
from sfsc.fastreid.run_setup import setup_run


def test_the_log_names_one_seed_and_the_installed_fastreid(sfsc_cfg, tmp_path):
    sfsc_cfg.OUTPUT_DIR = str(tmp_path)
    sfsc_cfg.SEED = 7
    stated = fastreid.__version__
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        setup_run(sfsc_cfg, argparse.Namespace(config_file=""))
        drawn = torch.rand(3)
        torch.manual_seed(7)
        assert torch.equal(drawn, torch.rand(3))  # the seed the log names is the one in force
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
    text = (tmp_path / "log.txt").read_text()
    assert "random seed" not in text  # FastReID's own, replaced at once, is not reported
    assert re.findall(r"\bSeed \d+", text) == ["Seed 7"]
    release = importlib.metadata.version("fastreid")
    assert re.search(rf"^fastreid\s+{re.escape(release)} @", text, re.MULTILINE), text[:2000]
    assert fastreid.__version__ == stated  # only the log's table was changed
    assert (tmp_path / "seed.txt").read_text() == "7\n"
