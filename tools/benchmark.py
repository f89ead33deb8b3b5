#!/usr/bin/env python3
"""Reproduce the SFSC paper's comparison on a dataset: train every method, score every matrix.

    python tools/benchmark.py --dataset Synthetic --seeds 0 1
    python tools/benchmark.py --dataset Market1501 --methods sfsc bct_s unified
    python tools/benchmark.py --dataset SyntheticHardLong --seeds 0 1 2 --dry-run

Runs train into ``--runs-root/<Dataset>/seed<k>/<run>`` (reused when finished, restarted when
interrupted); results go to ``--output/<Dataset>/``: results.md (paper's Tables 2, 3 and 6
layouts, mean ± std over seeds), results.json (every matrix, every run's config, seed, git
commit and wall time), heatmaps/ (mAP matrices), curves/ (training curves of SFSC and BCT-S)
and runs/ (one record per finished run, to commit: a run whose record matches its config is
not trained again, on any machine, unless the training code changed since: see
benchmarks/README.md). --dry-run says per run "reused" or "to train" and why, training nothing.
--records-from reuses the matching records of other folders (a schedule selection's, another
table's) where a run has none of its own, without copying them.
--methods takes the paper's methods or the stem of any other config of the folder
(configs/<Dataset>/<stem>_<net>.yml), trained as a switchable method.
Trailing KEY VALUE pairs override every run's config.
"""
import argparse
import os
import shlex
import sys
import time

import sfsc  # noqa: F401  (patches FastReID, registers SFSC components)
from sfsc.benchmark.tables.child_process import exit_on_sigterm
from sfsc.benchmark.tables.methods import METHODS
from sfsc.benchmark.tables.suite import run_suite
from sfsc.engine.defaults import exit_on_user_error

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="Synthetic", help="folder under configs/")
    parser.add_argument("--methods", nargs="+", default=list(METHODS),
                        help=f"the paper's ({' '.join(METHODS)}; default: all) or any config "
                             "stem of the dataset folder")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--net", default="R18", help="config suffix, e.g. R18")
    parser.add_argument("--runs-root", default=os.path.join(ROOT, "logs", "benchmark"))
    parser.add_argument("--output", default=os.path.join(ROOT, "benchmarks"))
    parser.add_argument("--records-from", nargs="+", default=[], metavar="RUNS_DIR",
                        help="other benchmarks' runs/ folders: a run without a record of its "
                             "own reuses a matching record there, without a copy")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would be reused or trained and why; train nothing")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = parser.parse_args(argv)
    config_dir = os.path.join(ROOT, "configs", args.dataset)
    if not os.path.isdir(config_dir):
        parser.error(f"no configs for {args.dataset!r}: {config_dir} does not exist")
    start = time.time()
    command = "python tools/benchmark.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    out = run_suite(ROOT, args.dataset, args.methods, args.seeds, args.net, args.runs_root,
                    args.output, args.opts, command, dry_run=args.dry_run,
                    records_from=args.records_from)
    if out is None:
        return 0
    print(f"Wrote {out}/results.md, results.json, heatmaps/ and curves/ "
          f"({(time.time() - start) / 60:.0f} min)")
    return 0


if __name__ == "__main__":
    exit_on_sigterm()  # a killed invocation stops its training first
    sys.exit(exit_on_user_error(main))
