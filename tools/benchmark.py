#!/usr/bin/env python3
"""Reproduce the SFSC paper's comparison on a dataset: train every method, score every matrix.

    python tools/benchmark.py --dataset Synthetic --seeds 0 1
    python tools/benchmark.py --dataset Market1501 --methods sfsc bct_s unified

Runs train into ``--runs-root/<Dataset>/seed<k>/<run>`` (reused when finished, restarted when
interrupted); results go to ``--output/<Dataset>/``: results.md (paper's Tables 2, 3 and 6
layouts, mean ± std over seeds), results.json (every matrix, every run's config, seed, git
commit and wall time), heatmaps/ (mAP matrices), curves/ (training curves of SFSC and BCT-S)
and runs/ (one record per finished run, to commit: a run whose record matches its config is
not trained again, on any machine; see projects/SFSC/README.md).
Trailing KEY VALUE pairs override every run's config.
"""
import argparse
import json
import os
import shlex
import sys
import time

import sfsc  # noqa: F401  (patches FastReID, registers SFSC components)
from fastreid.config import get_cfg
from sfsc.benchmark.curves import plot
from sfsc.benchmark.matrices import members_to_evaluate, model_set_matrix
from sfsc.benchmark.methods import METHODS, benchmark_runs
from sfsc.benchmark.records import curves_to_series
from sfsc.benchmark.report import aggregate, heatmaps, markdown
from sfsc.benchmark.runner import BenchmarkRunner
from sfsc.engine.defaults import exit_on_user_error

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CURVES = ("sfsc", "bct_s")
# Kept in the committed run records, left out of results.json's list of runs.
RECORD_ONLY = ("effective_config", "compatibility", "curves")


def sub_widths(config_dir: str, net: str, opts) -> list:
    cfg = get_cfg()
    sfsc.add_sfsc_config(cfg)
    cfg.merge_from_file(os.path.join(config_dir, f"sfsc_{net}.yml"))
    cfg.merge_from_list(list(opts))
    return sorted(float(w) for w in cfg.SFSC.WIDTHS)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="Synthetic", help="folder under configs/")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--net", default="R18", help="config suffix, e.g. R18")
    parser.add_argument("--runs-root", default=os.path.join(ROOT, "logs", "benchmark"))
    parser.add_argument("--output", default=os.path.join(ROOT, "benchmarks"))
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = parser.parse_args(argv)
    config_dir = os.path.join(ROOT, "configs", args.dataset)
    if not os.path.isdir(config_dir):
        parser.error(f"no configs for {args.dataset!r}: {config_dir} does not exist")
    start = time.time()
    widths = sub_widths(config_dir, args.net, args.opts)
    methods = [METHODS[k] for k in args.methods]
    out = os.path.join(args.output, args.dataset)
    runner = BenchmarkRunner(ROOT, config_dir, os.path.join(args.runs_root, args.dataset),
                             benchmark_runs(methods, widths, args.net), args.seeds, args.opts,
                             records_dir=os.path.join(out, "runs"))
    need = set()
    for method in methods:
        if method.kind != "switchable":
            need |= members_to_evaluate(runner, method, widths, args.seeds)
    record_list = runner.run_all(need_checkpoints=need)
    records = {(r["seed"], r["run"]): r for r in record_list}

    matrices = {}
    for method in methods:
        matrices[method.key] = {}
        for seed in args.seeds:
            if method.kind == "switchable":
                matrix = records[(seed, method.key)]["compatibility"]
                if matrix is None:
                    raise SystemExit(f"{method.key} (seed {seed}) finished without a "
                                     f"compatibility.json; its record: "
                                     f"{runner.record_path(seed, method.key)}")
                matrices[method.key][seed] = matrix
            else:
                matrices[method.key][seed] = model_set_matrix(runner, method, widths, seed,
                                                              records)
    results = aggregate(matrices)
    os.makedirs(out, exist_ok=True)
    command = "python tools/benchmark.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    train_time = sum(r["wall_time_s"] for r in record_list)
    header = [f"Command: `{command}`", "",
              f"Seeds {args.seeds}; sub-model widths {widths}; cells are mean ± std over seeds "
              f"(std with ddof 1). Training wall time {train_time / 60:.0f} min in total, "
              f"{train_time / 60 / len(args.seeds):.0f} min per seed; runs trained at git "
              f"commit {', '.join(sorted({r['git_commit'] for r in record_list}))}."]
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(markdown(results, args.dataset, header) + "\n")
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"dataset": args.dataset, "widths": widths, "seeds": args.seeds,
                   "command": command, "methods": results,
                   "runs": [{k: v for k, v in r.items() if k not in RECORD_ONLY}
                            for r in record_list]}, f, indent=1)
    heatmaps(results, os.path.join(out, "heatmaps"))
    os.makedirs(os.path.join(out, "curves"), exist_ok=True)
    for key in CURVES:
        if key in args.methods:
            for seed in args.seeds:
                curves = records[(seed, key)]["curves"]
                if curves:
                    plot(curves_to_series(curves),
                         os.path.join(out, "curves", f"{key}_seed{seed}.png"),
                         title=f"{METHODS[key].title}, seed {seed}")
    print(f"Wrote {out}/results.md, results.json, heatmaps/ and curves/ "
          f"({(time.time() - start) / 60:.0f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(exit_on_user_error(main))
