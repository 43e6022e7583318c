"""Fitting the instruction gate (vla_policy/gate.py): positives are the grammar's training
wordings, negatives are generated here from vocabulary of their own: other chores and objects,
colours and shapes the scene lacks, what the skills cannot do (a cube on itself, pushing up,
all the cubes at once, a cube without a colour), talk, and strings that are not words.

The 100 out-of-scope commands the gate is measured on (tests/data/out_of_scope.json) were written
apart from this generator and are never trained on; the held-out wordings it must accept use
words that occur in no training wording (sim/tasks/language.py)."""

from __future__ import annotations

import string
from collections.abc import Callable

import numpy as np
import torch

from sim.tasks.base import Goal
from vla_policy.gate import GATE_MAX_TOKENS, InstructionGate
from vla_policy.models.text import MiniLM
from vla_policy.types import InstructionCheck

CHORE_VERBS = (
    "open", "shut", "wipe", "clean", "fill", "fold", "wash", "slice", "unplug", "press", "switch on",
    "switch off", "flip", "unscrew", "drink", "eat", "microwave", "insert", "deliver", "fetch", "carry",
    "bring", "give me", "show me", "look at", "find", "count", "cover", "polish", "tidy", "charge", "lock",
)  # fmt: skip
OTHER_OBJECTS = (
    "door", "window", "lid", "jar", "cup", "glass", "plate", "spoon", "fork", "knife", "sponge", "book",
    "laptop", "lamp", "shelf", "oven", "sink", "faucet", "can", "toy car", "shoe", "sock", "key", "remote",
    "pillow", "ball", "banana", "tray", "box lid", "marker", "tablet", "keyboard", "hat", "flower pot",
)  # fmt: skip
OTHER_COLOURS = (
    "orange",
    "pink",
    "black",
    "white",
    "brown",
    "gray",
    "beige",
    "navy",
    "maroon",
    "teal",
    "lime",
    "olive",
)
OTHER_SHAPES = ("ball", "cone", "ring", "star", "disc", "tube", "cup", "bottle")
BAD_DIRECTIONS = ("up", "down", "forward", "backward", "away from me", "towards me", "into the air", "in a circle")
QUANTIFIERS = ("all the", "every", "both", "all four", "each", "several", "the other", "some")
OTHER_ACTIONS = (
    "kick", "drop", "smash", "lick", "wrap", "melt", "shake", "bite", "flip over", "roll", "stand up", "twist",
    "tilt", "tap", "poke", "hit", "tip over", "spray", "colour", "turn around", "wobble", "clean", "weigh",
)  # fmt: skip
OTHER_RELATIONS = (
    "beside", "behind", "in front of", "near", "against", "inside", "below", "underneath", "to the left of",
    "to the right of", "far from", "around", "across from", "alongside",
)  # fmt: skip
OTHER_PLACES = ("off the edge", "to the corner", "into the bin", "onto the floor", "out of reach", "to the middle")
TALK = (
    "hi there", "good evening", "what day is it", "how old are you", "do you like music", "what are you doing",
    "nice job", "sorry", "okay", "yes", "no", "maybe later", "where am i", "can we talk", "explain yourself",
    "goodbye", "what can you do", "who made you", "is it raining", "play some jazz", "order a pizza",
    "call my mom", "read me the news", "set an alarm for seven", "wait a second", "never mind",
)  # fmt: skip


