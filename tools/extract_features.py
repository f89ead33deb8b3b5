#!/usr/bin/env python3
r"""L2-normalised ReID features of a folder or list of images, from a switchable checkpoint at one
width or from an exported sub-model.

    python tools/extract_features.py IMAGES --output F.npy --model-dir OUTPUT_DIR --width 0.25
    python tools/extract_features.py IMAGES --output F.npy --config-file CFG --weights W.pth \
        --width 0.5
    python tools/extract_features.py IMAGES --output F.npy --exported export/resnet_18x_w0.25.onnx

IMAGES is a folder (searched recursively for .jpg .jpeg .png .bmp .webp .tif .tiff .ppm .pgm,
sorted by relative path) or a text file with one image path per line (relative to the file's
folder). Writes F.npy, float32 (N, D), one unit-length row per readable image, and
F.json: the file names in row order, the model, width and preprocessing, and the skipped
files with the reason. A checkpoint uses FastReID's test transforms of its config; an exported
model (.pt TorchScript or .onnx, with its JSON beside it or --spec) uses the preprocessing its
JSON records. Unreadable images are skipped with a warning (--strict: exit 2 at the first one).
"""
import argparse
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> int:
    import warnings

    import torch

    import sfsc  # noqa: F401  (patches FastReID, registers SFSC components)
    from sfsc.deploy.cli import add_model_arguments, load_from_args
    from sfsc.deploy.errors import DeployError
    from sfsc.deploy.extraction import (
        exported_encoder,
        extract_files,
        save_features,
        switchable_encoder,
    )
    from sfsc.deploy.image_sources import list_images
    from sfsc.deploy.runtime import load_exported

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("images", help="folder of images, or a text file of image paths")
    parser.add_argument("--output", required=True, help="features .npy (index: same name .json)")
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
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    # FastReID's ToTensor uses a deprecated torch API; the values are unaffected
    warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
    images = list_images(args.images)
    if args.exported:
        if args.model_dir or args.config_file or args.width is not None:
            raise DeployError("--exported runs the exported model as it is: drop --model-dir, "
                              "--config-file and --width.")
        encoder = exported_encoder(load_exported(args.exported, args.spec, args.threads))
    elif args.width is None:
        raise DeployError("a switchable checkpoint holds several sub-models: choose one with "
                          "--width (e.g. 0.25), or pass an exported model with --exported.")
    else:
        encoder = switchable_encoder(load_from_args(args), args.width)
    result = extract_files(images, encoder, args.batch_size, args.strict, args.workers)
    output, index = save_features(args.output, result, encoder, args.images)
    print(f"{len(result.names)} images -> {output} {result.features.shape}, "
          f"{len(result.skipped)} skipped; index {index}")
    return 0


if __name__ == "__main__":
    from sfsc.deploy.cli import run_tool

    sys.exit(run_tool(main))
