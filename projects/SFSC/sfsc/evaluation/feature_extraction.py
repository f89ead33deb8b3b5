"""Extract test features of a switchable model at several widths in one pass over the data.

Each batch is decoded and transformed once and run through every width, so a W-width model
costs one data pass, not W. Under multi-process evaluation every process extracts its shard
and the main process gathers them.
"""
from __future__ import annotations

import contextlib
import logging
import time
from typing import Dict, Iterable, Sequence, Tuple

import torch

from fastreid.utils import comm

from ..modeling.switchable import SwitchableModule, width_context

logger = logging.getLogger(__name__)

__all__ = ["extract_features"]


@torch.no_grad()
def extract_features(model: torch.nn.Module, data_loader: Iterable, widths: Sequence[float],
                     flip: bool = False) -> Tuple[Dict[float, torch.Tensor], torch.Tensor,
                                                   torch.Tensor]:
    """Features of every image at every width, in loader order.

    Returns ``({width: feats (N, D) fp32 CPU}, pids (N,), camids (N,))``; on a non-main process
    of a multi-process run the dicts are empty. ``flip`` averages with the mirrored image,
    as FastReID's TEST.FLIP does. A dense model (e.g. FastReID's own Baseline, an old model
    of one-to-one training) runs at width 1.0.
    """
    dense = not any(isinstance(m, SwitchableModule) for m in model.modules())
    if dense and [float(w) for w in widths] != [1.0]:
        raise ValueError(f"a dense (non-switchable) model runs at width 1.0 only, not {widths}")
    was_training = model.training
    model.eval()
    feats: Dict[float, list] = {w: [] for w in widths}
    pids, camids = [], []
    total = len(data_loader) if hasattr(data_loader, "__len__") else None
    start = last_log = time.perf_counter()
    try:
        for i, batch in enumerate(data_loader):
            for w in widths:
                # FastReID's own Baseline normalises the batch's images in place: give it a copy.
                with contextlib.nullcontext() if dense else width_context(model, w):
                    out = model(dict(batch, images=batch["images"].clone()) if dense else batch)
                    if flip:
                        flipped = dict(batch, images=batch["images"].flip(dims=[3]))
                        out = (out + model(flipped)) / 2
                feats[w].append(out.float().cpu())
            pids.append(batch["targets"].cpu())
            camids.append(batch["camids"].cpu())
            now = time.perf_counter()
            if total and now - last_log > 10:
                eta = (now - start) / (i + 1) * (total - i - 1)
                logger.info(f"Feature extraction: batch {i + 1}/{total}, ETA {eta:.0f} s")
                last_log = now
    finally:
        model.train(was_training)
    result = ({w: torch.cat(f) for w, f in feats.items()}, torch.cat(pids), torch.cat(camids))
    if comm.get_world_size() > 1:
        gathered = comm.gather(result, dst=0)
        if not comm.is_main_process():
            return {}, torch.empty(0), torch.empty(0)
        result = ({w: torch.cat([g[0][w] for g in gathered]) for w in widths},
                  torch.cat([g[1] for g in gathered]), torch.cat([g[2] for g in gathered]))
    logger.info(f"Extracted features of {len(result[1])} images at widths {list(widths)} "
                f"in {time.perf_counter() - start:.1f} s")
    return result
