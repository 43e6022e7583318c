"""Training samples from demos in memory: (observation at t, actions t..t+H-1, observation at t+H),
gathered a whole batch at a time from tensors on the training device."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from vla_policy.data.demos import Demo
from vla_policy.data.normalize import NormStats
from vla_policy.data.rewording import WordingPool


class DemoWindows(Dataset):
    """Every (demo, t) as one sample; actions past the episode end are padded and masked.

    All demos live in a few concatenated tensors (on the training device if asked), and
    `batch(indices)` gathers a whole batch with index arithmetic: no per-sample Python, so a
    GPU is fed at its own pace.
    """

    def __init__(
        self,
        demos: list[Demo],
        stats: NormStats,
        chunk: int,
        device: torch.device | str = "cpu",
        wordings: WordingPool | None = None,
    ):
        """`wordings`: reword at training time; every sample takes its demo's goal in a random
        template of the pool (its grounding rewordings in the same template) instead of the
        recorded instruction."""
        self.stats, self.chunk, self.device = stats, chunk, torch.device(device)
        lengths = torch.tensor([len(d.actions) for d in demos])
        self.images = torch.cat([d.images for d in demos]).to(self.device)  # (N, C, 3, S, S) uint8
        self.proprio = torch.from_numpy(
            np.concatenate([stats.normalize_proprio(d.proprio) for d in demos]).astype(np.float32)
        ).to(self.device)  # (N, P)
        self.actions = torch.from_numpy(
            np.concatenate([stats.normalize_actions(d.actions) for d in demos]).astype(np.float32)
        ).to(self.device)  # (N, A) in [-1, 1]
        self.demo_of_step = torch.repeat_interleave(torch.arange(len(demos)), lengths).to(self.device)  # (N,)
        self.demo_end = torch.cumsum(lengths, 0).to(self.device)  # (D,) exclusive end of each demo's steps
        self.text_ids = torch.stack([d.text_ids for d in demos]).to(self.device)  # (D, L)
        self.text_mask = torch.stack([d.text_mask for d in demos]).to(self.device)  # (D, L)
        self.proprio_dim = self.proprio.shape[1]
        self.object_position = self._concat([d.object_position for d in demos])  # (N, 3K) or None
        self.naming = (  # (D, R*K, L) ids, (D, R*K, L) mask, (D, R*K) valid, (D, R*K, 2) objects; or None
            tuple(
                torch.stack([getattr(d, f) for d in demos]).to(self.device)
                for f in ("naming_ids", "naming_mask", "naming_valid", "naming_objects")
            )
            if demos and all(d.naming_ids is not None for d in demos) and self.object_position is not None
            else None
        )

        self.wordings = None
        if wordings is not None:
            if any(d.goal is None for d in demos):
                raise ValueError("rewording needs every demo's goal (the dataset's `goal` attributes)")
            two_roles = self.naming is not None and self.naming[3].shape[1] == 2 * len(wordings.names)
            rows, named = wordings.naming(with_place=two_roles)
            self.wordings = (  # (G, W, L) ids, (G, W, L) mask, (D,) each demo's goal row, (G, R*K) rows, (G, R*K, 2)
                wordings.ids.to(self.device),
                wordings.mask.to(self.device),
                torch.tensor([wordings.goal_index(d.goal) for d in demos], device=self.device),
                rows.to(self.device),
                named.to(self.device),
            )

    def _concat(self, per_demo: list) -> torch.Tensor | None:
        """Per-demo (T, k) arrays -> one (N, k) tensor on the device; None unless every demo has one."""
        if not per_demo or any(x is None for x in per_demo):
            return None
        return torch.from_numpy(np.concatenate(per_demo)).to(self.device)

    def __len__(self) -> int:
        return len(self.actions)

    def __getitem__(self, i: int) -> dict:
        return {k: v[0] for k, v in self.batch(torch.tensor([i])).items()}

    def batch(self, indices: torch.Tensor | list[int]) -> dict:
        """(B,) step indices -> a batch dict on this dataset's device (images still uint8)."""
        t = torch.as_tensor(indices, device=self.device)
        demo = self.demo_of_step[t]
        end = self.demo_end[demo]
        steps = t[:, None] + torch.arange(self.chunk, device=self.device)  # (B, H)
        valid = steps < end[:, None]
        actions = self.actions[torch.minimum(steps, end[:, None] - 1)] * valid[..., None]  # (B, H, A)
        batch = {
            "images": self.images[t],  # (B, C, 3, S, S) uint8; the trainer scales and augments
            "future_images": self.images[torch.minimum(t + self.chunk, end - 1)],
            "camera_mask": torch.ones(len(t), self.images.shape[1], dtype=torch.bool, device=self.device),
            "text_ids": self.text_ids[demo],
            "text_mask": self.text_mask[demo],
            "proprio": self.proprio[t],
            "actions": actions,
            "action_mask": valid,
        }
        if self.object_position is not None:
            batch["object_position"] = self.object_position[t]
        if self.wordings is not None:
            return self._reworded(batch, t, demo)
        if self.naming is not None:  # one rewording per sample, drawn from those that exist
            ids, mask, valid, objects = self.naming
            k = torch.multinomial(valid[demo].float(), 1)[:, 0]  # (B,)
            self._ask_about(batch, t, objects[demo, k], ids[demo, k], mask[demo, k], objects.shape[1])
        return batch

    def _reworded(self, batch: dict, t: torch.Tensor, demo: torch.Tensor) -> dict:
        """The batch with a fresh training wording of each sample's goal, and its grounding
        rewording (another object named in one role) in the same template."""
        ids, mask, demo_goal, rows, named_objects = self.wordings
        goal = demo_goal[demo]  # (B,)
        template = torch.randint(ids.shape[1], (len(t),), device=self.device)  # (B,)
        batch["text_ids"], batch["text_mask"] = ids[goal, template], mask[goal, template]
        batch["goal"] = goal  # (B,) the goal's row in the grammar's order (aux.goal)
        if self.naming is not None:
            q = torch.multinomial((rows[goal] >= 0).float(), 1)[:, 0]  # (B,) which (role, object) to name
            other = rows[goal, q]  # (B,) the goal that names it
            ids, mask = ids[other, template], mask[other, template]
            self._ask_about(batch, t, named_objects[goal, q], ids, mask, named_objects.shape[1])
        return batch

    def _ask_about(self, batch: dict, t, named, ids, mask, askable: int) -> None:
        """The grounding objectives' inputs: a reworded instruction (B, L) and where the objects it
        names are. named (B, 2): the target, the place (-1: none); `askable` = R*K (R roles)."""
        positions = self.object_position[t].view(len(t), -1, 3)  # (B, K, 3)
        rows = torch.arange(len(t), device=self.device)
        batch["target_text_ids"], batch["target_text_mask"] = ids, mask
        batch["target_position"] = positions[rows, named[:, 0]]
        if askable == 2 * positions.shape[1]:  # two roles (aux.place_position): where the named place is
            batch["place_position"] = positions[rows, named[:, 1].clamp(min=0)]
            batch["place_valid"] = named[:, 1] >= 0
