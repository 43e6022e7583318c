"""`vla train`: AdamW + warmup/cosine, grad clipping, EMA, augmentation, bf16 autocast on CUDA,
JSONL metrics, periodic validation, last/best checkpoints and exact resume; DDP under torchrun.

Exact resume: batches come from a DistributedSampler order that depends only on (seed, epoch),
the position inside the epoch is checkpointed, and so are every rank's torch and Python RNG states.

Under torchrun each rank takes `train.batch_size` samples a step from its own share of the
sampler's order (the global batch is batch_size x WORLD_SIZE), draws its own noise and
augmentation (seed + rank), and only rank 0 validates and writes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from vla_policy.action_space import for_env
from vla_policy.config import Config, save_yaml, to_dict
from vla_policy.data.demos import compute_stats, fingerprint, load_demos
from vla_policy.data.rewording import WordingPool
from vla_policy.data.windows import DemoWindows
from vla_policy.gate import load_gate
from vla_policy.models.build import build_model
from vla_policy.train.augment import prepare_batch
from vla_policy.train.checkpoint import (
    CheckpointError,
    complete_checkpoint,
    load_train_state,
    load_weights,
    read_checkpoint_meta,
    save_checkpoint,
    trainable_state,
)
from vla_policy.train.distributed import Distributed


def warmup_ema(max_decay: float):
    """EMA update whose decay ramps up as (1 + n) / (10 + n) to `max_decay` (diffusers' EMAModel
    warmup). A fixed decay would keep max_decay**n of the random initial weights: 37% after 1000
    steps at 0.999, which ruins every short run."""

    @torch.no_grad()
    def update(ema_params: list[torch.Tensor], params: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        n = float(n_averaged)
        decay = min(max_decay, (1 + n) / (10 + n))
        if ema_params[0].is_floating_point():
            torch._foreach_lerp_(ema_params, params, 1 - decay)
        else:  # integer buffers (counters) follow the model
            torch._foreach_copy_(ema_params, params)

    return update


def warmup_cosine(warmup: int, total: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def _with_goals(config: Config, wordings: WordingPool | None) -> Config:
    """The config with text.goals set to the number of goals the reader is to name: the task
    grammar's, listed by the rewording pool."""
    if wordings is None:
        raise ValueError("model.text.condition=goal reads the task grammar's goals; set train.reword_templates")
    text = config.model.text
    if text.goals not in (0, len(wordings.goals)):
        raise ValueError(f"model.text.goals is {text.goals} but the task's grammar has {len(wordings.goals)} goals")
    text = dataclasses.replace(text, goals=len(wordings.goals))
    return dataclasses.replace(config, model=dataclasses.replace(config.model, text=text))


