"""Several processes for one training run, with plain torch.distributed (launched by torchrun).

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK for every process it starts (on one machine or several);
without them, or with WORLD_SIZE 1, a run is a single process and nothing here talks to anyone. Each rank
trains on its own clips; gradients are averaged by DistributedDataParallel; rank 0 alone writes files.
NCCL on CUDA (one GPU per rank: cuda:LOCAL_RANK), gloo on the CPU.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        """True when this process is one of several (a process group is running)."""
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def launched_world() -> int:
    """How many processes torchrun started for this run (1 when not started by torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def start(device_arg: str, who: str) -> tuple[Ranks, str]:
    """Join the process group torchrun set up; returns the ranks and the device name for this rank.

    Under torchrun `--device auto` / `cuda` means cuda:LOCAL_RANK, `cpu` means the CPU with gloo; any other
    device is refused (every rank would pick the same one)."""
    world = launched_world()
    if world <= 1:
        return Ranks(), device_arg
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device_arg == "cpu":
        device, backend = "cpu", "gloo"
    elif device_arg in ("auto", "cuda"):
        if not torch.cuda.is_available():
            if device_arg == "cuda":
                raise SystemExit(f"{who}: error: --device cuda: CUDA is not available in this python")
            device, backend = "cpu", "gloo"
        else:
            if local >= torch.cuda.device_count():
                raise SystemExit(f"{who}: error: LOCAL_RANK {local} but this machine has "
                                 f"{torch.cuda.device_count()} GPU(s): start at most that many processes per node")
            device, backend = f"cuda:{local}", "nccl"
            torch.cuda.set_device(local)
    else:
        raise SystemExit(f"{who}: error: --device {device_arg}: under torchrun every rank uses its own GPU "
                         f"(cuda:LOCAL_RANK); pass --device cuda (the default) or cpu")
    dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    return Ranks(rank, world, local), device


def stop(ranks: Ranks) -> None:
    if ranks.active and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ranks: Ranks) -> None:
    if ranks.active:
        dist.barrier()


def mean(ranks: Ranks, values: list[float], device) -> list[float]:
    """The average over ranks of each value (every rank gets the same numbers)."""
    if not ranks.active:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return (t / ranks.world).tolist()


def same_everywhere(ranks: Ranks, value, what: str) -> None:
    """Refuse to go on when `value` (a small picklable) differs between ranks."""
    if not ranks.active:
        return
    seen = [None] * ranks.world
    dist.all_gather_object(seen, value)
    if any(v != seen[0] for v in seen):
        raise ValueError(f"the ranks disagree on {what}: {', '.join(f'rank {r}: {v}' for r, v in enumerate(seen))}")


def from_main(ranks: Ranks, value):
    """Rank 0's `value` on every rank."""
    if not ranks.active:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
