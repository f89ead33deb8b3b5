"""What a benchmark run depends on besides its config's values, as entries of its effective
config (so a run record matches only a run with the same ones), and the machine it ran on.

- ``pretrained_weights``: the weights file MODEL.BACKBONE.PRETRAIN_PATH resolves to, by name
  when the name carries its SHA-256 prefix (checked on load), else name and checksum;
- ``inputs/<KEY>``: the checksum of what MODEL.WEIGHTS, SFSC.DENSE_INIT.WEIGHTS,
  SFSC.OLD_MODEL.WEIGHTS (a file, not another run's placeholder) and SFSC.DATA.CUSTOM_PATH
  name: a path is a location, its content is the input;
- ``dataset/<NAME>``: a synthetic dataset's manifest header (generator version, seed,
  parameters), which decides every image;
- ``device`` (``cpu`` | ``cuda``) and ``precision`` (``fp32`` | ``float16`` | ``bfloat16``) as
  training resolves them: ``MODEL.DEVICE cuda`` trains on the CPU where CUDA is absent, and
  float16 AMP falls back to fp32 there;
- ``numerics``: the fingerprint of the training code the config selects
  (:func:`sfsc.engine.numerics.reference_numbers`), so a record made by other training code
  is not reused.

A file that names an input and does not exist is an error (:class:`MissingInputError`): a
record cannot say which input it was made from.

The CPU model is not an input: the same inputs on two CPUs are one run whose rounding differs
(:func:`machine` names it in the record, for the report to say what it pooled).
"""
from __future__ import annotations

import hashlib
import os
import platform
from typing import Any, Dict, Optional

import torch

from ...config_checks import ConfigError
from ...data import synthetic_header
from ...data.custom import custom_data_path
from ...data.loaders import dataset_root
from ...engine.numerics import reference_numbers
from ...engine.trainer import training_precision
from ...modeling.backbones.pretrained import check_pretrained, hash_prefix, sha256_of

__all__ = ["LOCATION_KEYS", "NUMERICS", "MissingInputError", "device_kind", "file_checksum",
           "input_entries", "machine"]

#: Config keys that name an input by path; records compare their content entries instead.
LOCATION_KEYS = ("MODEL.BACKBONE.PRETRAIN_PATH", "MODEL.WEIGHTS", "SFSC.DENSE_INIT.WEIGHTS",
                 "SFSC.OLD_MODEL.WEIGHTS", "SFSC.DATA.CUSTOM_PATH")
_CHECKSUM_DIGITS = 16
#: The effective-config entry that holds the training-numerics fingerprint.
NUMERICS = "numerics"


class MissingInputError(ConfigError):
    """A config names an input file or folder that does not exist."""


def file_checksum(path: str) -> str:
    """The first 16 hex digits of the file's SHA-256."""
    return sha256_of(path)[:_CHECKSUM_DIGITS]


def _folder_checksum(folder: str) -> str:
    # Every file's relative path and size: reading every image of a dataset would take longer
    # than some runs, and a changed image of the same size is rare enough to accept.
    digest = hashlib.sha256()
    for parent, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(parent, name)
            digest.update(f"{os.path.relpath(path, folder)}\t{os.path.getsize(path)}\n".encode())
    return "files:" + digest.hexdigest()[:_CHECKSUM_DIGITS]


def _content(key: str, path: str) -> str:
    if os.path.isdir(path):
        return _folder_checksum(path)
    if os.path.isfile(path):
        return file_checksum(path)
    raise MissingInputError(f"{key} names {path}, which does not exist: a run record holds "
                            "the checksum of each input, so the input must be there.")


def device_kind(cfg) -> str:
    """``cuda`` if the run trains on a GPU, else ``cpu`` (as training resolves MODEL.DEVICE)."""
    return "cuda" if cfg.MODEL.DEVICE.startswith("cuda") and torch.cuda.is_available() \
        else "cpu"


def _pretrained_weights(cfg, repo: str) -> Optional[str]:
    bb = cfg.MODEL.BACKBONE
    if not bb.PRETRAIN:
        return None
    if bb.PRETRAIN_PATH and not os.path.isabs(bb.PRETRAIN_PATH):
        bb.PRETRAIN_PATH = os.path.join(repo, bb.PRETRAIN_PATH)
    found = check_pretrained(cfg)  # verifies a hash-named file's checksum
    if found is None:
        return None
    name = os.path.basename(found)
    return name if hash_prefix(found) else f"{name}@sha256:{file_checksum(found)}"


def input_entries(cfg, repo: str) -> Dict[str, Any]:
    """The effective-config entries of ``cfg``'s inputs (see the module doc); relative paths
    start at ``repo``, where runs train (SFSC.DATA.CUSTOM_PATH at the dataset root, as the
    data loader resolves it). ``cfg`` is not frozen."""
    cfg = cfg.clone()
    entries: Dict[str, Any] = {}
    weights = _pretrained_weights(cfg, repo)
    if weights is not None:  # other weights, other results (10 mAP at 0.25x, measured)
        entries["pretrained_weights"] = weights
    paths = {"MODEL.WEIGHTS": cfg.MODEL.WEIGHTS,
             "SFSC.DENSE_INIT.WEIGHTS": cfg.SFSC.DENSE_INIT.WEIGHTS,
             "SFSC.OLD_MODEL.WEIGHTS": cfg.SFSC.OLD_MODEL.WEIGHTS}
    for key, path in paths.items():
        if path and "{" not in path:  # "{run}/model_final.pth": another run, compared by config
            entries[f"inputs/{key}"] = _content(key, os.path.join(repo, path))
    custom = cfg.SFSC.DATA.CUSTOM_PATH
    if custom:
        path = custom_data_path(os.path.join(repo, dataset_root()), custom)
        entries["inputs/SFSC.DATA.CUSTOM_PATH"] = _content("SFSC.DATA.CUSTOM_PATH", path)
    for name in dict.fromkeys((*cfg.DATASETS.NAMES, *cfg.DATASETS.TESTS)):
        header = synthetic_header(name)
        if header is not None:
            entries[f"dataset/{name}"] = header
    entries["device"] = device_kind(cfg)
    entries["precision"] = training_precision(cfg.SOLVER.AMP.ENABLED, cfg.SOLVER.AMP.DTYPE,
                                              entries["device"])
    entries[NUMERICS] = reference_numbers(cfg)
    return entries


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine(device: str) -> Dict[str, Any]:
    """Where a run trains: the CPU model, the vector instructions torch's CPU kernels use
    (``AVX512``, ``AVX2``, ...: two CPUs of one model name can round differently), the device
    (``cpu`` or the GPU's name), torch."""
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else None
    return {"cpu": _cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "device": gpu or "cpu", "torch": torch.__version__}
