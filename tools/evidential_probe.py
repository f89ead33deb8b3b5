#!/usr/bin/env python3
"""Can the evidential compatible loss fit C identities? A linear probe, no backbone involved.

    python tools/evidential_probe.py --classes 32 256 751 --lambdas 0 0.02 0.2

Each class c has a mean μ_c ~ N(0, I_D); a sample of c is s·μ_c + N(0, I_D), where s
(``--separation``) says how discriminative the features already are: small early in
from-scratch training, larger for an ImageNet-pretrained backbone. Every batch (P identities ×
K images, FastReID's sampler) is normalised per dimension as the BNNeck does in training (zero
mean, bias frozen at zero), and a bias-free classifier, as FastReID's, is trained with Adam on
the evidential loss alone. Scored on K fresh samples of every class: accuracy (%), mean
uncertainty u = C/S, L_ace and KL (nats). Prints a pipe table on stderr and JSON on stdout.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from typing import Dict

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "projects", "SFSC"))

from sfsc.modeling.losses.evidential_loss import evidential_loss  # noqa: E402


def _batch_norm(feat: torch.Tensor) -> torch.Tensor:
    return (feat - feat.mean(0)) / feat.std(0)


def probe(num_classes: int, lam: float, separation: float, steps: int = 400, lr: float = 3.5e-3,
          dim: int = 512, ids_per_batch: int = 16, instances: int = 4, clamp: float = 10.0,
          seed: int = 0) -> Dict[str, float]:
    """Train a (C, dim) classifier on the evidential loss -> held-out accuracy %, u, ace, kl."""
    gen = torch.Generator().manual_seed(seed)
    means = torch.randn(num_classes, dim, generator=gen) * separation
    weight = (torch.randn(num_classes, dim, generator=gen) * 0.01).requires_grad_()
    optimizer = torch.optim.Adam([weight], lr=lr)
    for _ in range(steps):
        ids = torch.randperm(num_classes, generator=gen)[:ids_per_batch]
        targets = ids.repeat_interleave(instances)
        feat = _batch_norm(means[targets] + torch.randn(len(targets), dim, generator=gen))
        loss = evidential_loss(feat @ weight.t(), targets, lam, clamp)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        targets = torch.arange(num_classes).repeat_interleave(instances)
        logits = _batch_norm(means[targets] + torch.randn(len(targets), dim, generator=gen)) \
            @ weight.t()
        terms = evidential_loss(logits, targets, lam, clamp)
        accuracy = (logits.argmax(1) == targets).float().mean().item() * 100
    return {"accuracy": round(accuracy, 1), "uncertainty": round(terms["uncertainty"].item(), 3),
            "ace": round(terms["ace"].item(), 3), "kl": round(terms["kl"].item(), 2)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", type=int, nargs="+", default=[32, 256, 751])
    parser.add_argument("--lambdas", type=float, nargs="+", default=[0.0, 0.02, 0.2])
    parser.add_argument("--separation", type=float, nargs="+", default=[0.3, 1.0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--lr", type=float, default=3.5e-3, help="Adam learning rate")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for classes, separation, lam in itertools.product(args.classes, args.separation, args.lambdas):
        rows.append({"classes": classes, "separation": separation, "lambda": lam,
                     **probe(classes, lam, separation, args.steps, args.lr, seed=args.seed)})
        row = rows[-1]
        if len(rows) == 1:
            print("| C | separation | λ | accuracy % | u | L_ace | KL |\n" + "|---" * 7 + "|",
                  file=sys.stderr)
        print(f"| {classes} | {separation:g} | {lam:g} | {row['accuracy']} | "
              f"{row['uncertainty']} | {row['ace']} | {row['kl']} |", file=sys.stderr, flush=True)
    print(json.dumps({"steps": args.steps, "lr": args.lr, "seed": args.seed, "results": rows},
                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
