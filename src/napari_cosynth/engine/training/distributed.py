"""Running the same training function in one process or in many under ``torchrun``.

torch's own launcher and DistributedDataParallel do the work; this module only reads the
environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK), picks the backend (gloo on CPU, nccl on
CUDA), wraps the model, and offers the two collectives training needs (a barrier around checkpoint
writes and a mean of the logged losses). Without those variables everything is a single process and
no process group is created.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ...errors import ConfigError

_CPU = torch.device("cpu")  # torch.device is immutable, so one shared default is safe


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands: ``rank`` of ``world_size``, its device, and whether it writes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = _CPU
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        """Only the main process writes logs, sample grids and checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """True when torchrun (or an equivalent launcher) set RANK and WORLD_SIZE."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def resolve_device(device: str | torch.device | None, local_rank: int = 0) -> torch.device:
    """``None`` or "auto" picks as everywhere in the package (CUDA, then MPS, then the CPU); a CUDA
    device without an index becomes this process's local GPU.

    Raises
    ------
    ConfigError
        If CUDA is asked for but not available.
    """
    if device is None or str(device) == "auto":
        from ..device import resolve_device as pick

        device = pick("auto")
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device}: CUDA is not available here; use --device cpu")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device


def init_distributed(device: str | torch.device | None = None) -> DistributedContext:
    """Join torchrun's process group if launched by it; otherwise describe a single process.

    The backend is nccl for CUDA devices and gloo for the CPU. A group that already exists (a caller
    initialised it) is reused and left for that caller to destroy.
    """
    if not launched_by_torchrun():
        return DistributedContext(device=resolve_device(device))
    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    created = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        created = True
    return DistributedContext(rank, world, local_rank, dev, created)


def shutdown(ctx: DistributedContext) -> None:
    """Destroy the process group if :func:`init_distributed` created it."""
    if ctx.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(module: torch.nn.Module, ctx: DistributedContext) -> torch.nn.Module:
    """DistributedDataParallel around ``module`` in a multi-process run, ``module`` itself otherwise."""
    if not ctx.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def barrier(ctx: DistributedContext) -> None:
    if ctx.distributed:
        dist.barrier()


def mean_over_ranks(values: dict[str, float], ctx: DistributedContext) -> dict[str, float]:
    """Average scalar losses over all processes (for the log; gradients are averaged by DDP)."""
    if not ctx.distributed:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=_collective_device(ctx))
    dist.all_reduce(t)
    t /= ctx.world_size
    return dict(zip(keys, t.tolist(), strict=True))


def broadcast_int(value: int, ctx: DistributedContext) -> int:
    """Rank 0's ``value`` on every rank (e.g. the step a resumed run starts from)."""
    if not ctx.distributed:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=_collective_device(ctx))
    dist.broadcast(t, src=0)
    return int(t.item())


def _collective_device(ctx: DistributedContext) -> torch.device:
    # nccl only moves CUDA tensors; gloo only CPU ones.
    return ctx.device if ctx.device.type == "cuda" else torch.device("cpu")
