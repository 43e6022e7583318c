"""This process's place in a torchrun job: global rank, GPU on this node, and the collectives the
trainer needs. One process (WORLD_SIZE unset) is a job of one, with no process group.

torchrun sets RANK (0..WORLD_SIZE-1 over all nodes), LOCAL_RANK (0..nproc_per_node-1 on this
node) and WORLD_SIZE; each rank drives the GPU of its LOCAL_RANK.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    local_rank: int = 0
    world: int = 1

    @classmethod
    def from_env(cls) -> "Distributed":
        """Read torchrun's variables and join its process group (NCCL on GPUs, gloo on CPUs)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        job = cls(int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world)
        if world > 1 and not dist.is_initialized():
            if torch.cuda.is_available():
                torch.cuda.set_device(job.device)
                dist.init_process_group("nccl", device_id=job.device)
            else:
                dist.init_process_group("gloo")
        return job

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, metrics and reports."""
        return self.rank == 0

    @property
    def device(self) -> torch.device:
        """This rank's GPU (cuda:LOCAL_RANK), or the CPU where there is none."""
        return torch.device("cuda", self.local_rank) if torch.cuda.is_available() else torch.device("cpu")

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model as the training step calls it: DDP (gradients averaged over ranks) in a job of
        several, the model itself in a job of one."""
        if self.world == 1:
            return model
        device_ids = [self.local_rank] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Each value averaged over the ranks (a rank's losses are means over its share of the
        batch, so this is the global batch's loss)."""
        if self.world == 1:
            return values
        stacked = torch.tensor(list(values.values()), dtype=torch.float64, device=self.device)
        dist.all_reduce(stacked)
        return dict(zip(values, (stacked / self.world).tolist()))

    def gather(self, value):
        """[value of rank 0, value of rank 1, ...] on every rank (any picklable value)."""
        if self.world == 1:
            return [value]
        values = [None] * self.world
        dist.all_gather_object(values, value)
        return values

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()
