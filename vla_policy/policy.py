"""Policy: a trained VLAModel behind the contract reset() / predict_chunk() / select_action().

Inputs are validated (image shape/dtype, missing keys, NaN proprio) and preprocessed exactly as
in training; normalisation statistics come from the checkpoint. `select_action` (ChunkPlayer,
shared with the remote client) keeps a queue of recent chunks in an ActionScheduler, which joins
them by `join` (ACT's temporal ensembling, the newest chunk, or real-time chunking, for which
`predict_chunk` continues the actions already committed); `delay_ms` simulates inference
latency in control time. The ROS policy node uses the same scheduler on ROS time.

Defined behaviour for degraded input: a missing camera key is masked out (the model was trained
with camera dropout); an empty instruction masks the text; an instruction longer than the
tokenizer limit is truncated. Wrong types, shapes or NaN raise ValueError naming the key.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vla_policy.action_space import ActionSpace, from_meta, panda_osc
from vla_policy.chunk_player import ChunkPlayer, delay_steps
from vla_policy.config import Config
from vla_policy.data.images import preprocess_images
from vla_policy.data.normalize import NormStats
from vla_policy.gate import GATE_MAX_TOKENS, InstructionGate, load_gate
from vla_policy.models.heads.flow import Guide
from vla_policy.models.text import tokenize
from vla_policy.proprio import proprio_from_obs
from vla_policy.scheduler import ActionScheduler, rtc_weights
from vla_policy.types import ActionChunk, InstructionCheck


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available; use 'auto' or 'cpu'")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; choose auto, cpu or cuda")
    return torch.device(name)


class Policy(ChunkPlayer):
    name = "vla"

    def __init__(
        self,
        model: torch.nn.Module,
        config: Config,
        stats: NormStats,
        dt: float = 0.05,
        device: str = "auto",
        replan_every: int | None = None,
        ensemble_decay: float = 0.1,
        seed: int = 0,
        ensemble_gripper: bool = False,
        flow_steps: int | None = None,
        action_space: ActionSpace | None = None,
        join: str = "ensemble",
        delay_ms: float = 0.0,
        rtc_max_guidance: float = 5.0,
        gate: InstructionGate | None = None,
    ):
        """`replan_every`: control steps between new chunks (default: the model config's; at most
        the chunk length, since a chunk cannot be played past its end).
        `ensemble_decay`: ACT's m (older chunks weigh exp(-m * age_rank)). The gripper is binary
        in the demonstrations, so by default it is not blended (a blend hovers half-open at a
        grasp): it comes from the newest chunk.
        `flow_steps`: Euler steps of a flow head at inference (default: the model config's; fewer
        is faster, as openpi's `num_steps`).
        `action_space`: what the actions mean physically (default: the Panda OSC space at `dt`).
        `join`: ensemble | switch | rtc (scheduler.py). `delay_ms`: simulated inference latency
        (chunk_player.py). `rtc_max_guidance`: RTC's guidance clip beta (the paper's 5).
        `gate`: the checkpoint's instruction gate (vla_policy/gate.py); None accepts everything."""
        if flow_steps is not None:
            if config.model.head != "flow" or flow_steps < 1:
                raise ValueError(
                    f"flow_steps={flow_steps} needs a flow head and >= 1 (this head: {config.model.head!r})"
                )
            model.head.steps = flow_steps
        self.scheduler = ActionScheduler(ensemble_decay, ensemble_gripper, join)
        self.delay_steps = delay_steps(delay_ms, dt)
        self.chunk_length = config.model.chunk
        self.rtc_max_guidance = rtc_max_guidance
        self.device = pick_device(device)
        self.model = model.to(self.device).eval()
        self.config, self.stats, self.dt = config, stats, dt
        self.action_space = action_space or panda_osc(dt)
        self.replan_every = min(replan_every or config.model.replan_every, config.model.chunk)
        if self.replan_every < 1:
            raise ValueError(f"replan_every must be >= 1, got {self.replan_every}")
        self.generator = torch.Generator(device=self.device)
        self.seed = seed
        self._text_cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.gate = gate
        self._checks: dict[str, InstructionCheck] = {}
        self._gate_encoder = None  # a MiniLM for the gate where the model's text encoder is none
        self.reset()

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto", **kwargs) -> "Policy":
        from vla_policy.train.checkpoint import load_checkpoint

        model, config, stats, meta = load_checkpoint(path)
        kwargs.setdefault("gate", load_gate(path))
        return cls(model, config, stats, dt=meta.get("dt", 0.05), device=device, action_space=from_meta(meta), **kwargs)

    def reset(self) -> None:
        """Forget queued chunks (call at every episode start)."""
        self.generator.manual_seed(self.seed)
        self.reset_player()

    # ----------------------------------------------------------- instructions
    def check_instruction(self, instruction: str) -> InstructionCheck:
        """Whether this policy understands `instruction`: its gate's decision, with the goal it
        reads where its model reads one (vla_policy/gate.py); accepted when the checkpoint has no
        gate. An instruction it refuses must not move the robot: `select_action` holds on it
        (ChunkPlayer), and policy_node too."""
        if not isinstance(instruction, str):
            raise ValueError(f"instruction must be a string, got {type(instruction).__name__}")
        if instruction not in self._checks:
            if len(self._checks) > 1000:
                self._checks.clear()
            self._checks[instruction] = self.check_instructions([instruction])[0]
        return self._checks[instruction]

    @torch.no_grad()
    def check_instructions(self, instructions: list[str], batch: int = 256) -> list[InstructionCheck]:
        """`check_instruction` of many instructions at once (uncached)."""
        if self.gate is None:
            return [InstructionCheck(True, 1.0, "", "") for _ in instructions]
        checks = []
        for start in range(0, len(instructions), batch):
            texts = instructions[start : start + batch]
            embeddings = self.minilm().sentence_embedding(texts, GATE_MAX_TOKENS).cpu()  # (B, 384)
            checks += self.gate.decide(texts, embeddings, self._goals_read(texts))
        return checks

    def _goals_read(self, instructions: list[str]) -> list[int] | None:
        """The goal the model reads in each instruction, where it reads goals and the gate knows
        them; else None."""
        if not self.reads_goals or not self.gate.goals:
            return None
        probabilities = self.model.read_goal(*self._tokens(instructions))  # (B, G)
        if probabilities.shape[1] != len(self.gate.goals):
            raise ValueError(f"the model reads {probabilities.shape[1]} goals, its gate knows {len(self.gate.goals)}")
        return probabilities.argmax(1).tolist()

    def minilm(self):
        """The frozen MiniLM the gate reads with: the model's own text encoder where it is one."""
        backbone = getattr(self.model.text, "backbone", None) or self._gate_encoder
        if backbone is None:  # a text encoder trained from scratch: the gate brings its own MiniLM
            from vla_policy.models.text import MiniLM

            self._gate_encoder = backbone = MiniLM().to(self.device)
        return backbone

    # ----------------------------------------------------------------- inputs
    @property
    def reads_goals(self) -> bool:
        """Whether the model reads its instruction as one of its task's goals (text.condition=goal)."""
        return getattr(self.model, "goal_reader", None) is not None

    def read_goal(self, instruction: str) -> tuple[int, float] | None:
        """For a model that reads its instruction as one of the task's goals (text.condition=goal):
        (the goal's index in the task grammar's `goals()` order, its probability); else None."""
        if not self.reads_goals:
            return None
        probabilities = self.model.read_goal(*self._text(instruction))[0]  # (G,)
        index = int(probabilities.argmax())
        return index, float(probabilities[index])

    def _text(self, instruction: str) -> tuple[torch.Tensor, torch.Tensor]:
        if instruction not in self._text_cache:
            self._text_cache[instruction] = self._tokens([instruction])
        return self._text_cache[instruction]

    def _tokens(self, instructions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L) ids and mask on the policy's device; an empty instruction reads nothing (all masked)."""
        ids, mask = tokenize(instructions, self.config.model.text.max_tokens)
        mask[[not text.strip() for text in instructions]] = False
        return ids.to(self.device), mask.to(self.device)

    def make_batch(self, obs: dict, instruction: str | None = None) -> dict:
        """One observation dict -> a model batch of size 1 (validated, normalised)."""
        if not isinstance(obs, dict):
            raise ValueError(f"observation must be a dict of arrays, got {type(obs).__name__}")
        text = obs.get("instruction", "") if instruction is None else instruction
        if not isinstance(text, str):
            raise ValueError(f"instruction must be a string, got {type(text).__name__}")
        vision = self.config.model.vision
        images, present = [], []
        for cam in vision.cameras:
            image = obs.get(f"{cam}_image")
            if image is None:
                images.append(torch.zeros(3, vision.image_size, vision.image_size))
                present.append(False)
                continue
            image = np.asarray(image)
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
                raise ValueError(f"{cam}_image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
            images.append(preprocess_images(image, vision.image_size))
            present.append(True)
        proprio = proprio_from_obs(obs, self.config.model.proprio_keys)
        if not np.all(np.isfinite(proprio)):
            raise ValueError(f"proprio ({', '.join(self.config.model.proprio_keys)}) contains NaN or inf")
        expected = len(self.stats.proprio_mean)
        if proprio.shape != (expected,):
            raise ValueError(f"proprio has {proprio.shape} values; this checkpoint expects ({expected},)")
        ids, mask = self._text(text)
        return {
            "images": torch.stack(images)[None].to(self.device),
            "camera_mask": torch.tensor([present], device=self.device),
            "text_ids": ids,
            "text_mask": mask,
            "proprio": torch.from_numpy(self.stats.normalize_proprio(proprio).astype(np.float32))[None].to(self.device),
        }

    # ---------------------------------------------------------------- outputs
    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda")

    def _chunk(self, normalised: torch.Tensor) -> ActionChunk:
        """(1, H, A) normalised model output -> the unnormalised chunk played from this step."""
        actions = self.stats.unnormalize_actions(normalised[0].float().cpu().numpy())
        return ActionChunk(actions, self.dt, action_space=self.action_space.name, start_step=self.step)

    def _guide(self, prefix: np.ndarray | None, frozen: int) -> Guide | None:
        """RTC's guide toward `prefix` (H, A) unnormalised, NaN rows where nothing is planned."""
        if prefix is None or self.config.model.head != "flow":
            return None
        planned = ~np.isnan(prefix).any(-1)
        overlap = int(np.argmin(planned)) if not planned.all() else len(planned)  # leading planned rows
        if overlap == 0:
            return None
        horizon = self.chunk_length
        target = np.zeros((horizon, prefix.shape[1]))
        target[:overlap] = self.stats.normalize_actions(prefix[:overlap])
        weights = rtc_weights(frozen, overlap, horizon)
        as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32, device=self.device)  # noqa: E731
        return Guide(as_tensor(target)[None], as_tensor(weights), self.rtc_max_guidance)

    def _freeze(self, chunk: ActionChunk, prefix: np.ndarray | None, frozen: int) -> ActionChunk:
        """The first `frozen` actions become the committed ones, bit for bit (they execute before
        this chunk arrives, so what it says for them never plays)."""
        if prefix is not None and frozen > 0:
            rows = prefix[: min(frozen, len(chunk))]
            keep = ~np.isnan(rows).any(-1)
            chunk.actions[: len(rows)][keep] = rows[keep]
        return chunk

    @torch.no_grad()
    def predict_chunk_and_future(
        self,
        obs: dict,
        instruction: str | None = None,
        prefix: np.ndarray | None = None,
        frozen: int = 0,
        future: bool = True,
    ) -> tuple[ActionChunk, torch.Tensor | None]:
        """The chunk and (1, C, D) the visual latent the world model expects once it has been played
        (None for a model without a world model, or with future=False)."""
        batch = self.make_batch(obs, instruction)
        guide = self._guide(prefix, frozen)
        kwargs = {} if guide is None else {"guide": guide}
        with self._autocast():
            if future and getattr(self.model, "world_model", None) is not None:
                normalised, latent = self.model.sample_actions_and_future(batch, self.generator, **kwargs)
                latent = latent.float()
            else:
                normalised, latent = self.model.sample_actions(batch, self.generator, **kwargs), None
        return self._freeze(self._chunk(normalised), prefix, frozen), latent

    @torch.no_grad()
    def surprise(self, predicted_future: torch.Tensor | np.ndarray, obs: dict) -> float:
        """World-model surprise: distance between a predicted latent and this observation's."""
        predicted_future = torch.as_tensor(predicted_future, dtype=torch.float32, device=self.device)
        batch = self.make_batch(obs, "")
        with self._autocast():
            return float(self.model.surprise(predicted_future, batch["images"], batch["camera_mask"])[0])
