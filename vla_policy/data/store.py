"""Crash-safe dataset writing.

Each finished episode is written to its own file in `<out>.parts/`, atomically
(written under a temporary name, then renamed). After every episode `<out>` itself
is rewritten atomically as a small index whose `data/demo_<i>` are HDF5 external
links to those parts, so at any instant -- even after SIGKILL -- `<out>` is a valid
dataset holding every finished episode, and never a half-written file. When the
collection ends, `pack()` copies the parts into one self-contained file (again
atomically) and removes the parts; `vla dataset pack` does the same after a crash.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import h5py

from vla_policy import __version__
from vla_policy.data.hdf5_dataset import DatasetError, demo_names, write_episode
from vla_policy.types import Episode

PART_GROUP = "/episode"


def parts_dir(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def part_path(out: Path, index: int) -> Path:
    return parts_dir(out) / f"episode_{index:06d}.hdf5"


def write_part(out: Path, index: int, episode: Episode, model_xml: str) -> Path:
    """Write one episode file atomically; safe to call from worker processes."""
    final = part_path(out, index)
    tmp = final.with_suffix(".tmp")
    with h5py.File(tmp, "w") as f:
        write_episode(f.create_group(PART_GROUP), episode, model_xml)
    os.replace(tmp, final)
    return final


class CollectionStore:
    """The index/parts/pack life cycle of one output dataset."""

    def __init__(self, out: str | Path, env_args: dict, model_xml: str, overwrite: bool = False):
        self.out = Path(out)
        if self.out.suffix not in (".hdf5", ".h5"):
            raise DatasetError(f"{self.out}: dataset files end in .hdf5 or .h5")
        if self.out.exists() and not overwrite:
            raise DatasetError(f"{self.out} already exists; pass --overwrite to replace it")
        if not self.out.parent.exists():
            raise DatasetError(f"{self.out}: directory {self.out.parent} does not exist")
        if parts_dir(self.out).exists():
            shutil.rmtree(parts_dir(self.out))
        parts_dir(self.out).mkdir()
        self.env_args = env_args
        self.model_xml = model_xml
        self.committed: list[int] = []
        self.commit([])

    def _write_header(self, f: h5py.File, total_steps: int) -> h5py.Group:
        data = f.create_group("data")
        data.attrs.update(
            env_args=json.dumps(self.env_args),
            total=total_steps,
            task=self.env_args["env_name"],
            model_file=self.model_xml,
            state_spec="mjSTATE_INTEGRATION + gripper command (2) + step counter (1)",
            vla_stack_version=__version__,
        )
        return data

    def commit(self, indices: list[int], total_steps: int = 0) -> None:
        """Atomically rewrite the index to link exactly these finished episodes, in order."""
        self.committed = sorted(indices)
        tmp = self.out.with_name(self.out.name + ".index-tmp")
        with h5py.File(tmp, "w") as f:
            data = self._write_header(f, total_steps)
            for demo, index in enumerate(self.committed):
                rel = f"{parts_dir(self.out).name}/{part_path(self.out, index).name}"
                data[f"demo_{demo}"] = h5py.ExternalLink(rel, PART_GROUP)
        os.replace(tmp, self.out)

    def pack(self) -> None:
        """Replace the index by one self-contained file and remove the parts."""
        pack_file(self.out)


def pack_file(path: str | Path) -> int:
    """Copy linked parts into `path` itself (atomically); returns the number of demos."""
    path = Path(path)
    tmp = path.with_name(path.name + ".pack-tmp")
    with h5py.File(path, "r") as src, h5py.File(tmp, "w") as dst:
        data = dst.create_group("data")
        data.attrs.update(dict(src["data"].attrs))
        names = demo_names(src)
        total = 0
        for name in names:
            try:
                src.copy(src["data"][name], data, name=name)
            except (KeyError, OSError) as err:
                raise DatasetError(
                    f"{path}: demo {name} cannot be read ({err}); its part file is missing or broken"
                ) from err
            total += int(data[name]["actions"].shape[0])
        data.attrs["total"] = total
    os.replace(tmp, path)
    if parts_dir(path).exists():
        shutil.rmtree(parts_dir(path))
    return len(names)
