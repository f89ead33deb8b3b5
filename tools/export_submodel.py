#!/usr/bin/env python3
r"""Export one width of a switchable checkpoint as a small plain network (TorchScript + ONNX).

    python tools/export_submodel.py --model-dir OUTPUT_DIR --width 0.25 [--output-dir DIR]
    python tools/export_submodel.py --config-file CFG.yml --weights W.pth --width 0.25 \
        [KEY VALUE ...]

Writes DIR/<name>.pt, DIR/<name>.onnx (dynamic batch, opset 17) and DIR/<name>.json (input size,
RGB 0-255, mean / std, bicubic resize, feature dimension, normalisation, source, width,
parameters). The exported network takes (N, 3, H, W) RGB images in 0-255, normalises them
itself and returns L2-normalised features (N, D) (--raw-features: the BNNeck output as is).
Each width's BatchNorms are folded into their convs unless --keep-bn. Afterwards both files are
run at batch sizes 1 and 3 and compared with the switchable model at that width: exit 0 if
every max abs difference is <= 1e-5, 1 if not, 2 for unusable input (with the reason).
"""
import argparse
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> int:
    import sfsc  # noqa: F401  (patches FastReID, registers SFSC components)
    from sfsc.deploy.cli import add_model_arguments, load_from_args
    from sfsc.deploy.export import export_submodel
    from sfsc.deploy.verify import TOLERANCE

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--width", type=float, required=True, help="crop ratio, e.g. 0.25")
    parser.add_argument("--output-dir", default="",
                        help="where the files go (default: <model folder>/export)")
    parser.add_argument("--name", default="",
                        help="file stem (default: <backbone>_<depth>_w<width>)")
    parser.add_argument("--keep-bn", action="store_true",
                        help="keep BatchNorm layers instead of folding them into the convs")
    parser.add_argument("--raw-features", action="store_true",
                        help="return the BNNeck features without L2 normalisation")
    add_model_arguments(parser)
    args = parser.parse_intermixed_args(argv)
    loaded = load_from_args(args)
    output_dir = args.output_dir or os.path.join(
        args.model_dir or os.path.dirname(os.path.abspath(args.weights)), "export")
    result = export_submodel(loaded, args.width, output_dir, args.name or None,
                             fold_bn=not args.keep_bn, l2_normalize=not args.raw_features)
    info = result.info
    print(f"width {info['width']:g}: {info['parameters']:,} parameters (switchable model: "
          f"{info['parameters_switchable_model']:,}), {info['output']['feature_dim']}-d "
          f"{'L2-normalised' if info['output']['l2_normalized'] else 'raw'} features, "
          f"BatchNorm {'folded' if info['batchnorm_folded'] else 'kept'}")
    for path in (result.torchscript, result.onnx, result.json):
        print(f"wrote {path}")
    print(f"max abs difference to the switchable model at width {info['width']:g} "
          f"(tolerance {TOLERANCE:g}):")
    for fmt, per_batch in result.diffs.items():
        for n, diff in per_batch.items():
            status = "ok" if diff <= TOLERANCE else "FAILED"
            print(f"  {fmt:<12} batch {n}: {diff:.3g}  {status}")
    if not result.ok:
        print("error: the exported model does not reproduce the switchable model's features",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    from sfsc.deploy.cli import run_tool

    sys.exit(run_tool(main))
