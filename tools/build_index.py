#!/usr/bin/env python3
r"""Build a faiss index of a gallery's features, saved as a folder that search_index.py reads.

    python tools/build_index.py --gallery 1.0_gallery.npz --index-factory "IVF1024,Flat" \
        --output index/
    python tools/build_index.py --images gallery_images/ --model-dir logs/demo --width 1.0 \
        --index-factory HNSW32 --output index/
    # a gallery too large for one machine: train once, build shard i of n anywhere, merge
    python tools/build_index.py --gallery G.npz --index-factory "IVF4096,PQ64" --train-only \
        --output trained/
    python tools/build_index.py --gallery G.npz --trained trained/ --shard 0/4 --output shard0/
    python tools/build_index.py --merge shard0/ shard1/ shard2/ shard3/ --output index/

--gallery is a saved-features .npz (feats, pids, camids, optional paths), or a .npy from
tools/extract_features.py with its .json; --images runs the switchable model at --width on a
folder or list of images with its test preprocessing (identities read from Market-1501 file
names). The metric is the one the gallery file declares (extract_features.py writes cosine),
else --metric, else cosine; a --metric that contradicts the file is a named error. Features
are L2-normalised for cosine (inner product), kept for euclidean.
Any faiss index_factory string works ("Flat", "IVF1024,Flat", "IVF1024,PQ64", "HNSW32", ...);
the index is trained on --train-sample rows and filled in batches with progress and an ETA.
--device gpu / all-gpus (sharded over every GPU) need faiss-gpu. The folder holds index.faiss,
gallery.npz (pids, camids, paths of its rows) and index.json (factory, metric, model, width,
rows, shard, trained-index checksum).
"""
import argparse
import sys


def main(argv=None) -> int:
    import sfsc  # noqa: F401  (patches FastReID, registers SFSC components)
    from sfsc.deploy.cli import add_model_arguments, load_from_args
    from sfsc.deploy.index import (
        DEVICES,
        IndexInputError,
        build_index,
        extract_feature_set,
        index_metric,
        load_feature_set,
        load_index_folder,
        merge_index_folders,
        parse_shard,
        save_index_folder,
        write_index_folder,
    )

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--output", required=True, help="index folder to write")
    parser.add_argument("--gallery", default="", help="gallery features (.npz, or .npy + .json)")
    parser.add_argument("--images", default="", help="gallery images (folder or list file)")
    parser.add_argument("--width", type=float, default=None, help="model width for --images")
    parser.add_argument("--index-factory", default="", help="faiss index_factory string")
    parser.add_argument("--metric", default=None, choices=("cosine", "euclidean"),
                        help="default: the one the gallery file declares, else cosine")
    parser.add_argument("--train-sample", type=int, default=100_000,
                        help="rows the index is trained on (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the training sample")
    parser.add_argument("--batch-size", type=int, default=65536, help="vectors per add")
    parser.add_argument("--device", default="cpu", choices=DEVICES)
    parser.add_argument("--threads", type=int, default=0, help="faiss threads (0: its default)")
    parser.add_argument("--train-only", action="store_true",
                        help="write the trained, empty index that every shard starts from")
    parser.add_argument("--trained", default="", help="folder of --train-only's index")
    parser.add_argument("--shard", default="", help="i/n: index only shard i of n of the rows")
    parser.add_argument("--merge", nargs="+", default=[], metavar="SHARD",
                        help="merge these shard folders into one index (nothing else needed)")
    parser.add_argument("--image-batch-size", type=int, default=64)
    add_model_arguments(parser)
    args = parser.parse_intermixed_args(argv)
    if args.threads > 0:
        import faiss

        faiss.omp_set_num_threads(args.threads)

    if args.merge:
        index, meta, pids, camids, paths = merge_index_folders(
            [load_index_folder(f) for f in args.merge])
        save_index_folder(args.output, index, meta, pids, camids, paths)
        print(f"merged {len(args.merge)} shards: {index.ntotal} vectors -> {args.output}")
        return 0
    if bool(args.gallery) == bool(args.images):
        raise IndexInputError("pass the gallery as --gallery FILE or as --images FOLDER (with "
                              "a model), one of them.")
    if args.gallery:
        features = load_feature_set(args.gallery)
    else:
        if args.width is None:
            raise IndexInputError("--images needs --width: the width of the sub-model whose "
                                  "features fill the index (usually 1.0, the full model).")
        features = extract_feature_set(args.images, load_from_args(args), args.width,
                                       args.image_batch_size)
    build = build_index(
        features, args.index_factory, index_metric(args.metric, features),
        trained=load_index_folder(args.trained) if args.trained else None,
        shard=parse_shard(args.shard) if args.shard else None, train_only=args.train_only,
        sample_size=args.train_sample, seed=args.seed, batch_size=args.batch_size,
        device=args.device)
    write_index_folder(args.output, build, features)
    meta = build.meta
    what = "trained, empty" if args.train_only else f"rows {build.start}-{build.stop} of " \
                                                    f"{len(features.feats)}"
    print(f"{meta['factory']} ({meta['metric']}, {meta['dim']}-d): {what}, "
          f"{meta['ntotal']} vectors -> {args.output}")
    return 0


if __name__ == "__main__":
    from sfsc.deploy.cli import run_tool

    sys.exit(run_tool(main))
