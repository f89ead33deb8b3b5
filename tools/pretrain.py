#!/usr/bin/env python3
r"""Pretrain a dense torchvision network on a synthetic corpus of its own (the synthetic testbed).

    python tools/pretrain.py                      # ResNet-18, the defaults (~20 min on 2 cores)
    python tools/train_net.py --config-file configs/Synthetic/unified_R18.yml \
        MODEL.BACKBONE.PRETRAIN True MODEL.BACKBONE.PRETRAIN_PATH <the file it prints>

The corpus (1000 identities drawn with another seed than every benchmark split, ~17k images) is
generated once under $FASTREID_DATASETS. The run is cached under --output-root by a hash of its
parameters: running again with the same ones prints the same file at once; an interrupted run
continues from its last checkpoint. The weights are torchvision's state dict without the
classifier, named <arch>-<sha256 prefix>.pth, and load into every width of the switchable twin.
"""
import argparse
import logging
import os
import sys


def main(argv=None) -> int:
    import torch

    import sfsc  # noqa: F401  (patches FastReID)
    from sfsc.benchmark.pretraining.dense import (
        CLASSIFIERS,
        PretrainParams,
        pretrain,
        run_folder,
    )

    d = PretrainParams()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--arch", choices=sorted(CLASSIFIERS), default=d.arch)
    parser.add_argument("--num-ids", type=int, default=d.num_ids, help="corpus identities")
    parser.add_argument("--images-per-id", type=int, nargs=2, default=d.images_per_id)
    parser.add_argument("--corpus-seed", type=int, default=d.corpus_seed)
    parser.add_argument("--size", type=int, nargs=2, default=d.image_size, metavar=("H", "W"))
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--steps", type=int, default=d.steps)
    parser.add_argument("--lr", type=float, default=d.base_lr)
    parser.add_argument("--warmup-steps", type=int, default=d.warmup_steps)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--checkpoint-period", type=int, default=50, help="steps")
    parser.add_argument("--log-period", type=int, default=10, help="steps")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads")
    parser.add_argument("--output-root", default=None,
                        help="default: $FASTREID_DATASETS/pretrained")
    args = parser.parse_args(argv)

    datasets = os.environ.get("FASTREID_DATASETS", "datasets")
    root = args.output_root or os.path.join(datasets, "pretrained")
    params = PretrainParams(
        arch=args.arch, num_ids=args.num_ids, images_per_id=tuple(args.images_per_id),
        corpus_seed=args.corpus_seed, image_size=tuple(args.size), batch_size=args.batch_size,
        steps=args.steps, base_lr=args.lr, warmup_steps=args.warmup_steps, seed=args.seed)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stdout)
    torch.set_num_threads(args.threads)
    try:
        params.validate()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"Run folder: {run_folder(root, params)}", flush=True)
    result = pretrain(params, root, datasets, args.checkpoint_period, args.log_period)
    print(("Cached: " if result.cached else "Done: ") + result.path)
    print(f"MODEL.BACKBONE.PRETRAIN True MODEL.BACKBONE.PRETRAIN_PATH {result.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
