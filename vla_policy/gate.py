"""The instruction gate: does an instruction ask for something this policy was trained to do?

Nearest neighbours in the frozen MiniLM's sentence space (all-MiniLM-L6-v2 was trained so that
paraphrases land close together). The gate keeps the embeddings of training wordings (in scope)
and of generated commands the policy cannot carry out (out of scope; vla_policy/train/gate.py).
An instruction is accepted when it is closer to some training wording than to every out-of-scope
example, and it names one of the scene's objects. A refusal says which neighbour it resembled.
With `neighbours` k > 1 it compares the mean similarity of its k nearest of each kind instead: a
single odd neighbour then weighs less, on both sides (docs/RESULTS.md has what that trades).

A policy that reads its instruction as one of its task's goals (text.condition=goal) passes the
goal it read: the instruction must then name that goal's objects, each once, and no other.
Sentence space cannot tell "put the red cube on the green cube" from "put the red cube on the red
cube" (one word apart); the count can. No goal stacks a cube on itself, so the reader names
either some other base, which the instruction does not name, or one cube, which it names twice.
Every wording of the grammar names each of its goal's objects once.

Chosen by measurement over a classifier trained on the same examples (docs/RESULTS.md): the
classifier learned "an unfamiliar word means out of scope" and refused most held-out wordings,
whose verbs and nouns never occur in training; nearest neighbours carry MiniLM's own semantics.

An instruction it refuses must not move the robot: `Policy.check_instruction` gives the decision
and policy_node holds on it. It ships in a checkpoint as `instruction_gate.safetensors` +
`instruction_gate.json`; a checkpoint without one accepts every instruction.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import Tensor

from vla_policy.types import InstructionCheck

GATE_MAX_TOKENS = 32  # instructions are embedded at this many tokens
GATE_WEIGHTS, GATE_META = "instruction_gate.safetensors", "instruction_gate.json"


class InstructionGate:
    """in_scope (N, 384) and out_scope (M, 384) unit embeddings with their texts (MiniLM's
    sentence embeddings, `MiniLM.sentence_embedding`); `objects`: the names of the scene's
    objects, one of which an instruction must name; `neighbours`: how many nearest examples of
    each kind the decision averages (1: the nearest alone)."""

    def __init__(
        self,
        in_scope: Tensor,
        in_texts: list[str],
        out_scope: Tensor,
        out_texts: list[str],
        objects: tuple[str, ...],
        report: dict | None = None,
        neighbours: int = 1,
        goals: list[tuple[str, tuple[str, ...]]] | None = None,
    ):
        """`goals`: (what it asks, the objects it names) of each goal a policy's reader may name,
        in the order of its task grammar's `goals()`; None where the gate is not built from one."""
        if len(in_scope) != len(in_texts) or len(out_scope) != len(out_texts):
            raise ValueError("each embedding needs its text")
        if not 1 <= neighbours <= min(len(in_texts), len(out_texts)):
            raise ValueError(f"neighbours must be 1..{min(len(in_texts), len(out_texts))}, got {neighbours}")
        self.neighbours = neighbours
        self.in_scope, self.out_scope = in_scope.float(), out_scope.float()
        self.in_texts, self.out_texts, self.objects = list(in_texts), list(out_texts), tuple(objects)
        self.report = report or {}
        self.goals = [(label, tuple(objects)) for label, objects in goals] if goals else None
        self._names = re.compile(r"\b(" + "|".join(re.escape(o) for o in self.objects) + r")\b")

    def mentions(self, text: str) -> list[str]:
        """The scene's objects that `text` names, once per mention, in its order."""
        return self._names.findall(text.lower())

    def decide(
        self, texts: list[str], embeddings: Tensor, goals_read: list[int] | None = None
    ) -> list[InstructionCheck]:
        """texts and their (B, 384) sentence embeddings -> one decision each. `goals_read`: the
        index (into `goals`) of the goal a policy's reader names for each text, to check it
        against the objects the text names."""
        if goals_read is not None and self.goals is None:
            raise ValueError("this gate was built without the task's goals; it cannot check a goal read")
        near_in = (embeddings.float() @ self.in_scope.T).topk(self.neighbours, 1)  # (B, k) similarities, indices
        near_out = (embeddings.float() @ self.out_scope.T).topk(self.neighbours, 1)
        score_in, score_out = near_in.values.mean(1), near_out.values.mean(1)  # (B,)
        checks = []
        for i, text in enumerate(texts):
            s_in, s_out = float(score_in[i]), float(score_out[i])
            named = self.mentions(text)
            nearest, unlike = self.in_texts[int(near_in.indices[i, 0])], self.out_texts[int(near_out.indices[i, 0])]
            shown = text if len(text) <= 60 else text[:57] + "..."
            similar = "similarity" if self.neighbours == 1 else f"mean similarity of the {self.neighbours} nearest"
            if not text.strip():
                reason = "instruction not understood: it is empty"
            elif s_out >= s_in:
                reason = (
                    f"instruction not understood: {shown!r} is closer to what this policy was not trained for "
                    f"({unlike!r}, {similar} {s_out:.2f}) than to anything it was ({nearest!r}, {s_in:.2f})"
                )
            elif not named:
                reason = (
                    f"instruction not understood: {shown!r} names none of the objects this policy knows "
                    f"({', '.join(self.objects)})"
                )
            elif goals_read is not None and sorted(named) != sorted(self.goals[goals_read[i]][1]):
                read, objects = self.goals[goals_read[i]]
                reason = (
                    f"instruction not understood: {shown!r} reads closest to {read!r}, which names "
                    f"{' and '.join(objects)}; it names {' and '.join(named)}"
                )
            else:
                reason = ""
            checks.append(InstructionCheck(not reason, s_in, nearest, reason))
        return checks

    # ------------------------------------------------------------ storage
    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        tensors = {"in_scope": self.in_scope.half().contiguous(), "out_scope": self.out_scope.half().contiguous()}
        save_file(tensors, str(directory / GATE_WEIGHTS))
        meta = {
            "encoder": "minilm mean-pooled, L2-normalised",
            "objects": list(self.objects),
            "neighbours": self.neighbours,
            "goals": [{"asks": label, "objects": list(objects)} for label, objects in self.goals or []],
            "report": self.report,
            "in_scope": self.in_texts,
            "out_of_scope": self.out_texts,
        }
        (directory / GATE_META).write_text(json.dumps(meta, indent=1))


def load_gate(directory: str | Path) -> InstructionGate | None:
    """The gate shipped in a checkpoint directory, or None if it has none."""
    directory = Path(directory)
    if not (directory / GATE_WEIGHTS).exists():
        return None
    meta = json.loads((directory / GATE_META).read_text())
    tensors = load_file(str(directory / GATE_WEIGHTS))
    return InstructionGate(
        tensors["in_scope"], meta["in_scope"], tensors["out_scope"], meta["out_of_scope"], tuple(meta["objects"]),
        meta.get("report"), meta.get("neighbours", 1),
        [(g["asks"], tuple(g["objects"])) for g in meta.get("goals", [])],
    )  # fmt: skip