def out_of_scope_kinds(grammar, rng: np.random.Generator) -> dict[str, Callable[[], str]]:
    """The kinds of instruction the tabletop policy cannot carry out, each a generator of one."""
    colours = grammar.colors

    def pick(options):
        return options[int(rng.integers(len(options)))]

    def in_template(skill: str, **goal) -> str:
        template = grammar.sample_template(skill, "train", rng)
        return grammar.render(template, Goal(skill, "", **goal))

    return {
        "chore": lambda: f"{pick(CHORE_VERBS)} the {pick(OTHER_OBJECTS)}",
        "chore on a colour": lambda: f"{pick(('please ', 'could you ', ''))}{pick(CHORE_VERBS)} the {pick(colours)} "
        f"{pick(OTHER_OBJECTS)}",
        "pick an absent colour": lambda: in_template("pick", target=pick(OTHER_COLOURS)),
        "push an absent colour": lambda: in_template(
            "push", target=pick(OTHER_COLOURS), direction=pick(("left", "right"))
        ),
        "stack an absent colour": lambda: in_template("stack", target=pick(OTHER_COLOURS), place_on=pick(colours)),
        "stack on an absent colour": lambda: in_template("stack", target=pick(colours), place_on=pick(OTHER_COLOURS)),
        "other shape": lambda: f"{pick(('pick up', 'lift', 'grab', 'push', 'move'))} the {pick(colours)} "
        f"{pick(OTHER_SHAPES)}",
        "other object": lambda: f"{pick(('pick up', 'lift', 'grab', 'push', 'move'))} the {pick(OTHER_OBJECTS)}",
        "a cube on itself": lambda: (lambda c: in_template("stack", target=c, place_on=c))(pick(colours)),
        "push up or away": lambda: f"{pick(('push', 'slide', 'move', 'shove'))} the {pick(colours)} "
        f"{pick(('cube', 'block'))} {pick(BAD_DIRECTIONS)}",
        "many cubes": lambda: f"{pick(('pick up', 'lift', 'push', 'stack', 'move'))} {pick(QUANTIFIERS)} "
        f"{pick(('cubes', 'blocks', 'cube', 'block'))}",
        "no colour": lambda: f"{pick(('pick up', 'lift', 'push', 'grab'))} the "
        f"{pick(('cube', 'block', 'one', 'thing'))}",
        "other action": lambda: f"{pick(OTHER_ACTIONS)} the {pick(colours)} {pick(('cube', 'block'))}",
        "other relation": lambda: (
            lambda c, o: f"{pick(('put', 'place', 'set', 'move'))} the {c} {pick(('cube', 'block'))} "
            f"{pick(OTHER_RELATIONS)} the {o} {pick(('cube', 'block', 'one'))}"
        )(*rng.permutation(colours)[:2]),
        "other place": lambda: f"{pick(('push', 'slide', 'move', 'shove', 'put'))} the {pick(colours)} "
        f"{pick(('cube', 'block'))} {pick(OTHER_PLACES)}",
        "stack without a base": lambda: f"{pick(('put', 'stack', 'place'))} the {pick(colours)} "
        f"{pick(('cube', 'block'))}",
        "colours alone": lambda: " ".join(pick(colours) for _ in range(int(rng.integers(1, 4)))),
        "talk": lambda: pick(TALK),
        "letters": lambda: "".join(pick(string.ascii_lowercase + " ") for _ in range(int(rng.integers(1, 25)))).strip(),
        "symbols": lambda: "".join(pick(string.punctuation + string.digits) for _ in range(int(rng.integers(1, 12)))),
        "empty": lambda: "",
    }


def left_to_the_goal_check(reads_goals: bool) -> tuple[str, ...]:
    """The kinds of out-of-scope example a gate leaves out for a policy that reads goals. A cube on
    itself is one word from a stack in sentence space, and those examples were the nearest of most
    wordings the gate wrongly refused; the check of the goal read holds it instead (every such
    instruction names one cube twice or names fewer cubes than the goal read)."""
    return ("a cube on itself",) if reads_goals else ()


def out_of_scope_examples(grammar, rng: np.random.Generator, n: int, leave_out: tuple[str, ...] = ()) -> list[str]:
    """`n` instructions the tabletop policy cannot carry out, drawn evenly from the kinds of
    `out_of_scope_kinds` but those named in `leave_out`."""
    kinds = out_of_scope_kinds(grammar, rng)
    unknown = set(leave_out) - set(kinds)
    if unknown:
        raise ValueError(f"unknown out-of-scope kinds {sorted(unknown)}; known: {sorted(kinds)}")
    drawn = [kind for name, kind in kinds.items() if name not in leave_out]
    return [drawn[i % len(drawn)]() for i in range(n)]


@torch.no_grad()
def embed(backbone: MiniLM, texts: list[str], batch: int = 512) -> torch.Tensor:
    """(N, 384) sentence embeddings of `texts`, a batch at a time."""
    parts = [backbone.sentence_embedding(texts[i : i + batch], GATE_MAX_TOKENS) for i in range(0, len(texts), batch)]
    return torch.cat(parts).cpu() if parts else torch.zeros(0, backbone.dim)


