#!/usr/bin/env python3
"""Compatibility matrix of several models: from their saved features, or from their training
folders.

    .venv/bin/python tools/eval_compat.py FOLDER [--output-dir DIR] [--metric cosine|euclidean]
        [--chunk-size N] [--backend auto|faiss|torch]
    .venv/bin/python tools/eval_compat.py --model LABEL=OUTPUT_DIR[@WIDTH] --model ... \\
        --output-dir DIR [--dataset NAME]

FOLDER holds ``<name>_query.npz`` and ``<name>_gallery.npz`` for every model (what
tools/extract_features.py --dataset writes on each platform), each with arrays ``feats`` (N, D)
float, ``pids`` (N,) int and ``camids`` (N,) int; every model describes the same query images
and the same gallery images, in the same order. Models are ordered by the width their names
spell when all names are numbers (``0.25_query.npz``), else by name.

--model scores separately trained models (a unified model per width, one-to-one BCT against
its old model, a dense FastReID model) as one matrix on one test set: each is a training
OUTPUT_DIR (config.yaml + model_final.pth) run at WIDTH (default: the width it was trained at,
SFSC.TRAIN_WIDTH). The test set is --dataset (default: the first model's DATASETS.TESTS), read
with the first model's config; the metric defaults to its TEST.METRIC.

Prints one pipe table per metric (rows: query model, columns: gallery model) and writes
``compatibility.json`` to DIR (default: FOLDER). Exits with 2 and a one-paragraph
explanation when the inputs cannot be evaluated.
"""
import argparse
import logging
import sys

from sfsc.data.errors import DatasetError
from sfsc.evaluation.feature_files import InputError, evaluate_folder
from sfsc.evaluation.model_set import evaluate_trained_models, parse_model_specs
from sfsc.fastreid.checkpoint import CheckpointError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("folder", nargs="?", default="",
                        help="folder of <name>_query.npz / <name>_gallery.npz files")
    parser.add_argument("--model", action="append", default=[], metavar="LABEL=DIR[@WIDTH]",
                        help="a trained model instead of FOLDER (repeat for each)")
    parser.add_argument("--dataset", default="", help="--model's test set (registered name)")
    parser.add_argument("--output-dir", help="where compatibility.json goes (default: folder)")
    parser.add_argument("--metric", default=None, choices=("cosine", "euclidean"),
                        help="default: cosine for FOLDER, the first model's TEST.METRIC")
    parser.add_argument("--chunk-size", type=int, default=1024, help="queries per block")
    parser.add_argument("--backend", default="auto", choices=("auto", "faiss", "torch"))
    args = parser.parse_args(argv)
    if bool(args.folder) == bool(args.model):
        parser.error("pass a FOLDER of saved features or --model LABEL=OUTPUT_DIR ..., one "
                     "of them")
    if args.model and not args.output_dir:
        parser.error("--model needs --output-dir, the folder compatibility.json goes to")
    if args.dataset and not args.model:
        parser.error("--dataset goes with --model (FOLDER's files hold their own test set)")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s",
                        stream=sys.stderr)
    try:
        if args.model:
            result = evaluate_trained_models(parse_model_specs(args.model), args.dataset or None,
                                             args.metric, args.chunk_size, args.backend)
        else:
            result = evaluate_folder(args.folder, args.metric or "cosine", args.chunk_size,
                                     args.backend)
    except (InputError, ValueError, FileNotFoundError, DatasetError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.tables())
    print(f"\n{result.num_valid} of {result.num_query} queries evaluated "
          f"({result.num_skipped} skipped: no gallery item with their identity under another "
          f"camera), {result.num_gallery} gallery items, metric {result.metric}.")
    path = result.write(args.output_dir or args.folder)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
