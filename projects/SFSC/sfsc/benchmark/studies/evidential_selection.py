"""Stage 2a of the evidential-loss selection: each candidate in the real network, small scale.

Per seed: a unified 0.25x and a unified 1.0x model, then one SFSC run (widths {0.25, 1.0}) per
candidate, all at the learning-check scale (:mod:`sfsc.benchmark.studies.learning_check`). A
finished run's record (``<out>/<candidate>_seed<s>.json``) is reused, so an interrupted
selection resumes. The rule that turns records into a choice is PROTOCOL.md's, not code.
"""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Dict, List, Sequence

from .evidential_candidates import config_overrides
from .learning_check import DATASET, compare, own_map, train_small

logger = logging.getLogger(__name__)

__all__ = ["run_selection"]


def _record(path: str, make) -> Dict:
    if os.path.isfile(path):
        with open(path) as f:
            return json.load(f)
    start = time.time()
    record = make()
    record["wall_s"] = round(time.time() - start, 1)
    with open(path, "w") as f:
        json.dump(record, f, indent=1)
    return record


def run_selection(configs: str, candidates: Sequence[str], seeds: Sequence[int], out_dir: str,
                  work_dir: str) -> List[Dict]:
    """Train and score every (candidate, seed) -> their records (mAP %, see ``compare``)."""
    os.makedirs(out_dir, exist_ok=True)
    unified = os.path.join(configs, "unified_R18.yml")
    sfsc = os.path.join(configs, "sfsc_R18.yml")
    records = []
    for seed in seeds:
        runs = {w: os.path.join(work_dir, f"unified_w{w:g}_seed{seed}") for w in (0.25, 1.0)}
        for width, run_dir in runs.items():
            if not os.path.isfile(os.path.join(run_dir, "model_final.pth")):
                train_small(unified, run_dir, seed, ["SFSC.TRAIN_WIDTH", str(width)])
        for name in candidates:
            opts = ["SFSC.WIDTHS", "[0.25]", *config_overrides(name)]
            run_dir = os.path.join(work_dir, f"{name}_seed{seed}")

            def make(run_dir=run_dir, opts=opts, name=name, seed=seed, runs=runs):
                train_small(sfsc, run_dir, seed, opts)
                scores = compare(run_dir, runs[0.25])
                unified_full = own_map(runs[1.0], 1.0)
                return {"candidate": name, "seed": seed, "dataset": DATASET,
                        "overrides": opts, "unified_full": unified_full, **scores}

            record = _record(os.path.join(out_dir, f"{name}_seed{seed}.json"), make)
            logger.info(f"{name} seed {seed}: cross {record['cross']:.1f}, full "
                        f"{record['full']:.1f} (unified full {record['unified_full']:.1f})")
            records.append(record)
    return records
