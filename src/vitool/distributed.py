"""What a distributed run (torchrun) needs beyond DDP: one value for every process, a whole batch on
every process, and each process's share of a batch. In a single process each is the identity."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


def broadcast_from_main(value: Any) -> Any:
    """Process 0's value in every process of a distributed run (BN statistics differ a little between
    processes, so their labels, clusters or matches would too); the value itself otherwise."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        shared = [value]
        torch.distributed.broadcast_object_list(shared, src=0)
        return shared[0]
    return value


def computed_on_main(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` computed by process 0 alone and broadcast to every process of a distributed
    run (sums on a GPU may differ between processes; one answer for all, and the others do not wait on
    the same work); the plain call otherwise."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return broadcast_from_main(fn(*args, **kwargs) if torch.distributed.get_rank() == 0 else None)
    return fn(*args, **kwargs)


def gather_batch(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The whole batch from every process of a distributed run (each holds every world-th image), so
    every process makes the same memory updates; the tensors themselves otherwise."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return tensors
    dist = torch.distributed
    world = dist.get_world_size()
    size = torch.tensor([len(tensors[0])], device=tensors[0].device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    longest = int(max(sizes))
    out = []
    for t in tensors:
        padded = torch.zeros((longest, *t.shape[1:]), dtype=t.dtype, device=t.device)
        padded[: len(t)] = t
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded)
        out.append(torch.cat([part[: int(n)] for part, n in zip(parts, sizes, strict=True)]))
    return tuple(out)


class RankSlice:
    """Each process of a distributed run takes every world-th image of each batch of the shared sampler,
    so every process sees every identity of the batch in both modalities."""

    def __init__(self, sampler: Any, rank: int, world: int) -> None:
        self.sampler, self.rank, self.world = sampler, rank, world

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        for batch in self.sampler:
            yield batch[self.rank :: self.world]


def gather_rows(rows: torch.Tensor, total: int) -> torch.Tensor:
    """All ``total`` rows from the processes of a distributed run that each hold every world-th one (rank r
    rows r, r + world, ...), back in their order; the rows themselves otherwise."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return rows
    world = torch.distributed.get_world_size()
    (every,) = gather_batch(rows)  # rank 0's rows, then rank 1's, ...
    out = torch.empty((total, *rows.shape[1:]), dtype=rows.dtype, device=rows.device)
    start = 0
    for rank in range(world):
        count = len(range(rank, total, world))
        out[rank::world] = every[start : start + count]
        start += count
    return out
