#!/usr/bin/env python3
r"""L2-normalised ReID features from a switchable checkpoint at one width or from an exported
sub-model: of a dataset's query and gallery (the files the compatibility tools read), or of a
folder or list of images.

    .venv/bin/python tools/extract_features.py --dataset Market1501 --model-dir OUTPUT_DIR \
        --width 0.25 --output-dir features/
    .venv/bin/python tools/extract_features.py --dataset Market1501 \
        --exported export/resnet_18x_w0.25.onnx --output-dir features/ --name phone
    .venv/bin/python tools/extract_features.py IMAGES --output F.npy --model-dir OUTPUT_DIR \
        --width 0.25
    .venv/bin/python tools/extract_features.py IMAGES --output F.npy --config-file CFG \
        --weights W.pth --width 0.5

--dataset NAME reads a registered dataset's test set (FASTREID_DATASETS; the dataset keys of
the model's config, or KEY VALUE overrides such as SFSC.DATA.CUSTOM_PATH with --exported) and
writes into --output-dir NAME_query.npz and NAME_gallery.npz (arrays feats, pids, camids, paths,
metric) and NAME.json (model, preprocessing, dataset); --name defaults to the width (0.25_*).
Run it once per platform into one folder: tools/eval_compat.py scores the folder as one matrix,
tools/build_index.py indexes a gallery file, tools/search_index.py and tools/visualize_ranks.py
--query-features read them. A checkpoint's features are the evaluation's (test transforms,
TEST.FLIP); an exported model uses the preprocessing its JSON records.

IMAGES is a folder (searched recursively for .jpg .jpeg .png .bmp .webp .tif .tiff .ppm .pgm,
sorted by relative path) or a text file with one image path per line (relative to the file's
folder). Writes F.npy, float32 (N, D), one unit-length row per readable image, and F.json: the
file names in row order, the model, width and preprocessing, and the skipped files with the
reason. A checkpoint uses FastReID's test transforms of its config; an exported model (.pt
TorchScript or .onnx, with its JSON beside it or --spec) uses the preprocessing its JSON
records. Unreadable images are skipped with a warning (--strict: exit 2 at the first one).
"""
import argparse
import re
import sys


def main(argv=None) -> int:
    import warnings

    import torch

    import sfsc  # noqa: F401  (patches FastReID, registers SFSC components)
    from sfsc.deploy.cli import add_model_arguments, load_from_args
    from sfsc.deploy.dataset_features import (
        dataset_config,
        extract_dataset,
        save_dataset_features,
    )
    from sfsc.deploy.errors import DeployError
    from sfsc.deploy.extraction import (
        exported_encoder,
        extract_files,
        save_features,
        switchable_encoder,
    )
    from sfsc.deploy.image_sources import list_images
    from sfsc.deploy.index.encoding import evaluation_encoder
    from sfsc.deploy.runtime import load_exported

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("images", nargs="?", default="",
                        help="folder of images, or a text file of image paths")
    parser.add_argument("--output", default="", help="IMAGES' features .npy (index: .json)")
    parser.add_argument("--dataset", default="",
                        help="a registered dataset: extract its query and gallery instead")
    parser.add_argument("--output-dir", default="", help="--dataset's folder of feature files")
    parser.add_argument("--name", default="",
                        help="--dataset's file names NAME_query.npz ... (default: the width)")
    parser.add_argument("--width", type=float, default=None, help="width of the checkpoint")
    parser.add_argument("--exported", default="", help="exported model (.pt or .onnx)")
    parser.add_argument("--spec", default="", help="its JSON (default: beside it)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0,
                        help="compute threads (default: torch's / onnxruntime's own choice)")
    parser.add_argument("--workers", type=int, default=2, help="image decoding threads")
    parser.add_argument("--strict", action="store_true", help="fail on an unreadable image")
    add_model_arguments(parser)
    args = parser.parse_intermixed_args(argv)
    if args.dataset and re.fullmatch(r"[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)+", args.images):
        args.opts, args.images = [args.images, *args.opts], ""  # argparse gave KEY to IMAGES
    if bool(args.images) == bool(args.dataset):
        raise DeployError("pass IMAGES (a folder or list of images, with --output) or "
                          "--dataset NAME (with --output-dir), one of them.")
    if args.images and not args.output:
        raise DeployError("IMAGES needs --output F.npy, the features file to write.")
    if args.dataset and not args.output_dir:
        raise DeployError("--dataset needs --output-dir, the folder its query and gallery "
                          "feature files go to (one folder for every platform's model).")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    # FastReID's ToTensor uses a deprecated torch API; the values are unaffected
    warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
    if args.exported:
        if args.model_dir or args.config_file or args.width is not None:
            raise DeployError("--exported runs the exported model as it is: drop --model-dir, "
                              "--config-file and --width.")
        encoder = exported_encoder(load_exported(args.exported, args.spec, args.threads))
        cfg = dataset_config(args.opts) if args.dataset else None
    elif args.width is None:
        raise DeployError("a switchable checkpoint holds several sub-models: choose one with "
                          "--width (e.g. 0.25), or pass an exported model with --exported.")
    else:
        loaded = load_from_args(args)
        cfg = loaded.cfg
        make = evaluation_encoder if args.dataset else switchable_encoder
        encoder = make(loaded, args.width)
    if args.images:
        result = extract_files(list_images(args.images), encoder, args.batch_size, args.strict,
                               args.workers)
        output, index = save_features(args.output, result, encoder, args.images)
        print(f"{len(result.names)} images -> {output} {result.features.shape}, "
              f"{len(result.skipped)} skipped; index {index}")
        return 0
    width = encoder.model.get("width")
    name = args.name or (f"{float(width):g}" if width is not None else "")
    if not name:
        raise DeployError(f"{args.exported} records no width to name its files by: pass --name.")
    features = extract_dataset(args.dataset, cfg, encoder, args.batch_size, args.workers)
    for path in save_dataset_features(args.output_dir, name, args.dataset, features, encoder):
        print(f"wrote {path}")
    print(f"{args.dataset}: {len(features['query'].pids)} query and "
          f"{len(features['gallery'].pids)} gallery images, {features['query'].feats.shape[1]}-d")
    return 0


if __name__ == "__main__":
    from sfsc.deploy.cli import run_tool

    sys.exit(run_tool(main))
