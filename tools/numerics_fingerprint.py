#!/usr/bin/env python3
"""Check (default) or rewrite the committed training-numerics fingerprints.

    python tools/numerics_fingerprint.py                 # exit 1 and what moved, if anything
    python tools/numerics_fingerprint.py --write         # after a numerics change made on purpose

The fingerprint is a short reference computation through the training code a config selects
(sfsc/engine/numerics.py); run records carry it, and a record whose fingerprint differs from
today's is trained again (tools/benchmark.py --dry-run lists them). This tool keeps
tests/numerics_reference.json, one run per method of the paper's table, in step with the code.
"""
import argparse
import json
import os
import sys

import sfsc  # noqa: F401  (patches FastReID, registers SFSC components)
from sfsc.benchmark.tables.fingerprints import method_fingerprints, reference_file
from sfsc.engine.numerics import differences

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="SyntheticHardLong", help="folder under configs/")
    parser.add_argument("--file", default=reference_file(ROOT))
    parser.add_argument("--write", action="store_true", help="rewrite the file with today's")
    args = parser.parse_args(argv)
    today = method_fingerprints(ROOT, args.dataset)
    if args.write:
        with open(args.file, "w") as f:
            json.dump({"dataset": args.dataset, "runs": today}, f, indent=1)
            f.write("\n")
        print(f"Wrote {len(today)} fingerprints of {args.dataset} to {args.file}")
        return 0
    with open(args.file) as f:
        committed = json.load(f)["runs"]
    moved = {name: differences(committed.get(name, {}), numbers)
             for name, numbers in today.items()}
    moved = {name: rows for name, rows in moved.items() if rows}
    for name, rows in moved.items():
        print(f"{name}: {len(rows)} numbers moved, e.g. " + "; ".join(rows[:3]))
    print(f"{len(moved)} of {len(today)} methods' training numerics differ from {args.file}")
    return 1 if moved else 0


if __name__ == "__main__":
    sys.exit(main())
