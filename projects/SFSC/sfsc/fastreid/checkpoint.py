"""FastReID's Checkpointer made safe: weights-only loading, strict key checks, atomic writes.

FastReID loads with ``strict=False`` and only logs what did not match, so a checkpoint of
another architecture, width list or class count loads *half a model* silently. Here any
difference is an error that names the keys. Files are written to a temporary name and renamed,
so a process killed while saving never leaves a truncated checkpoint or ``last_checkpoint``.
"""
from __future__ import annotations

import logging
import os
import pickle
import re
import tempfile
from collections import defaultdict
from typing import Any, Dict, List

import torch

from fastreid.utils.checkpoint import Checkpointer, _strip_prefix_if_present

logger = logging.getLogger(__name__)

__all__ = ["SFSCCheckpointer", "CheckpointError", "atomic_write_bytes"]


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded as asked; the message says why and what to do."""


def atomic_write_bytes(path: str, write) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, rename it to ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _width_of(key: str) -> str:
    match = re.search(r"\.bn\.(\d+_\d+)\.", key)
    return match.group(1).replace("_", ".") if match else ""


def describe_mismatch(missing: List[str], unexpected: List[str], shapes: List[tuple]) -> str:
    """A readable account of why a state dict does not fit a model."""
    lines = []
    widths_missing = {_width_of(k) for k in missing} - {""}
    widths_extra = {_width_of(k) for k in unexpected} - {""}
    if widths_missing or widths_extra:
        lines.append(f"width list differs: the model has BatchNorms for widths "
                     f"{sorted(widths_missing) or '(same)'} that the checkpoint lacks, and the "
                     f"checkpoint has widths {sorted(widths_extra) or '(none)'} the model lacks "
                     "(compare SFSC.WIDTHS / SFSC.TRAIN_WIDTH with the checkpoint's config.yaml)")
    for key, ckpt_shape, model_shape in shapes:
        hint = ""
        if key.endswith("heads.weight"):
            hint = " (another number of classes: MODEL.HEADS.NUM_CLASSES / training identities)"
        lines.append(f"shape of {key}: checkpoint {ckpt_shape}, model {model_shape}{hint}")
    for title, keys in (("missing from the checkpoint", missing),
                        ("in the checkpoint but not in the model", unexpected)):
        if keys:
            groups: Dict[str, int] = defaultdict(int)
            for k in keys:
                groups[k.split(".")[0]] += 1
            sample = ", ".join(keys[:6]) + (" ..." if len(keys) > 6 else "")
            lines.append(f"{len(keys)} keys {title} (by module: {dict(groups)}): {sample}")
    return "\n  ".join(lines)


class SFSCCheckpointer(Checkpointer):
    """Checkpointer with ``torch.load(weights_only=True)``, strict loading and atomic saves.

    Args:
        allow_pickle: load files that need full unpickling (trusted legacy checkpoints only:
            unpickling can execute arbitrary code).
        strict: refuse a model state that does not match key for key and shape for shape.
    """

    def __init__(self, model, save_dir: str = "", *, allow_pickle: bool = False,
                 strict: bool = True, **kwargs):
        super().__init__(model, save_dir, **kwargs)
        self.allow_pickle = allow_pickle
        self.strict = strict

    def save(self, name: str, **kwargs: Any) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        path = os.path.join(self.save_dir, f"{name}.pth")
        self.logger.info(f"Saving checkpoint to {path}")
        atomic_write_bytes(path, lambda f: torch.save(data, f))
        self.tag_last_checkpoint(os.path.basename(path))

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        path = os.path.join(self.save_dir, "last_checkpoint")
        atomic_write_bytes(path, lambda f: f.write(last_filename_basename.encode()))

    def _load_file(self, f: str) -> dict:
        try:
            checkpoint = torch.load(f, map_location="cpu", weights_only=not self.allow_pickle)
        except pickle.UnpicklingError as e:
            raise CheckpointError(
                f"Refusing to load {f}: it holds pickled Python objects beyond tensors and plain "
                f"containers, and unpickling them could execute code ({str(e).splitlines()[0]}). "
                "If the file comes from a source you trust (e.g. a checkpoint written by an old "
                "FastReID), load it once with SFSC.CHECKPOINT.ALLOW_PICKLE True and save it "
                "again; otherwise do not use it.") from None
        except (EOFError, RuntimeError) as e:
            raise CheckpointError(f"{f} is not a readable checkpoint (truncated or not written "
                                  f"by torch.save): {e}") from None
        if not isinstance(checkpoint, dict):
            raise CheckpointError(f"{f} holds a {type(checkpoint).__name__}, not a state dict")
        if "model" not in checkpoint:  # a bare state dict
            checkpoint = {"model": checkpoint}
        return checkpoint

    def _load_model(self, checkpoint: Any):
        if self.strict:  # checked before anything is copied into the model
            state = dict(checkpoint["model"])
            _strip_prefix_if_present(state, "module.")
            own = self.model.state_dict()
            missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
            unexpected = [k for k in state if k not in own]
            shapes = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state.items()
                      if k in own and tuple(v.shape) != tuple(own[k].shape)]
            if missing or unexpected or shapes:
                raise CheckpointError(
                    "The checkpoint does not match the model, so it was not loaded (loading "
                    "the matching part only would give half a model):\n  "
                    + describe_mismatch(missing, unexpected, shapes)
                    + "\nUse the config the checkpoint was trained with (its config.yaml), or "
                    "set SFSC.CHECKPOINT.STRICT False to load only the matching part on purpose "
                    "(e.g. fine-tuning on other identities).")
        return super()._load_model(checkpoint)
