"""ImageNet (or other dense 1.0x) initialisation of the switchable backbones: find the file, check
it, copy it into every width.

:func:`resolve_pretrained` looks for the weights of ``MODEL.BACKBONE`` in this order:

1. ``MODEL.BACKBONE.PRETRAIN_PATH``, when set: a weights file, or a folder that
   ``tools/pretrain.py`` wrote (the weights its manifest names, whatever their checksum: the
   folder's name is the key of the pretraining's parameters, the same on every machine, while
   its rounding, hence the file, differs between CPUs);
2. torch hub's cache, ``torch.hub.get_dir()/checkpoints/<torchvision's file name>``;
3. a download from torchvision's URL into that cache, unless ``SFSC_OFFLINE=1`` or the
   server cannot be reached (probed with a short timeout first).

A file named like torch hub's downloads, ``<name>-<hex>.pth`` with at least 8 hex digits, must
have a SHA-256 starting with those digits (torch hub's ``check_hash`` rule); one with a
``<file>.sha256`` beside it (a shipped file) must have that whole SHA-256. Any failure raises
:class:`PretrainedWeightsError`, whose message names the file, where to put it and the override
that trains from scratch. Training calls :func:`check_pretrained` before building anything.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import urllib.error
import urllib.request
from typing import Dict, Optional, Tuple

import torch
from torch import nn
from torchvision import models as tvm

from ...config_checks import ConfigError
from ...data.synthetic import read_manifest
from ..switchable import (
    SwitchableBatchNorm1d,
    SwitchableBatchNorm2d,
    SwitchableConv2d,
    SwitchableLinear,
    width_key,
)

__all__ = ["PretrainedWeightsError", "PretrainedChecksumError", "OFFLINE_ENV",
           "torchvision_weights", "resolve_pretrained", "check_pretrained", "load_pretrained",
           "load_torchvision_state", "verify_checksum", "hash_prefix", "sha256_of"]

logger = logging.getLogger(__name__)

#: Set to 1 to never download (tests, air-gapped machines): a missing file is an error at once.
OFFLINE_ENV = "SFSC_OFFLINE"
_PROBE_TIMEOUT_S = 5.0
_HASH_NAME = re.compile(r"-([0-9a-f]{8,64})\.pth$")
_BN_TENSORS = ("weight", "bias", "running_mean", "running_var")

# Torchvision's ImageNet weights per switchable backbone and MODEL.BACKBONE.DEPTH; a size
# missing from its table (ShuffleNet v1, MobileNetV2 0.5x, ...) has none. FastReID's bag of
# tricks starts from the first (IMAGENET1K_V1) weights.
_TORCHVISION: Dict[str, Dict[str, tvm.WeightsEnum]] = {
    "build_switchable_resnet_backbone": {
        "18x": tvm.ResNet18_Weights.IMAGENET1K_V1, "34x": tvm.ResNet34_Weights.IMAGENET1K_V1,
        "50x": tvm.ResNet50_Weights.IMAGENET1K_V1, "101x": tvm.ResNet101_Weights.IMAGENET1K_V1},
    "build_switchable_mobilenetv2_backbone": {"1.0x": tvm.MobileNet_V2_Weights.IMAGENET1K_V1},
    "build_switchable_shufflenetv2_backbone": {
        "0.5x": tvm.ShuffleNet_V2_X0_5_Weights.IMAGENET1K_V1,
        "1.0x": tvm.ShuffleNet_V2_X1_0_Weights.IMAGENET1K_V1,
        "1.5x": tvm.ShuffleNet_V2_X1_5_Weights.IMAGENET1K_V1,
        "2.0x": tvm.ShuffleNet_V2_X2_0_Weights.IMAGENET1K_V1},
    "build_switchable_shufflenet_backbone": {},
}

_SCRATCH = "or train from scratch with MODEL.BACKBONE.PRETRAIN False"
_verified: Dict[Tuple[str, int, int], str] = {}  # (path, size, mtime) -> sha256, per process


class PretrainedWeightsError(ConfigError):
    """Pretrained weights that cannot be found, fetched or read; the message says what to do."""


class PretrainedChecksumError(PretrainedWeightsError):
    """A weights file whose SHA-256 does not start with the hash prefix in its name."""


def _size(depth) -> str:
    """MODEL.BACKBONE.DEPTH without spelling variants: "1x", "1.0x" and "1.00x" are one size."""
    text = str(depth).strip().rstrip("x")
    try:
        return f"{float(text):g}"
    except ValueError:
        return text


def torchvision_weights(name: str, depth) -> Optional[tvm.WeightsEnum]:
    """Torchvision's ImageNet weights of switchable backbone ``name`` at MODEL.BACKBONE.DEPTH.

    None for a backbone that is not SFSC's; PretrainedWeightsError for a size without weights.
    """
    if name not in _TORCHVISION:
        return None
    table = _TORCHVISION[name]
    sizes = {_size(k): w for k, w in table.items()}
    if _size(depth) not in sizes:
        known = ", ".join(f"{k} ({w.url.rsplit('/', 1)[1]})" for k, w in table.items()) or "none"
        raise PretrainedWeightsError(
            f"MODEL.BACKBONE.PRETRAIN is True but torchvision has no ImageNet weights for "
            f"{name} at MODEL.BACKBONE.DEPTH {depth!r} (it has: {known}). Set "
            "MODEL.BACKBONE.PRETRAIN_PATH to a dense 1.0x state dict with this network's "
            f"parameter names, {_SCRATCH}.")
    return sizes[_size(depth)]


def hash_prefix(path: str) -> Optional[str]:
    """The SHA-256 prefix a torch-hub style name (``resnet18-f37072fd.pth``) carries, or None."""
    m = _HASH_NAME.search(os.path.basename(path))
    return m.group(1) if m else None


def sha256_of(path: str) -> str:
    """The file's SHA-256 in hex, computed once per path, size and mtime in a process."""
    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _verified:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _verified[key] = digest.hexdigest()
    return _verified[key]


