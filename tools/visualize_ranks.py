#!/usr/bin/env python3
"""Draw ranked lists across widths: queries of one model against the gallery of another.

    python tools/visualize_ranks.py --model-dir logs/demo --query-width 0.25 --gallery-width 1.0 \
        --order worst --output ranks.png
    python tools/visualize_ranks.py --model-dir logs/demo --query-width 0.25 --gallery-width 1.0 \
        --compare-width 1.0 --order random --seed 3 --output side_by_side.png
    python tools/visualize_ranks.py --query-features A_query.npz --gallery-features B_gallery.npz \
        --order best --output ranks.png

Each row: a query image, then its top-k gallery images framed green (same identity) or red
(another identity), with the query's AP and the rank of its first true match. Gallery images of
the query's identity under the query's camera are left out, as in the evaluation. With
--compare-width (or --compare-features) a second panel shows the same queries from another
query model against the same gallery. Rows are chosen by --order: worst (lowest AP of the
first panel first), best, or random (with --seed; drawn and printed when not given).
Feature files are tools/eval_compat.py's .npz files with one more array, paths (N,): the image
file of each row.
"""
import argparse
import os
import sys

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--model-dir", default="", help="training OUTPUT_DIR (config.yaml + "
                                                        "checkpoint)")
    parser.add_argument("--checkpoint", default="model_final.pth")
    parser.add_argument("--dataset", default="", help="test set (default: the config's first)")
    parser.add_argument("--query-width", type=float, help="query model's width")
    parser.add_argument("--gallery-width", type=float, default=1.0, help="gallery model's width")
    parser.add_argument("--compare-width", type=float, help="second panel's query width")
    parser.add_argument("--query-features", default="", help="query .npz (instead of a model)")
    parser.add_argument("--gallery-features", default="", help="gallery .npz")
    parser.add_argument("--compare-features", default="", help="second panel's query .npz")
    parser.add_argument("--metric", default="", choices=("", "cosine", "euclidean"),
                        help="default: the model's TEST.METRIC, or cosine for feature files")
    parser.add_argument("--order", required=True, choices=("worst", "best", "random"))
    parser.add_argument("--seed", type=int, help="seed of --order random")
    parser.add_argument("--num-queries", type=int, default=8, help="rows")
    parser.add_argument("--topk", type=int, default=10, help="gallery images per row")
    parser.add_argument("--output", required=True, help="PNG file to write")
    args = parser.parse_args(argv)

    import sfsc  # noqa: F401  (patches FastReID, registers SFSC components)
    from sfsc.evaluation.rank_grid import rank_grid_figure
    from sfsc.evaluation.rank_sources import load_feature_file, model_feature_sets

    if args.order == "random" and args.seed is None:
        args.seed = int(np.random.SeedSequence().entropy % (2 ** 31))
        print(f"--order random: seed {args.seed} (pass --seed {args.seed} to draw these rows "
              "again)")
    try:
        if args.model_dir:
            if args.query_width is None:
                parser.error("--model-dir needs --query-width")
            widths = [args.query_width] + ([args.compare_width] if args.compare_width else [])
            queries, galleries, metric = model_feature_sets(
                args.model_dir, sorted({*widths, args.gallery_width}), args.dataset or None,
                args.checkpoint)
            query_sets = [(f"query {w:g}x -> gallery {args.gallery_width:g}x", queries[w])
                          for w in widths]
            gallery = galleries[args.gallery_width]
        elif args.query_features and args.gallery_features:
            files = [args.query_features] + ([args.compare_features]
                                             if args.compare_features else [])
            query_sets = [(f"{os.path.basename(f)} -> {os.path.basename(args.gallery_features)}",
                           load_feature_file(f)) for f in files]
            gallery, metric = load_feature_file(args.gallery_features), "cosine"
        else:
            parser.error("pass --model-dir, or --query-features and --gallery-features")
        image, chosen, panels = rank_grid_figure(
            query_sets, gallery, order=args.order, count=args.num_queries, k=args.topk,
            seed=args.seed, metric=args.metric or metric)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    folder = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(folder, exist_ok=True)
    image.save(args.output)
    for panel in panels:
        lists = panel.lists
        print(f"{panel.title}: queries {chosen.tolist()}, AP "
              f"{[round(float(lists.ap[q]) * 100, 1) for q in chosen]}, first match at "
              f"{lists.first_rank[chosen].tolist()}")
    print(f"wrote {args.output} ({image.size[0]}x{image.size[1]}, order {args.order}"
          f"{f', seed {args.seed}' if args.order == 'random' else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