def build_gate(
    grammar,
    objects: tuple[str, ...],
    backbone: MiniLM | None = None,
    examples: int = 6000,
    seed: int = 0,
    neighbours: int = 1,
    leave_out: tuple[str, ...] = (),
) -> InstructionGate:
    """A gate over `examples` training wordings (goals drawn uniformly) and as many generated
    out-of-scope commands (distinct ones; none of the kinds in `leave_out`), deciding by its
    `neighbours` nearest of each; it knows the grammar's goals, to check a policy's reading."""
    rng = np.random.default_rng(seed)
    backbone = backbone or MiniLM()
    goals = grammar.goals()
    positives = sorted({grammar.wording(goals[int(rng.integers(len(goals)))], "train", rng) for _ in range(examples)})
    negatives = sorted(set(out_of_scope_examples(grammar, rng, examples, leave_out)))
    gate = gate_from_examples(positives, negatives, objects, backbone, neighbours, [goal_asks(g) for g in goals])
    gate.report["seed"] = seed
    gate.report["left_out"] = list(leave_out)
    return gate


def goal_asks(goal: Goal) -> tuple[str, tuple[str, ...]]:
    """What `goal` asks in a few words ("stack red on green"), and the objects it names."""
    words = [goal.skill, goal.target] + ([f"on {goal.place_on}"] if goal.place_on else []) + [goal.direction or ""]
    return " ".join(w for w in words if w), tuple(o for o in (goal.target, goal.place_on) if o)


def gate_from_examples(
    in_scope: list[str],
    out_of_scope: list[str],
    objects: tuple[str, ...],
    backbone: MiniLM | None = None,
    neighbours: int = 1,
    goals: list[tuple[str, tuple[str, ...]]] | None = None,
) -> InstructionGate:
    """A gate over given examples (a task without a grammar lists its own)."""
    backbone = backbone or MiniLM()
    report = {"in_scope_examples": len(in_scope), "out_of_scope_examples": len(out_of_scope)}
    return InstructionGate(
        embed(backbone, in_scope), in_scope, embed(backbone, out_of_scope), out_of_scope, objects, report, neighbours,
        goals,
    )  # fmt: skip


def measure_gate(
    gate: InstructionGate,
    decide: Callable[[list[str]], list[InstructionCheck]],
    grammar,
    out_of_scope: list[str],
    wordings: int = 2000,
    seed: int = 1,
):
    """How many of the out-of-scope commands `decide` holds, how many fresh commands of the
    generator `gate` builds its out-of-scope examples with it accepts (`wordings` draws, the
    gate's own examples and repeats left out), and how often it wrongly refuses fresh wordings of
    each split (seeded draws, goals uniform). `decide` is the whole decision a policy holds on
    (`Policy.check_instructions`: the gate, and the check of the goal it reads) or the gate alone
    (`gate_alone`). Fresh means none of the gate's own in-scope examples: a draw that is one of
    them is skipped and counted (with the gate's build seed as `seed`, the first draws replay its
    examples)."""
    rng = np.random.default_rng(seed)
    known = set(gate.in_texts)
    checks = decide(out_of_scope)
    report = {
        "neighbours": gate.neighbours,
        "out_of_scope": len(out_of_scope),
        "out_of_scope_held": sum(not c.accepted for c in checks),
        "out_of_scope_accepted": [t for t, c in zip(out_of_scope, checks) if c.accepted],
    }
    goals = grammar.goals()
    for split in ("train", "heldout"):
        texts, skipped = [], 0
        while len(texts) < wordings:
            text = grammar.wording(goals[int(rng.integers(len(goals)))], split, rng)
            if text in known:
                skipped += 1
                if skipped > 100 * wordings:
                    raise ValueError(f"the gate's examples hold nearly every {split} wording; none fresh to measure")
            else:
                texts.append(text)
        report[f"{split}_skipped_as_gate_examples"] = skipped
        refused = [t for t, c in zip(texts, decide(texts)) if not c.accepted]
        report[f"{split}_wordings"] = wordings
        report[f"{split}_refused"] = len(refused)
        report[f"{split}_refused_examples"] = refused[:10]
    own = set(gate.out_texts)
    generated = [t for t in dict.fromkeys(out_of_scope_examples(grammar, rng, wordings)) if t not in own]
    accepted = [t for t, c in zip(generated, decide(generated)) if c.accepted]
    report["generated_out_of_scope"] = len(generated)
    report["generated_out_of_scope_accepted"] = len(accepted)
    report["generated_out_of_scope_accepted_examples"] = accepted[:10]
    return report


def gate_alone(gate: InstructionGate, backbone: MiniLM) -> Callable[[list[str]], list[InstructionCheck]]:
    """The gate's decision on texts, without a policy's goal reading."""
    return lambda texts: gate.decide(texts, embed(backbone, texts))
