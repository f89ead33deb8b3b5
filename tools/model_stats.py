#!/usr/bin/env python3
r"""Cost of every width of a switchable model once exported: parameters, MACs, file sizes, latency.

    python tools/model_stats.py --config-file configs/Market1501/sfsc_R18.yml [KEY VALUE ...]
    python tools/model_stats.py --model-dir OUTPUT_DIR --threads 4 --output stats.json

Each width is exported as tools/export_submodel.py exports it (static sub-model, BatchNorm
folded, L2-normalised output) into a temporary folder. Reported per width: parameters of that
network; multiply-accumulates of one image at INPUT.SIZE_TEST (every Conv2d / Linear, counted
with forward hooks); ONNX and TorchScript file sizes; CPU latency at each --batch-sizes, the
median of --repeats timed calls after --warmup calls, with the widths interleaved so that they
share the machine's load, under torch.set_num_threads(--threads) (or onnxruntime's threads).
A config alone gives random weights, which cost the same as trained ones. Prints a Markdown
table and the load average; --output writes everything (all timings included) as JSON.
"""
import argparse
import json
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> int:
    import sfsc  # noqa: F401  (patches FastReID, registers SFSC components)
    from sfsc.deploy.cli import add_model_arguments, load_from_args
    from sfsc.deploy.stats import RUNTIMES, format_table, measure_widths

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--widths", type=float, nargs="+", default=None,
                        help="widths to report (default: all the model holds)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default: 1)")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per width")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls per width first")
    parser.add_argument("--runtime", choices=RUNTIMES, default="torchscript")
    parser.add_argument("--no-latency", action="store_true", help="sizes and MACs only")
    parser.add_argument("--output", default="", help="write the statistics as JSON here")
    add_model_arguments(parser, need_weights=False)
    args = parser.parse_intermixed_args(argv)
    loaded = load_from_args(args, need_weights=False)
    stats = measure_widths(loaded, args.widths, args.batch_sizes, args.threads, args.repeats,
                           args.warmup, args.runtime, latency=not args.no_latency)
    size = "x".join(str(v) for v in stats["input_size"])
    print(f"{stats['backbone']} {stats['depth']}, input {size}, {stats['feature_dim']}-d "
          f"features" + ("" if args.no_latency else
                         f", {args.runtime} on {args.threads} thread(s), median of "
                         f"{args.repeats}"))
    print(format_table(stats))
    print("load average (1, 5, 15 min): before " +
          ", ".join(f"{v:.2f}" for v in stats["load_average_before"]) + "; after " +
          ", ".join(f"{v:.2f}" for v in stats["load_average_after"]) +
          f"; {stats['cpu_count']} CPUs")
    if args.output:
        with open(args.output, "w") as f:
            json.dump(stats, f, indent=2)
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    from sfsc.deploy.cli import run_tool

    sys.exit(run_tool(main))
