"""`vla collect`: scripted-expert demonstrations into a crash-safe HDF5 dataset.

Episode i uses seed `seed + i`, so a dataset is the same whatever the number of
workers. Failed expert episodes are dropped (and counted) and further seeds are
tried until `episodes` successes are stored; the kept episodes are always the
first successful seeds.

With `dagger_checkpoint` (DAgger, Ross et al. 2011) the checkpoint's policy acts and the expert
labels every state it visits; every episode is kept, failures most of all (they hold the
recoveries the demonstrations lack). Train on it together with the demonstrations
(`train.dataset=demos.hdf5,dagger.hdf5`).
"""

from __future__ import annotations

import json
import multiprocessing as mp
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path

from tqdm import tqdm

from sim.env import EnvConfig, SimEnv, make_env
from sim.expert_policy import ExpertPolicy
from vla_policy.data.store import CollectionStore, write_part
from vla_policy.eval.rollout import rollout

_worker_env: SimEnv | None = None  # one env per worker process
_worker_policy = None  # and, for DAgger, one learner policy


@dataclass(frozen=True)
class CollectJob:
    out: Path
    config: EnvConfig
    noise_std: float
    keep_failures: bool
    dagger_checkpoint: str | None = None


@dataclass
class CollectSummary:
    out: str
    kept: int
    attempted: int
    failed_seeds: list[int] = field(default_factory=list)
    steps: int = 0

    @property
    def success_rate(self) -> float:
        return 1.0 - len(self.failed_seeds) / max(1, self.attempted)


def env_args(config: EnvConfig, env=None) -> dict:
    """robomimic's env_args shape, with our EnvConfig as env_kwargs, and the env's action space
    where it states one (Meta-World's; the Panda tasks' is vla_policy.action_space.panda_osc)."""
    args = {"env_name": config.task, "type": "vla_stack", "env_kwargs": json.loads(config.to_json())}
    if env is not None and hasattr(env, "action_spec"):
        args["action_space"] = env.action_spec
    return args


def _init_worker(config: EnvConfig, dagger_checkpoint: str | None = None) -> None:
    global _worker_env, _worker_policy
    _worker_env = make_env(config)
    if dagger_checkpoint:
        from vla_policy.eval.runner import make_policy

        _worker_policy = make_policy(_worker_env, {"kind": "checkpoint", "path": dagger_checkpoint})


def _collect_one(job: CollectJob, index: int, seed: int) -> dict:
    """Run one episode (the expert's, or the learner's labelled by the expert); write it as a part
    file if it is to be kept."""
    env = _worker_env
    if job.dagger_checkpoint:
        episode = rollout(env, _worker_policy, seed=seed, labeler=ExpertPolicy(env, follow_state=True))
    else:
        episode = rollout(env, ExpertPolicy(env, job.noise_std), seed=seed)
    kept = episode.success or job.keep_failures or bool(job.dagger_checkpoint)
    if kept:
        write_part(job.out, index, episode, env.model_xml)
    return {"index": index, "seed": seed, "success": episode.success, "kept": kept, "steps": len(episode)}


def collect(
    task: str,
    episodes: int,
    out: str | Path,
    workers: int = 1,
    seed: int = 0,
    noise_std: float = 0.0,
    config: EnvConfig | None = None,
    keep_failures: bool = False,
    overwrite: bool = False,
    max_attempts: int | None = None,
    dagger_checkpoint: str | None = None,
) -> CollectSummary:
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    config = config or EnvConfig(task=task)
    probe = make_env(config)  # validates task/cameras early and gives the model XML
    try:
        store = CollectionStore(out, env_args(config, probe), probe.model_xml, overwrite=overwrite)
    finally:
        probe.close()
    job = CollectJob(Path(out), config, noise_std, keep_failures, dagger_checkpoint)
    summary = CollectSummary(out=str(out), kept=0, attempted=0)
    max_attempts = max_attempts or 2 * episodes + 10
    kept: dict[int, int] = {}  # index -> steps
    bar = tqdm(total=episodes, desc=f"collect {task}", unit="ep")

    def on_result(result: dict) -> None:
        summary.attempted += 1
        if not result["success"]:
            summary.failed_seeds.append(result["seed"])
        if result["kept"]:
            kept[result["index"]] = result["steps"]
            store.commit(list(kept), total_steps=sum(kept.values()))
            bar.update(1)
        bar.set_postfix(success=f"{summary.success_rate:.0%}")

    if workers <= 1:
        _init_worker(config, dagger_checkpoint)
        index = 0
        while len(kept) < episodes and index < max_attempts:
            on_result(_collect_one(job, index, seed + index))
            index += 1
        _worker_env.close()
    else:
        _collect_parallel(job, episodes, workers, seed, max_attempts, kept, on_result)
    bar.close()
    summary.kept = len(kept)
    summary.steps = sum(kept.values())
    summary.failed_seeds.sort()
    store.pack()
    return summary


def _collect_parallel(job, episodes, workers, seed, max_attempts, kept, on_result) -> None:
    """Keep at most `workers` episodes in flight; submit more only while successes are short."""
    ctx = mp.get_context("spawn")  # fork after EGL initialisation hangs
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=(job.config, job.dagger_checkpoint)
    ) as pool:
        inflight: set[Future] = set()
        next_index = 0
        while True:
            while len(kept) + len(inflight) < episodes and len(inflight) < workers and next_index < max_attempts:
                inflight.add(pool.submit(_collect_one, job, next_index, seed + next_index))
                next_index += 1
            if not inflight:
                return
            done, inflight = wait(inflight, return_when=FIRST_COMPLETED)
            for future in done:
                on_result(future.result())


def collect_group(tasks: tuple[str, ...], episodes: int, out_dir: str | Path, config: EnvConfig, **kwargs) -> dict:
    """`episodes` demonstrations of each task, one dataset per task in `out_dir` (<task>.hdf5,
    each crash-safe as collect() writes it). A task whose file is already complete is kept, so a
    stopped run resumes where it was; overwrite=True collects everything again."""
    out_dir = Path(out_dir)
    if out_dir.suffix in (".hdf5", ".h5"):
        raise ValueError(f"{out_dir}: a task group is collected into a directory, one file per task")
    out_dir.mkdir(parents=True, exist_ok=True)
    summaries = {}
    for task in tasks:
        path = out_dir / f"{task}.hdf5"
        if path.exists() and not kwargs.get("overwrite") and _complete(path, episodes):
            summaries[task] = {"out": str(path), "kept": episodes, "skipped": "already collected"}
            continue
        summary = collect(task, episodes, path, config=replace(config, task=task), **{**kwargs, "overwrite": True})
        summaries[task] = {**summary.__dict__, "success_rate": summary.success_rate}
    return summaries


def _complete(path: Path, episodes: int) -> bool:
    from vla_policy.data.hdf5_dataset import demo_names, open_dataset
    from vla_policy.data.store import parts_dir

    if parts_dir(path).exists():  # stopped before it was packed
        return False
    with open_dataset(path) as f:
        return len(demo_names(f)) >= episodes