def _sidecar_digest(path: str) -> Optional[str]:
    """The SHA-256 that ``<path>.sha256`` (``sha256sum`` format) gives, or None without one."""
    try:
        with open(path + ".sha256") as f:
            return f.read().split()[0].lower()
    except (OSError, IndexError):
        return None


def verify_checksum(path: str) -> None:
    """Raise PretrainedChecksumError if ``path`` does not match the hash prefix its name
    carries, or the whole SHA-256 of a ``<path>.sha256`` file beside it."""
    expected = _sidecar_digest(path)
    if expected is not None and sha256_of(path) != expected:
        raise PretrainedChecksumError(
            f"Checksum error: {path} has SHA-256 {sha256_of(path)}, but {path}.sha256 says "
            f"{expected}: the file is damaged, truncated or replaced (a Git LFS pointer or an "
            "interrupted copy?). Restore it (git checkout -- <file>) or rebuild it as the "
            f"README beside it says, or {_SCRATCH}.")
    prefix = hash_prefix(path)
    if prefix is None:
        return
    actual = sha256_of(path)
    if not actual.startswith(prefix):
        raise PretrainedChecksumError(
            f"Checksum error: {path} has SHA-256 {actual[:len(prefix)]}..., but its name says "
            f"{prefix}...: the file is damaged or truncated (an interrupted copy or download?). "
            "Delete it and put a fresh copy there (it is downloaded again when the machine is "
            "online); a file whose name ends in -<hex digits>.pth without being a hash must be "
            f"renamed. Or {_SCRATCH}.")


def _offline_reason(url: str) -> Optional[str]:
    """None if ``url``'s server answers within the probe timeout, else why not."""
    if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        return f"{OFFLINE_ENV}={os.environ[OFFLINE_ENV]}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"),
                                    timeout=_PROBE_TIMEOUT_S):
            return None
    except (urllib.error.URLError, OSError, ValueError) as e:
        return f"{url} is unreachable: {getattr(e, 'reason', e)}"


def _download(url: str, path: str, prefix: Optional[str]) -> None:
    """torch hub's download into ``path`` (atomic), checking the hash prefix on the way."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.hub.download_url_to_file(url, path, hash_prefix=prefix, progress=True)


def resolve_pretrained(bb) -> str:
    """Path of the checked weights file for config node ``MODEL.BACKBONE`` (see module doc).

    May download into torch hub's cache. Raises PretrainedWeightsError.
    """
    if bb.PRETRAIN_PATH:
        path = os.path.expanduser(bb.PRETRAIN_PATH)
        if os.path.isdir(path):
            path = os.path.join(path, _pretraining_weights(path))
        if not os.path.isfile(path):
            raise PretrainedWeightsError(
                f"MODEL.BACKBONE.PRETRAIN_PATH {bb.PRETRAIN_PATH!r} is neither a weights file "
                f"nor a finished tools/pretrain.py folder (relative paths start at "
                f"{os.getcwd()}). A file shipped with the repository is restored with "
                f"`git checkout -- {bb.PRETRAIN_PATH}`. A folder "
                f"<arch>-<key> is written by `python tools/pretrain.py --threads 1` with the "
                f"parameters of that key (25 to 85 min on 2 cores; its file differs between CPUs). "
                f"Or point it at weights, leave it empty to use torchvision's ImageNet weights "
                f"from torch hub's cache, {_SCRATCH}.")
        verify_checksum(path)
        return path
    weights = torchvision_weights(bb.NAME, bb.DEPTH)
    if weights is None:
        raise PretrainedWeightsError(
            f"MODEL.BACKBONE.PRETRAIN is True but {bb.NAME} is not a switchable backbone with "
            f"known weights: set MODEL.BACKBONE.PRETRAIN_PATH, {_SCRATCH}.")
    url = weights.url
    file_name = url.rsplit("/", 1)[1]
    folder = os.path.join(torch.hub.get_dir(), "checkpoints")
    path = os.path.join(folder, file_name)
    if not os.path.isfile(path):
        reason = _offline_reason(url)
        if reason is None:
            logger.info(f"Downloading {url} to {path}")
            try:
                _download(url, path, hash_prefix(path))
            except (urllib.error.URLError, OSError) as e:
                reason = f"the download of {url} failed: {e}"
            except RuntimeError as e:  # torch hub's "invalid hash value" after a bad download
                raise PretrainedChecksumError(f"Checksum error downloading {url}: {e}. Run "
                                              f"again, or {_SCRATCH}.") from None
        if reason is not None:
            raise PretrainedWeightsError(
                f"MODEL.BACKBONE.PRETRAIN is True: {bb.NAME} {bb.DEPTH} starts from "
                f"torchvision's ImageNet weights {file_name}, which are not in torch hub's "
                f"cache {folder}/ and cannot be downloaded ({reason}). Download {url} on a "
                f"machine with internet access and copy it to {path} (TORCH_HOME moves the "
                "cache), or put it anywhere and set MODEL.BACKBONE.PRETRAIN_PATH to it, "
                f"{_SCRATCH}.")
    verify_checksum(path)
    return path


def _pretraining_weights(folder: str) -> str:
    """The weights file name a finished pretraining folder's manifest names ('' if none)."""
    manifest = read_manifest(folder)
    return str(manifest.get("weights", "")) if isinstance(manifest, dict) else ""


