#!/usr/bin/env python3
r"""Search a gallery index (built by build_index.py) with query features of any width.

    python tools/search_index.py --index index/ --query 0.25_query.npz --k 10 --output R.npz
    python tools/search_index.py --index index/ --images query_images/ --model-dir logs/demo \
        --width 0.25 --k 10 --nprobe 32 --output R.npz --draw ranks.png --order worst
    python tools/search_index.py --index shard0/ shard1/ shard2/ --query Q.npz --output R.npz

Writes R.npz: indices (Q, k) gallery row numbers (-1 past a short list), scores (cosine
similarity, or minus squared Euclidean distance), pids and paths of the listed rows, and the
queries' pids / camids / paths. Several --index folders are the shards of one index: each is
searched and their top-k lists merged. Queries whose dimension, or declared metric (--metric,
or the query file's `metric` array), differs from the index's are refused with a named error.
When the queries' identities are known, gallery images of a query's identity under its own
camera are left out, as in the evaluation (--keep-junk keeps them). --nprobe (IVF) and
--ef-search (HNSW) trade speed for recall. --draw writes the ranked-list picture of
tools/visualize_ranks.py for the index's lists (--order worst | best | random).
"""
import argparse
import os
import sys


def main(argv=None) -> int:
    import numpy as np

    import sfsc  # noqa: F401  (patches FastReID, registers SFSC components)
    from sfsc.deploy.cli import add_model_arguments, load_from_args
    from sfsc.deploy.index import (
        DEVICES,
        IndexInputError,
        extract_feature_set,
        load_feature_set,
        load_index_folder,
        save_search_result,
        search_folders,
    )
    from sfsc.deploy.index.picture import draw_search_result
    from sfsc.deploy.index.search import describe, gallery_ids

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--index", nargs="+", required=True, metavar="FOLDER",
                        help="index folder, or every shard folder of one index")
    parser.add_argument("--query", default="", help="query features (.npz, or .npy + .json)")
    parser.add_argument("--images", default="", help="query images (folder or list file)")
    parser.add_argument("--width", type=float, default=None, help="model width for --images")
    parser.add_argument("--output", required=True, help="result .npz")
    parser.add_argument("--k", type=int, default=10, help="gallery items per query")
    parser.add_argument("--nprobe", type=int, default=None, help="IVF lists to visit")
    parser.add_argument("--ef-search", type=int, default=None, help="HNSW search depth")
    parser.add_argument("--metric", default=None, choices=("cosine", "euclidean"),
                        help="the queries' metric (default: the query file's, else the index's)")
    parser.add_argument("--keep-junk", action="store_true",
                        help="keep gallery items of the query's identity and camera")
    parser.add_argument("--device", default="cpu", choices=DEVICES)
    parser.add_argument("--threads", type=int, default=0, help="faiss threads (0: its default)")
    parser.add_argument("--draw", default="", help="PNG of the ranked lists")
    parser.add_argument("--order", default="worst", choices=("worst", "best", "random"))
    parser.add_argument("--seed", type=int, default=None, help="seed of --order random")
    parser.add_argument("--num-queries", type=int, default=8, help="rows of --draw")
    add_model_arguments(parser)
    args = parser.parse_intermixed_args(argv)
    if args.threads > 0:
        import faiss

        faiss.omp_set_num_threads(args.threads)
    if bool(args.query) == bool(args.images):
        raise IndexInputError("pass the queries as --query FILE or as --images FOLDER (with a "
                              "model and --width), one of them.")
    folders = [load_index_folder(f) for f in args.index]
    if args.query:
        queries = load_feature_set(args.query)
    else:
        if args.width is None:
            raise IndexInputError("--images needs --width: the sub-model the queries come "
                                  "from (e.g. 0.25 on a phone).")
        queries = extract_feature_set(args.images, load_from_args(args), args.width)
    result = search_folders(folders, queries, args.k, metric=args.metric, nprobe=args.nprobe,
                            ef_search=args.ef_search, exclude_junk=not args.keep_junk,
                            device=args.device)
    path = save_search_result(args.output, result, queries)
    print("\n".join(describe(result)))
    print(f"{len(result.indices)} queries x top {args.k} -> {path}")
    if args.draw:
        if args.order == "random" and args.seed is None:
            args.seed = int(np.random.SeedSequence().entropy % (2 ** 31))
            print(f"--order random: seed {args.seed} (pass --seed {args.seed} to draw these "
                  "rows again)")
        settings = [f"{name} {value}" for name, value in
                    (("nprobe", args.nprobe), ("efSearch", args.ef_search)) if value]
        title = (f"{os.path.basename(queries.source)} -> {folders[0].meta['factory']}"
                 + (f" ({', '.join(settings)})" if settings else ""))
        image, chosen = draw_search_result(result, queries, *gallery_ids(folders),
                                           order=args.order, count=args.num_queries,
                                           seed=args.seed, title=title)
        os.makedirs(os.path.dirname(os.path.abspath(args.draw)), exist_ok=True)
        image.save(args.draw)
        print(f"wrote {args.draw} (queries {chosen.tolist()}, order {args.order})")
    return 0


if __name__ == "__main__":
    from sfsc.deploy.cli import run_tool

    sys.exit(run_tool(main))
