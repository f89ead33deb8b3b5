#!/usr/bin/env python3
"""Compatibility matrix of several models from their saved features alone.

    python tools/eval_compat.py FOLDER [--output-dir DIR] [--metric cosine|euclidean]
                                       [--chunk-size N] [--backend auto|faiss|torch]

FOLDER holds ``<name>_query.npz`` and ``<name>_gallery.npz`` for every model, each with arrays
``feats`` (N, D) float, ``pids`` (N,) int and ``camids`` (N,) int; every model describes the
same query images and the same gallery images, in the same order. Models are ordered by the
width their names spell when all names are numbers (``0.25_query.npz``), else by name.
Prints one pipe table per metric (rows: query model, columns: gallery model) and writes
``compatibility.json`` to DIR (default: FOLDER). Exits with 2 and a one-paragraph
explanation when the files cannot be evaluated.
"""
import argparse
import logging
import sys

from sfsc.evaluation.feature_files import InputError, evaluate_folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="folder of <name>_query.npz / <name>_gallery.npz files")
    parser.add_argument("--output-dir", help="where compatibility.json goes (default: folder)")
    parser.add_argument("--metric", default="cosine", choices=("cosine", "euclidean"))
    parser.add_argument("--chunk-size", type=int, default=1024, help="queries per block")
    parser.add_argument("--backend", default="auto", choices=("auto", "faiss", "torch"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s",
                        stream=sys.stderr)
    try:
        result = evaluate_folder(args.folder, args.metric, args.chunk_size, args.backend)
    except (InputError, ValueError) as exc:
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
