"""ShuffleNet v1's grouped-conv weight slicing (MODEL.BACKBONE.GROUP_SLICING), small scale.

One switchable ShuffleNet v1 (g = 3, 2.0x) per (method, rule, seed), trained at the
learning-check scale (:mod:`sfsc.benchmark.studies.learning_check`) and scored as M(φ_γ, φ) per
sub-width γ (query γ, gallery the full model) and M(φ, φ). A finished run's record
(``<out>/<method>_<rule>_seed<s>.json``) is reused, so an interrupted comparison resumes. The
rule that turns records into a default is PROTOCOL.md's, not code.
"""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Dict, List, Sequence

from ...engine import SFSCTrainer
from ...evaluation.model_set import ModelEntry, evaluate_model_set, load_trained_config
from .learning_check import DATASET, train_small

logger = logging.getLogger(__name__)

__all__ = ["METHODS", "SHUFFLENET_OPTS", "run_comparison", "score_run"]

# Method -> (config file under configs/Synthetic, overrides). BCT-S has no ShuffleNet config of
# its own: its ResNet-18 config with sfsc_ShuffleNet.yml's backbone keys.
SHUFFLENET_OPTS = ("MODEL.BACKBONE.NAME", "build_switchable_shufflenet_backbone",
                   "MODEL.BACKBONE.DEPTH", "2.0x", "MODEL.BACKBONE.FEAT_DIM", "1920")
METHODS = {"sfsc": ("sfsc_ShuffleNet.yml", ()), "bct_s": ("bct_s_R18.yml", SHUFFLENET_OPTS)}


def score_run(run_dir: str, widths: Sequence[float]) -> Dict[str, float]:
    """mAP (%) of a switchable run: ``cross@γ`` = M(φ_γ, φ) per sub-width, ``full`` = M(φ, φ)."""
    cfg = load_trained_config(run_dir)
    loader, num_query = SFSCTrainer.build_test_loader(cfg, DATASET)
    entries = [ModelEntry(w, run_dir, w) for w in (*widths, 1.0)]
    m = evaluate_model_set(entries, loader, num_query).to_json()["mAP"]
    scores = {f"cross@{w:g}": m[i][len(widths)] for i, w in enumerate(widths)}
    scores["cross_mean"] = sum(scores.values()) / len(widths)
    scores["full"] = m[len(widths)][len(widths)]
    return scores


def run_comparison(configs: str, methods: Sequence[str], rules: Sequence[str],
                   seeds: Sequence[int], widths: Sequence[float], out_dir: str,
                   work_dir: str) -> List[Dict]:
    """Train and score every (method, rule, seed) -> their records (mAP %, wall seconds)."""
    os.makedirs(out_dir, exist_ok=True)
    records = []
    for seed in seeds:
        for method in methods:
            config, extra = METHODS[method]
            for rule in rules:
                name = f"{method}_{rule}_seed{seed}"
                path = os.path.join(out_dir, f"{name}.json")
                if os.path.isfile(path):
                    with open(path) as f:
                        records.append(json.load(f))
                    continue
                opts = [*extra, "SFSC.WIDTHS", "[" + ",".join(f"{w:g}" for w in widths) + "]",
                        "MODEL.BACKBONE.GROUP_SLICING", rule]
                run_dir = os.path.join(work_dir, name)
                start = time.time()
                train_small(os.path.join(configs, config), run_dir, seed, opts)
                train_s = time.time() - start
                record = {"method": method, "rule": rule, "seed": seed, "dataset": DATASET,
                          "config": config, "overrides": opts, **score_run(run_dir, widths),
                          "train_wall_s": round(train_s, 1),
                          "wall_s": round(time.time() - start, 1)}
                with open(path, "w") as f:
                    json.dump(record, f, indent=1)
                logger.info(f"{name}: cross {record['cross_mean']:.1f}, full "
                            f"{record['full']:.1f}, {record['wall_s']:.0f} s")
                records.append(record)
    return records