def check_pretrained(cfg) -> Optional[str]:
    """Before building anything: the weights file training will load, or None without PRETRAIN.

    Only switchable backbones are checked (FastReID's own ones fetch their own weights).
    Raises PretrainedWeightsError with the fix.
    """
    bb = cfg.MODEL.BACKBONE
    if not bb.PRETRAIN or (bb.NAME not in _TORCHVISION and not bb.PRETRAIN_PATH):
        return None
    return resolve_pretrained(bb)


def load_torchvision_state(model: nn.Module, state_dict: Dict[str, torch.Tensor]) -> int:
    """Copy dense weights into ``model``'s switchable layers; returns the number of layers loaded.

    Conv / linear weights are copied whole (every width slices them; a network narrower than
    the weights takes their leading channels); each width's BN takes the leading channels of
    the dense BN. Keys the model does not have (e.g. an ImageNet classifier)
    are ignored. Raises ValueError if a switchable layer's weight is missing or has another shape.
    """
    loaded = 0
    for name, module in model.named_modules():
        if isinstance(module, (SwitchableConv2d, SwitchableLinear)):
            for tensor in ("weight", "bias"):
                own = getattr(module, tensor)
                if own is None:
                    continue
                key = f"{name}.{tensor}"
                src = state_dict.get(key)
                # A network whose widest width is below 1.0 (a unified 0.25x model) takes the
                # leading channels, as that width of the full switchable network does; at 1.0
                # the shapes must agree (another architecture, e.g. a 0.5 depth multiplier).
                narrower = max(module.widths) < 1.0
                if src is None or src.dim() != own.dim() or src.shape[2:] != own.shape[2:] \
                        or any(s < o for s, o in zip(src.shape, own.shape)) \
                        or (src.shape != own.shape and not narrower):
                    found = tuple(src.shape) if src is not None else "nothing"
                    raise ValueError(f"pretrained weights: {key} should have shape "
                                     f"{tuple(own.shape)}, found {found}; they are not those of "
                                     "this architecture at 1.0x")
                own.data.copy_(src[tuple(slice(0, n) for n in own.shape)])
            loaded += 1
        elif isinstance(module, (SwitchableBatchNorm2d, SwitchableBatchNorm1d)):
            for w, c in zip(module.widths, module.num_features_list):
                bn = module.bn[width_key(w)]
                for tensor in _BN_TENSORS:
                    key = f"{name}.{tensor}"
                    if key not in state_dict:
                        raise ValueError(f"pretrained weights lack {key}")
                    getattr(bn, tensor).data.copy_(state_dict[key][:c])
    return loaded


def load_pretrained(model: nn.Module, cfg) -> Optional[str]:
    """Initialise a switchable backbone from its resolved weights if MODEL.BACKBONE.PRETRAIN.

    Returns the file loaded (None without PRETRAIN). Raises PretrainedWeightsError.
    """
    bb = cfg.MODEL.BACKBONE
    if not bb.PRETRAIN:
        return None
    path = resolve_pretrained(bb)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a pickle error, a zip error, a truncated file: all unreadable
        raise PretrainedWeightsError(f"{path} is not a readable torch state dict ({e}); "
                                     f"replace it, {_SCRATCH}.") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PretrainedWeightsError(f"{path} does not hold a flat state dict of tensors "
                                     "(parameter name -> tensor) as torchvision's files do.")
    try:
        n = load_torchvision_state(model, state)
    except ValueError as e:
        raise PretrainedWeightsError(f"{path}: {e}. Use the weights of {bb.NAME} "
                                     f"{bb.DEPTH}, {_SCRATCH}.") from None
    logger.info(f"Loaded {n} pretrained conv / linear weights (+ per-width BN) from {path} into "
                f"{type(model).__name__}")
    return path
