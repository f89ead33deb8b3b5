"""SFSC's core claim in miniature, cheap enough for a test: does one switchable training make a
0.25x sub-model's queries retrieve from the full model's gallery, where a 0.25x model trained
on its own cannot (scored against the same full model, which its training never saw)?

The runs use ``SyntheticReIDEasy`` at 32x16 pixels, 30 epochs of 8 iterations (240 steps on
the CPU, about 40 s each). :func:`compare` scores them against each other and against chance.
"""
from __future__ import annotations

import multiprocessing
import os
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch

from fastreid.config import get_cfg

from ...config import add_sfsc_config
from ...engine import SFSCTrainer
from ...evaluation import evaluate_compatibility
from ...evaluation.model_set import ModelEntry, evaluate_model_set, load_trained_config

__all__ = ["EPOCHS", "train_small", "train_small_many", "compare", "own_map"]

EPOCHS = 30  # 32 identities x ~9 images, batches of 32: 8 iterations per epoch, 240 steps
DATASET = "SyntheticReIDEasy"


def train_small(config_file: str, output_dir: str, seed: int = 0,
                opts: Sequence[str] = ()) -> str:
    """Train ``config_file`` at the learning-check scale into ``output_dir`` -> output_dir."""
    cfg = get_cfg()
    add_sfsc_config(cfg)
    cfg.merge_from_file(config_file)
    cfg.merge_from_list([
        "DATASETS.NAMES", f'("{DATASET}",)', "DATASETS.TESTS", f'("{DATASET}",)',
        "INPUT.SIZE_TRAIN", "[32,16]", "INPUT.SIZE_TEST", "[32,16]", "INPUT.PADDING.SIZE", "2",
        "SOLVER.IMS_PER_BATCH", "32", "SOLVER.MAX_EPOCH", str(EPOCHS),
        "SOLVER.STEPS", f"[{EPOCHS - 3}]", "SOLVER.WARMUP_ITERS", "20",
        "SOLVER.CHECKPOINT_PERIOD", str(EPOCHS), "TEST.EVAL_PERIOD", str(EPOCHS),
        "DATALOADER.NUM_WORKERS", "0", "MODEL.DEVICE", "cpu", "SFSC.LOG_PERIOD", "50",
        "OUTPUT_DIR", output_dir, "SEED", str(seed), *opts])
    cfg.freeze()
    os.makedirs(output_dir, exist_ok=True)
    torch.manual_seed(seed)
    np.random.seed(seed)
    trainer = SFSCTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    return output_dir


Job = Tuple[str, str, int, Sequence[str]]  # train_small's (config_file, output_dir, seed, opts)


def _train_job(job: Job) -> str:
    # One thread per process, as the measured numbers were taken: thread count changes rounding.
    torch.set_num_threads(1)
    return train_small(*job)


def train_small_many(jobs: Sequence[Job], processes: int = 2) -> List[str]:
    """:func:`train_small` for each job, ``processes`` at a time, one thread each -> output dirs.

    Each run gets a fresh process, so its result depends on its own job only: runs made one
    after another in one process differ (state carried between them), fresh ones repeat bit
    for bit.
    """
    # spawn: a fresh interpreter per worker, never a fork of a process holding threads / loaders
    with multiprocessing.get_context("spawn").Pool(processes, maxtasksperchild=1) as pool:
        return pool.map(_train_job, jobs, chunksize=1)


def compare(switchable_dir: str, separate_dir: str, width: float = 0.25) -> Dict[str, float]:
    """mAP (%) of: the switchable run's q``width``/g1.0 (``cross``) and 1.0/1.0 (``full``); the
    separately trained ``width`` model alone (``own``) and against the switchable full model's
    gallery (``independent``); random features (``chance``)."""
    cfg = load_trained_config(separate_dir)
    loader, num_query = SFSCTrainer.build_test_loader(cfg, DATASET)
    # One matrix over the three models, so that each one's features are extracted once.
    result = evaluate_model_set([ModelEntry("sub", switchable_dir, width),
                                 ModelEntry("full", switchable_dir, 1.0),
                                 ModelEntry("separate", separate_dir, width)], loader, num_query)
    # Identities and cameras come from the test set's records: no image is read for them.
    items = loader.dataset.img_items
    pids = np.array([item[1] for item in items])
    cams = np.array([item[2] for item in items])
    rng = np.random.default_rng(0)
    chance = evaluate_compatibility(
        {0: rng.normal(size=(num_query, 64))}, {0: rng.normal(size=(len(pids) - num_query, 64))},
        pids[:num_query], cams[:num_query], pids[num_query:], cams[num_query:])

    def mean_ap(query: str, gallery: str) -> float:
        return result.cell(query, gallery)["mAP"]

    return {"cross": mean_ap("sub", "full"), "full": mean_ap("full", "full"),
            "sub_own": mean_ap("sub", "sub"), "own": mean_ap("separate", "separate"),
            "independent": mean_ap("separate", "full"),
            "chance": chance.cell(0, 0)["mAP"]}


def own_map(output_dir: str, width: float = 1.0) -> float:
    """mAP (%) of a trained model at ``width`` with itself (query and gallery)."""
    cfg = load_trained_config(output_dir)
    loader, num_query = SFSCTrainer.build_test_loader(cfg, DATASET)
    result = evaluate_model_set([ModelEntry(width, output_dir, width)], loader, num_query)
    return result.to_json()["mAP"][0][0]
