"""Where an index runs: the CPU (default), one GPU, or sharded over every GPU.

The GPU paths need faiss-gpu (``pip install -e .[gpu]``) and a CUDA device; they are written
behind these checks and cannot run on CPU-only machines, where asking for them is a named
error rather than a silent CPU fallback.
"""
from __future__ import annotations

from .errors import IndexInputError
from .faiss_import import import_faiss

__all__ = ["DEVICES", "gpu_count", "to_cpu", "to_device"]

#: ``all-gpus`` splits the vectors over the GPUs (faiss's IndexShards), so each holds 1/n.
DEVICES = ("cpu", "gpu", "all-gpus")


def gpu_count() -> int:
    """GPUs faiss can use: 0 with faiss-cpu or without CUDA."""
    faiss = import_faiss()
    return int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0


def to_device(index, device: str = "cpu"):
    """``index`` on ``device`` (one of DEVICES); the CPU index itself for ``cpu``."""
    faiss = import_faiss()
    if device not in DEVICES:
        raise IndexInputError(f"device must be one of {', '.join(DEVICES)}, got {device!r}.")
    if device == "cpu":
        return index
    if gpu_count() == 0:
        raise IndexInputError(f"--device {device} needs faiss-gpu and a CUDA device, and faiss "
                              "sees no GPU here. Use --device cpu, or install faiss-gpu: "
                              "pip uninstall faiss-cpu, then pip install -e \".[gpu]\" (both "
                              "builds provide the module faiss).")
    try:
        if device == "gpu":
            resources = faiss.StandardGpuResources()
            moved = faiss.index_cpu_to_gpu(resources, 0, index)
            moved.referenced_objects = [resources]  # freed with the index, not before
            return moved
        options = faiss.GpuMultipleClonerOptions()
        options.shard = True  # without it every GPU holds a full replica
        return faiss.index_cpu_to_all_gpus(index, co=options)
    except RuntimeError as exc:
        raise IndexInputError(f"faiss cannot run a {type(index).__name__} on the GPU "
                              f"({str(exc).strip().splitlines()[-1]}); HNSW, for one, is "
                              "CPU-only. Use --device cpu for it.") from None


def to_cpu(index):
    """A CPU copy of a GPU index (to save it); a CPU index as it is."""
    faiss = import_faiss()
    if "Gpu" in type(index).__name__ or "Shards" in type(index).__name__:
        return faiss.index_gpu_to_cpu(index)
    return index
