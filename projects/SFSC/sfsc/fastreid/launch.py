"""Multi-process launcher: FastReID's ``launch`` with a backend that fits the machine.

FastReID's launcher asserts CUDA and uses NCCL. Here NCCL is used with CUDA and gloo without
it, so ``--num-gpus N`` on a CPU machine runs N processes. Jobs started by ``torchrun`` (which
sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR) are joined as they are.
"""
from __future__ import annotations

import logging
import os
from typing import Callable, Optional, Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from fastreid.utils import comm

logger = logging.getLogger(__name__)

__all__ = ["launch"]


def _backend() -> str:
    return "nccl" if torch.cuda.is_available() else "gloo"


def launch(main_func: Callable, num_gpus_per_machine: int, num_machines: int = 1,
           machine_rank: int = 0, dist_url: Optional[str] = None, args: Sequence = ()) -> None:
    """Run ``main_func(*args)`` in ``num_gpus_per_machine × num_machines`` processes."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and "LOCAL_RANK" in os.environ:  # torchrun
        local_size = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"]))
        _init(int(os.environ["LOCAL_RANK"]), int(os.environ["RANK"]),
              int(os.environ["WORLD_SIZE"]), local_size, "env://")
        main_func(*args)
        return
    world_size = num_machines * num_gpus_per_machine
    if world_size == 1:
        main_func(*args)
        return
    if dist_url == "auto" or dist_url is None:
        if num_machines > 1:
            raise ValueError("--dist-url must name the main machine (tcp://HOST:PORT) for "
                             "multi-machine jobs")
        import socket

        with socket.socket() as s:
            s.bind(("", 0))
            dist_url = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    mp.spawn(_worker, nprocs=num_gpus_per_machine, daemon=False,
             args=(main_func, world_size, num_gpus_per_machine, machine_rank, dist_url, args))


def _worker(local_rank, main_func, world_size, per_machine, machine_rank, dist_url, args):
    _init(local_rank, machine_rank * per_machine + local_rank, world_size, per_machine, dist_url)
    main_func(*args)


def _init(local_rank: int, rank: int, world_size: int, per_machine: int, init_method: str):
    if torch.cuda.is_available():
        if per_machine > torch.cuda.device_count():
            raise RuntimeError(f"{per_machine} processes per machine but only "
                               f"{torch.cuda.device_count()} GPUs")
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=_backend(), init_method=init_method,
                            world_size=world_size, rank=rank)
    # FastReID's comm helpers need the group of the processes on this machine.
    for i in range(world_size // per_machine):
        group = dist.new_group(list(range(i * per_machine, (i + 1) * per_machine)))
        if i == rank // per_machine:
            comm._LOCAL_PROCESS_GROUP = group
    comm.synchronize()
