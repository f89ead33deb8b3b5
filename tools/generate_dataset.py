#!/usr/bin/env python3
"""Generate a registered generated dataset ahead of training, and draw a sheet of its cameras.

    python tools/generate_dataset.py --dataset HangulReID
    python tools/generate_dataset.py --dataset GlyphReIDTiny
    python tools/generate_dataset.py --samples benchmarks/HangulReID/samples.png

Training generates a dataset on first use anyway; this does it up front, with progress, and
says how long it took. The dataset goes to $FASTREID_DATASETS/<Dataset> (default ./datasets)
and is reused while its manifest matches. --samples writes a picture with one row per camera
and one column per identity (the same identity as each camera sees it).
"""
import argparse
import logging
import os
import sys
import time

import sfsc  # noqa: F401  (patches FastReID, registers SFSC components)
from fastreid.data.datasets import DATASET_REGISTRY
from sfsc.data.datasets import synthetic_header
from sfsc.data.sample_sheet import sample_sheet
from sfsc.engine.defaults import exit_on_user_error


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--dataset", default="HangulReID", help="a generated dataset's name")
    parser.add_argument("--root", default=os.environ.get("FASTREID_DATASETS", "datasets"),
                        help="dataset root (default: $FASTREID_DATASETS, else ./datasets)")
    parser.add_argument("--samples", default="", help="write the camera sheet (.png) here")
    parser.add_argument("--identities", type=int, default=8, help="columns of the sheet")
    parser.add_argument("--seed", type=int, default=0, help="which identities the sheet shows")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        cls = DATASET_REGISTRY.get(args.dataset)
    except KeyError:
        parser.error(f"unknown dataset {args.dataset!r}")
    if synthetic_header(args.dataset) is None:
        parser.error(f"{args.dataset} is not a generated dataset")
    start = time.perf_counter()
    data = cls(root=args.root)
    print(f"{args.dataset}: {data.dataset_dir} ({len(data.train)} train, {len(data.query)} "
          f"query, {len(data.gallery)} gallery images; {time.perf_counter() - start:.0f} s)")
    if args.samples:
        os.makedirs(os.path.dirname(os.path.abspath(args.samples)), exist_ok=True)
        sample_sheet(data.dataset_dir, args.identities, args.seed).save(args.samples)
        print(f"Wrote {args.samples}")
    return 0


if __name__ == "__main__":
    sys.exit(exit_on_user_error(main))
