#!/usr/bin/env python3
"""Time SFSC training steps: ``sum`` vs other aggregations vs a plain single-width step.

    python tools/bench_train.py                         # ResNet-18, 128x64, batch 64
    python tools/bench_train.py --depth 50x --iters 5   # ResNet-50
    python tools/bench_train.py --device cuda --amp float16
    python tools/bench_train.py --aggregations all      # every SFSC.AGGREGATION against sum

The steps run on the same random batch, interleaved (sum, pcgrad, ..., plain, sum, ...) after
warm-up, so that load from other processes hits them alike. The aggregation steps (``sum``
and ``--aggregations``, default pcgrad) are TaskGradientTrainer.run_step on one switchable
model (SFSC.WIDTHS + the full model); ``plain`` is FastReID's SimpleTrainer.run_step on the
same network built with width 1.0 only and the original loss only, i.e. a non-switchable
FastReID step. Prints ONE JSON line: per aggregation its step's ratio to sum's and its
coefficients' time alone; times in seconds, memory in MiB.
"""
import argparse
import json
import os

import torch

from sfsc.benchmark.speed.train_speed import TrainSpeedSettings, aggregation_names, measure

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depth", default="18x", help="MODEL.BACKBONE.DEPTH: 18x | 34x | 50x | 101x")
    p.add_argument("--size", type=int, nargs=2, default=[128, 64], metavar=("H", "W"))
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--widths", type=float, nargs="+", default=[0.25, 0.5, 0.75])
    p.add_argument("--num-classes", type=int, default=751)
    p.add_argument("--iters", type=int, default=5, help="timed rounds (one step of each kind)")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--amp", choices=["none", "float16", "bfloat16"], default="none")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--aggregations", nargs="+", default=["pcgrad"], metavar="NAME",
                   help="SFSC.AGGREGATION names timed besides sum, or all")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="further KEY VALUE config overrides")
    args = p.parse_args(argv)
    try:
        aggregation_names(args.aggregations)
    except ValueError as e:
        p.error(str(e))
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = measure(TrainSpeedSettings(
        os.path.join(_ROOT, "configs", "Base-SFSC.yml"), args.depth, list(args.size),
        args.batch, list(args.widths), args.num_classes, args.iters, args.warmup, args.device,
        args.amp, list(args.opts), list(args.aggregations)))
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
