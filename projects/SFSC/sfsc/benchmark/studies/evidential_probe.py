"""Can an evidential loss fit C identities? A probe with SFSC's head, no backbone.

Each class c has a mean μ_c ~ s·N(0, I_D); a sample of c is μ_c + N(0, I_D), where s
(``separation``) says how discriminative the backbone's features already are. As in SFSC's
head, a learnable map (the embedding layer, shared) feeds one BatchNorm per width with a
learnable scale γ and its bias frozen at zero (the BNNeck), and one bias-free classifier is
shared by both widths. The full width trains with cross-entropy; the sub-width sees only the
first half of the input dimensions (a sliced layer) and trains with the evidential loss through
the shared classifier; the two gradients are summed. So the features *can* collapse: the
sub-width's γ and the map can shrink, as they do in the real network. FastReID's sampler draws
P identities × K images per batch.
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

from ...modeling.losses.evidential_loss import evidential_loss

__all__ = ["probe"]


def _bnneck(dim: int) -> nn.BatchNorm1d:
    bn = nn.BatchNorm1d(dim)
    bn.bias.requires_grad_(False)  # FastReID's BNNeck: bias frozen at zero
    return bn


def probe(num_classes: int, separation: float = 0.3, steps: int = 400, lr: float = 3.5e-3,
          dim: int = 256, ids_per_batch: int = 16, instances: int = 4, seed: int = 0,
          **loss_kwargs) -> Dict[str, float]:
    """Train the probe -> sub-width held-out accuracy %, u, mean |γ|, L_ace, KL; full-width
    accuracy %. ``loss_kwargs`` go to :func:`evidential_loss` (lam, kl_norm, activation, ...)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    means = torch.randn(num_classes, dim, generator=gen) * separation
    embed = nn.Linear(dim, dim, bias=False)
    bns = nn.ModuleDict({"full": _bnneck(dim), "sub": _bnneck(dim)})
    weight = nn.Parameter(torch.randn(num_classes, dim, generator=gen) * 0.01)
    params = [embed.weight, weight, *[p for p in bns.parameters() if p.requires_grad]]
    optimizer = torch.optim.Adam(params, lr=lr)
    half = dim // 2

    def features(x: torch.Tensor, width: str) -> torch.Tensor:
        if width == "sub":  # a sliced input layer: the sub-width sees half of the inputs
            return bns[width](F.linear(x[:, :half], embed.weight[:, :half]))
        return bns[width](embed(x))

    for _ in range(steps):
        ids = torch.randperm(num_classes, generator=gen)[:ids_per_batch]
        targets = ids.repeat_interleave(instances)
        x = means[targets] + torch.randn(len(targets), dim, generator=gen)
        ce = F.cross_entropy(features(x, "full") @ weight.t(), targets, label_smoothing=0.1)
        evid = evidential_loss(features(x, "sub") @ weight.t(), targets, **loss_kwargs)["loss"]
        optimizer.zero_grad()
        (ce + evid).backward()
        optimizer.step()
    bns.eval()
    with torch.no_grad():
        targets = torch.arange(num_classes).repeat_interleave(instances)
        x = means[targets] + torch.randn(len(targets), dim, generator=gen)
        sub = features(x, "sub") @ weight.t()
        full = features(x, "full") @ weight.t()
        terms = evidential_loss(sub, targets, **loss_kwargs)

    def accuracy(logits: torch.Tensor) -> float:
        return round((logits.argmax(1) == targets).float().mean().item() * 100, 1)

    return {"accuracy": accuracy(sub), "full_accuracy": accuracy(full),
            "uncertainty": round(terms["uncertainty"].item(), 3),
            "gamma": round(bns["sub"].weight.abs().mean().item(), 3),
            "ace": round(terms["ace"].item(), 3), "kl": round(terms["kl"].item(), 2)}