def split_demos(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    order = np.random.default_rng(seed).permutation(n).tolist()
    n_val = min(n - 1, max(1, round(n * val_fraction))) if n > 1 and val_fraction > 0 else 0
    return sorted(order[n_val:]), sorted(order[:n_val])


class Trainer:
    def __init__(self, config: Config, resume: bool = False):
        self.config, self.dist = config, Distributed.from_env()
        t = config.train
        if not t.dataset:
            raise ValueError("train.dataset is empty; pass train.dataset=path/to/demos.hdf5")
        if t.keep_every % t.eval_every:
            raise ValueError(f"train.keep_every ({t.keep_every}) must be a multiple of eval_every ({t.eval_every})")
        self.out = Path(t.out)
        self.ckpt_dir = self.out / "checkpoints"
        self.device = self.dist.device
        torch.manual_seed(t.seed)  # the same initial weights on every rank
        random.seed(t.seed)
        demos, self.env_args = load_demos(t.dataset, config.model)
        train_ids, val_ids = split_demos(len(demos), t.val_fraction, t.seed)
        # Fine-tuning keeps the initial checkpoint's normalisation: new statistics would rescale
        # every input and target under its weights (measured: a DAgger fine-tune fell 82 -> 30/100).
        self.stats = (
            read_checkpoint_meta(t.init_from)[1] if t.init_from else compute_stats([demos[i] for i in train_ids])
        )
        self.wordings = wordings = (
            WordingPool(self.env_args["env_kwargs"]["task"], t.reword_templates, config.model.text.max_tokens, t.seed)
            if t.reword_templates
            else None
        )
        if config.model.text.condition == "goal":
            config = self.config = _with_goals(config, wordings)
        self.train_set = DemoWindows(
            [demos[i] for i in train_ids], self.stats, config.model.chunk, self.device, wordings
        )
        self.val_set = (
            DemoWindows([demos[i] for i in val_ids], self.stats, config.model.chunk, self.device, wordings)
            if val_ids
            else None
        )
        del demos
        self.fingerprint = fingerprint(t.dataset)
        self.model = build_model(config.model, self.train_set.proprio_dim).to(self.device)
        if t.init_from and not resume:
            from safetensors.torch import load_file

            weights = str(Path(t.init_from) / "model.safetensors")
            fresh = load_weights(self.model, load_file(weights, device=str(self.device)), weights, allow_missing=True)
            print(f"initialised from {weights}" + (f"; new: {fresh}" if fresh else ""))
        self.ema = AveragedModel(self.model, multi_avg_fn=warmup_ema(t.ema_decay), use_buffers=True)
        decay = [p for n, p in self.model.named_parameters() if p.requires_grad and p.ndim >= 2]
        no_decay = [p for n, p in self.model.named_parameters() if p.requires_grad and p.ndim < 2]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": t.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=t.lr
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, warmup_cosine(t.warmup_steps, t.steps))
        self.sampler = DistributedSampler(self.train_set, self.dist.world, self.dist.rank, shuffle=True, seed=t.seed)
        self.step, self.epoch, self.offset, self.best = 0, 0, 0, float("inf")
        self.train_seconds = 0.0  # wall time spent in train(), summed over resumes
        if self.dist.rank:  # each other rank its own noise and augmentation; rank 0 goes on as one process would
            torch.manual_seed(t.seed + self.dist.rank)
            random.seed(t.seed + self.dist.rank)
        self.gate, self.reader_fit = None, None
        if resume:
            self._resume()
        if t.instruction_gate and self.gate is None:
            self.gate = self._build_gate()
        self.ddp = self.dist.wrap(self.model)

    def _build_gate(self):
        """The instruction gate over this task's grammar (vla_policy/gate.py); built once, saved with
        every checkpoint, taken back on resume. Its examples are drawn with seed 0 whatever
        train.seed is: two runs of a recipe differ in their model only."""
        from sim.tasks import get_task
        from vla_policy.train.gate import build_gate, left_to_the_goal_check

        task = get_task(self.env_args["env_kwargs"]["task"])
        if not hasattr(task, "grammar"):
            raise ValueError(f"train.instruction_gate needs a task with an instruction grammar; {task.name!r} has none")
        backbone = getattr(self.model.text, "backbone", None)
        leave_out = left_to_the_goal_check(self.model.goal_reader is not None)
        gate = build_gate(
            task.grammar, task.object_names, backbone, seed=0, leave_out=leave_out
        )  # a task's, not a run's
        print(f"instruction gate: {gate.report}")
        return gate

    # ---------------------------------------------------------------- resume
    def _resume(self) -> None:
        path = complete_checkpoint(self.ckpt_dir / "last")  # `last.old` if a save was killed mid-swap
        saved_config, _, meta = read_checkpoint_meta(path)
        self.reader_fit = meta.get("reader_fit")
        ignore = {"train.steps", "train.out"} | ({"model.text.minilm_layer"} if self.reader_fit else set())
        diff = _config_diff(to_dict(saved_config), to_dict(self.config), ignore=ignore)
        if diff:
            raise CheckpointError(f"cannot resume {path}: its config differs in {diff}")
        if meta["dataset_fingerprint"] != self.fingerprint:
            raise CheckpointError(f"cannot resume {path}: it was trained on different data (fingerprint mismatch)")
        rng = load_train_state(path, self.model, self.optimizer, self.scheduler)
        from safetensors.torch import load_file

        load_weights(self.ema.module, load_file(str(path / "model.safetensors")), str(path))
        self.ema.n_averaged.fill_(meta["ema_n_averaged"])
        self.step, self.epoch, self.offset, self.best = meta["step"], meta["epoch"], meta["offset"], meta["best"]
        self.train_seconds = meta.get("train_seconds", 0.0)
        self.gate = load_gate(path)
        if self.reader_fit:  # a finished run whose reader was fitted on text alone reads its layer
            if self.config.train.steps > self.step:
                raise CheckpointError(
                    f"cannot resume {path} to {self.config.train.steps} steps: its run finished at {self.step} and "
                    "its reader was fitted on text alone; train longer with train.init_from instead"
                )
            self.config = saved_config
            for model in (self.model, self.ema.module):
                model.text.read_layer(saved_config.model.text.minilm_layer)
        own = "" if self.dist.main else f"rank{self.dist.rank}."
        if f"{own}torch" not in rng:  # saved by a job of fewer ranks: this one starts a fresh stream
            print(f"rank {self.dist.rank}: {path} has no RNG state for it; seeding from (seed, rank, step)")
            fresh = self.config.train.seed + self.dist.rank + 1_000_000 * self.step
            torch.manual_seed(fresh)
            random.seed(fresh)
            return
        torch.set_rng_state(rng[f"{own}torch"])
        if f"{own}cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng[f"{own}cuda"], self.device)
        python = rng[f"{own}python"]
        random.setstate((python[0], tuple(python[1]), python[2]))

    # ------------------------------------------------------------------ loop
    def batches(self):
        """(epoch, offset, batch) forever, from the checkpointed position."""
        t = self.config.train
        while True:
            self.sampler.set_epoch(self.epoch)
            order = list(self.sampler)
            per_epoch = len(order) // t.batch_size
            if per_epoch == 0:
                raise ValueError(f"batch_size {t.batch_size} exceeds the {len(order)} training samples per rank")
            for b in range(self.offset, per_epoch):
                idx = order[b * t.batch_size : (b + 1) * t.batch_size]
                self.offset = b + 1  # consumed once yielded: a checkpoint after this step resumes after it
                yield b, self.train_set.batch(idx)
            self.epoch, self.offset = self.epoch + 1, 0

    def train(self, until: int | None = None) -> dict:
        """Train to `train.steps` (or stop early at step `until`, checkpointing there, to resume later)."""
        t = self.config.train
        stop = min(t.steps, until) if until else t.steps
        self.out.mkdir(parents=True, exist_ok=True)
        if self.dist.main:
            save_yaml(self.config, self.out / "config.yaml")
        log = open(self.out / "metrics.jsonl", "a") if self.dist.main else None
        bar = tqdm(total=t.steps, initial=self.step, desc="train", unit="step", disable=not self.dist.main)
        start, samples, last = time.perf_counter(), 0, {}
        self._clock = (start, self.train_seconds)
        batches = self.batches()
        while self.step < stop:
            _, raw = next(batches)
            last = self._train_step(raw)
            samples += t.batch_size * self.dist.world
            self.step += 1
            bar.update(1)
            if self.step % t.log_every == 0 or self.step == t.steps:
                last = self.dist.mean(last)  # the global batch's losses, not rank 0's share
                last.update(
                    step=self.step,
                    lr=self.scheduler.get_last_lr()[0],
                    samples_per_s=samples / (time.perf_counter() - start),
                )
                bar.set_postfix(loss=f"{last['total']:.4f}")
                if log:
                    log.write(json.dumps(last) + "\n")
                    log.flush()
            if self.step % t.eval_every == 0 or self.step == stop:
                self._validate_and_save(log)
        bar.close()
        if self.step == t.steps and t.reader.steps and self.reader_fit is None:
            self._fit_reader()
            self._validate_and_save(log)
        if log:
            log.close()
        return last

    def _fit_reader(self) -> None:
        """train.reader: the goal reader fitted anew on the training wordings alone, the policy's
        goal embeddings kept (vla_policy/train/reader.py); the raw model takes the same reader."""
        from vla_policy.train.reader import fit_reader, reading_layer

        t = self.config.train
        if self.model.goal_reader is None:
            raise ValueError("train.reader fits a goal reader; set model.text.condition=goal")
        started = time.perf_counter()
        self.reader_fit = fit_reader(self.ema.module, self.wordings, t.reader.minilm_layer, t.reader.steps, t.seed)
        self.reader_fit["seconds"] = round(time.perf_counter() - started, 1)
        for name in ("text", "goal_reader"):
            getattr(self.model, name).load_state_dict(getattr(self.ema.module, name).state_dict())
        self.model.text.read_layer(t.reader.minilm_layer)
        self.config = reading_layer(self.config, t.reader.minilm_layer)
        print(f"goal reader fitted on text alone: {self.reader_fit}")

    def _train_step(self, raw: dict) -> dict:
        t = self.config.train
        self.model.train()
        batch = prepare_batch(raw, t.augment, t.camera_dropout, self.device, t.shift_pad)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            losses = self.ddp(batch)
        self.optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.ema.update_parameters(self.model)
        return {**{k: float(v.detach()) for k, v in losses.items()}, "grad_norm": float(grad_norm)}

    # ------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self, max_batches: int = 8) -> dict:
        """EMA model on held-out demos: losses and the mean absolute action error (raw units)."""
        if self.val_set is None or len(self.val_set) == 0:
            return {}
        # Its draws (flow noise) leave the training stream alone: training goes on as if no
        # validation ran, whatever eval_every is and whichever rank validates.
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            return self._validate(max_batches)

    def _validate(self, max_batches: int) -> dict:
        model = self.ema.module.eval()
        size = self.config.train.batch_size
        totals: dict[str, float] = {}
        count = 0
        gen = torch.Generator(device=self.device).manual_seed(0)
        for start in range(0, min(len(self.val_set), max_batches * size), size):
            raw = self.val_set.batch(torch.arange(start, min(start + size, len(self.val_set))))
            batch = prepare_batch(raw, False, 0.0, self.device)
            losses = {f"val_{k}": float(v) for k, v in model.compute_loss(batch).items()}
            pred = model.sample_actions(batch, gen)
            half = (torch.tensor(self.stats.action_max) - torch.tensor(self.stats.action_min)).to(self.device) / 2
            err = ((pred - batch["actions"]).abs() * half).mean(-1)
            losses["val_action_l1"] = float((err * batch["action_mask"]).sum() / batch["action_mask"].sum())
            for k, v in losses.items():
                totals[k] = totals.get(k, 0.0) + v
            count += 1
        return {k: v / count for k, v in totals.items()}

    def _validate_and_save(self, log) -> None:
        rng = self.dist.gather(self._rng_state())  # a collective: every rank takes part
        if not self.dist.main:
            return
        metrics = self.validate()
        if log and metrics:
            log.write(json.dumps({"step": self.step, **metrics}) + "\n")
            log.flush()
        score = metrics.get("val_action_l1", -self.step)
        improved = score < self.best
        self.best = min(self.best, score)
        # Rank 0's state under the plain names, rank r's under "rank{r}.".
        rng = {f"rank{r}.{k}" if r else k: v for r, state in enumerate(rng) for k, v in state.items()}
        self._save("last", metrics, rng)
        keep = self.config.train.keep_every
        if keep and self.step % keep == 0 and self.reader_fit is None:  # the fitted `last` is the run's end
            kept = self.ckpt_dir / f"step_{self.step:06d}"
            shutil.rmtree(kept, ignore_errors=True)
            shutil.copytree(self.ckpt_dir / "last", kept)
        if improved:
            self._save("best", metrics, rng)

    def _rng_state(self) -> dict:
        state = {"torch": torch.get_rng_state(), "python": list(random.getstate())}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def _save(self, name: str, metrics: dict, rng: dict) -> None:
        meta = {
            "step": self.step,
            "epoch": self.epoch,
            "offset": self.offset,
            "best": self.best,
            "metrics": metrics,
            "dataset": str(self.config.train.dataset),
            "dataset_fingerprint": self.fingerprint,
            "env_args": self.env_args,
            "dt": 1.0 / self.env_args["env_kwargs"].get("control_freq", 20),
            "action_space": for_env(self.env_args).to_dict(),
            "proprio_dim": int(self.train_set.proprio_dim),
            "ema_n_averaged": int(self.ema.n_averaged.item()),
            "train_seconds": round(self._clock[1] + time.perf_counter() - self._clock[0], 1),
            "device": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu",
            "parameters": sum(v.numel() for v in trainable_state(self.model).values()),
            "reader_fit": self.reader_fit,
        }
        save_checkpoint(
            self.ckpt_dir / name,
            ema_model=self.ema.module,
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            config=self.config,
            stats=self.stats,
            meta=meta,
            rng=rng,
            gate=self.gate,
        )


def _config_diff(a: dict, b: dict, ignore: set[str], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        name = f"{prefix}{key}"
        if name in ignore:
            continue
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _config_diff(va, vb, ignore, f"{name}.")
        elif va != vb:
            out.append(f"{name}: {va!r} -> {vb!r}")
    return out
