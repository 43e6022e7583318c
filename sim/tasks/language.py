"""The tabletop family's instruction grammar: wordings of a goal built from parts.

A wording is a *frame* (a word order, e.g. "the {c} {n}: {V} it") filled with a verb phrase
({V}), nouns for the cubes ({n}, {m}), a relation word for stack ({R}), a direction phrase for
push ({D}) and at most one filler (a politeness prefix or a suffix). The goal fills the rest:
{c} the named cube's colour, {o} the base cube's colour (stack), {d} left or right (push).
A *template* is a frame with every part chosen and only the goal's slots left.

Two splits. `train` is what training draws its wordings from. `heldout` differs in vocabulary,
not only in order: its verbs, nouns, relation words, direction phrases, fillers and frames never
occur in a training wording (only the colours, left/right and function words such as "the" are
shared), so an evaluation on it asks whether the words' meaning carries, not the templates.
Every wording parses back to its goal (`Grammar.parse`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import permutations, product

import numpy as np

from sim.tasks.base import Goal
from sim.tasks.instructions import normalize

SKILLS = ("pick", "stack", "push")
DIRECTIONS = ("left", "right")
PART_SLOTS = ("V", "P", "n", "m", "R", "D")  # filled from the vocabulary; {c} {o} {d} from the goal


@dataclass(frozen=True)
class Vocabulary:
    """One split's parts. Frames use the slots {V} (this skill's verb), {P} (a pick verb, for
    "pick up the x and put it on the y"), {n} {m} (nouns for the named and the base cube),
    {R} (relation), {D} (direction phrase, which holds {d}); frames that start with a verb also
    take a prefix ("please ", "could you ")."""

    verbs: Mapping[str, tuple[str, ...]]  # skill -> verb phrases
    nouns: tuple[str, ...]
    relations: tuple[str, ...]
    directions: tuple[str, ...]  # each holds {d}
    prefixes: tuple[str, ...]
    suffixes: tuple[str, ...]
    frames: Mapping[str, tuple[str, ...]]  # skill -> frames

    def choices(self, skill: str, slot: str) -> tuple[str, ...]:
        return {
            "V": self.verbs[skill],
            "P": self.verbs["pick"],
            "n": self.nouns,
            "m": self.nouns,
            "R": self.relations,
            "D": self.directions,
        }[slot]

    def words(self) -> set[str]:
        """Every word its parts use (frames' own words included)."""
        texts = [*self.nouns, *self.relations, *self.directions, *self.prefixes, *self.suffixes]
        texts += [v for verbs in self.verbs.values() for v in verbs]
        texts += [f for frames in self.frames.values() for f in frames]
        return {w for t in texts for w in re.findall(r"[a-z']+", re.sub(r"\{\w\}", " ", t))}


TRAIN = Vocabulary(
    verbs={
        "pick": ("pick up", "lift", "raise", "grab", "take", "get", "hold up", "lift up"),
        "stack": ("put", "place", "stack", "set", "lay"),
        "push": ("push", "slide", "shove", "move", "shift"),
    },
    nouns=("cube", "block", "one"),
    relations=("on", "onto", "on top of", "over", "above", "down on"),
    directions=("to the {d}", "{d}", "{d}wards", "to the {d} side", "over to the {d}"),
    prefixes=("please ", "could you ", "can you ", "i want you to ", "now ", "go ahead and ", "robot, "),
    suffixes=(" please", " now", " for me"),
    frames={
        "pick": (
            "{V} the {c} {n}",
            "the {c} {n}: {V} it",
            "{c} {n}, {V} it",
            "{V} the {n} that is {c}",
            "{V} the {c} {n} off the table",
        ),
        "stack": (
            "{V} the {c} {n} {R} the {o} {m}",
            "{c} {n} {R} {o} {m}",
            "{P} the {c} {n} and {V} it {R} the {o} {m}",
            "{V} the {c} {n} {R} the {m} that is {o}",
            "the {c} {n} goes {R} the {o} {m}",
            "the {o} {m} stays where it is; {V} the {c} {n} {R} it",
            "the {o} {m} is the base: {V} the {c} {n} {R} it",
            "with the {o} {m} as the base, {V} the {c} {n} {R} it",
            "the {o} {m} gets the {c} {n} {R} it",
            "{R} the {o} {m} goes the {c} {n}",
            "{R} the {o} {m}: the {c} {n}",
            "{V} the {c} {n}; it belongs {R} the {o} {m}",
        ),
        "push": (
            "{V} the {c} {n} {D}",
            "the {c} {n}: {V} it {D}",
            "{V} the {n} that is {c} {D}",
            "{D}, {V} the {c} {n}",
            "{V} the {c} {n} across the table {D}",
        ),
    },
)

HELDOUT = Vocabulary(
    verbs={
        "pick": ("hoist", "elevate", "snatch"),
        "stack": ("deposit", "rest", "balance"),
        "push": ("nudge", "scoot", "sweep"),
    },
    nouns=("brick", "piece"),
    relations=("atop", "upon"),
    directions=("towards the {d}", "toward its {d}", "in the {d} direction"),
    prefixes=("kindly ", "would you ", "i need you to ", "try to "),
    suffixes=(" thanks", " thank you", " quickly"),
    frames={
        "pick": (
            "{V} the {c} {n} from the table",
            "what i need is for you to {V} the {c} {n}",
            "{V} it, the {c} {n}",
        ),
        "stack": (
            "{R} the {o} {m}, {V} the {c} {n}",
            "the {o} {m} should end up with the {c} {n} {R} it",
            "{V} the {c} {n} so that it sits {R} the {o} {m}",
        ),
        "push": (
            "{V} the {c} {n} a bit {D}",
            "the {c} {n} needs to go {D}, {V} it",
            "{D} is where the {c} {n} goes, {V} it",
        ),
    },
)

SPLITS = {"train": TRAIN, "heldout": HELDOUT}


def _slots(frame: str) -> list[str]:
    return [s for s in re.findall(r"\{(\w)\}", frame) if s in PART_SLOTS]


def _with_it(verb: str) -> str:
    """ "pick up" + "it" -> "pick it up" (a phrasal verb's particle goes after the pronoun)."""
    head, _, particle = verb.partition(" ")
    return f"{head} it {particle}" if particle else f"{verb} it"


def _unpunctuated(text: str) -> str:
    """Commas, colons and semicolons dropped, spaces single: what parsing compares."""
    return re.sub(r"\s+", " ", re.sub(r"[,:;]", " ", text)).strip()


def _takes_prefix(frame: str) -> bool:
    """Frames that start with the verb take a politeness prefix ("please ", "could you ")."""
    return frame.startswith(("{V}", "{P}"))


def _fill(frame: str, slot: str, part: str) -> str:
    if slot in ("V", "P") and "{" + slot + "} it" in frame:
        return frame.replace("{" + slot + "} it", _with_it(part), 1)
    return frame.replace("{" + slot + "}", part, 1)


class Grammar:
    """Wordings of the tabletop goals over `colors`: sample, count, list and parse them."""

    def __init__(self, colors: tuple[str, ...], skills: tuple[str, ...] = SKILLS):
        self.colors, self.skills = tuple(colors), tuple(skills)
        self._parsers = {split: self._compile(vocab) for split, vocab in SPLITS.items()}

    # ------------------------------------------------------------------ goals
    def goals(self, skill: str | None = None) -> list[Goal]:
        """Every goal (instruction left empty), in a fixed order."""
        goals = []
        for s in (skill,) if skill else self.skills:
            if s == "stack":
                goals += [Goal("stack", "", target=c, place_on=o) for c, o in permutations(self.colors, 2)]
            elif s == "push":
                goals += [Goal("push", "", target=c, direction=d) for c in self.colors for d in DIRECTIONS]
            else:
                goals += [Goal(s, "", target=c) for c in self.colors]
        return goals

    # -------------------------------------------------------------- templates
    def templates(self, skill: str, split: str, frame: str | None = None) -> Iterator[str]:
        """Every template of a skill in a split (only {c} {o} {d} left), or of one of its frames,
        in a fixed order."""
        vocab = SPLITS[split]
        for order in vocab.frames[skill] if frame is None else (frame,):
            slots = _slots(order)
            for parts in product(*(vocab.choices(skill, s) for s in slots)):
                body = order
                for slot, part in zip(slots, parts):
                    body = _fill(body, slot, part)
                yield body
                for suffix in vocab.suffixes:
                    yield body + suffix
                if _takes_prefix(order):
                    for prefix in vocab.prefixes:
                        yield prefix + body

    def count(self, skill: str, split: str) -> int:
        """len(list(templates(skill, split))) without listing them."""
        vocab, total = SPLITS[split], 0
        for frame in vocab.frames[skill]:
            fillers = 1 + len(vocab.suffixes) + (len(vocab.prefixes) if _takes_prefix(frame) else 0)
            total += math.prod(len(vocab.choices(skill, s)) for s in _slots(frame)) * fillers
        return total

    def sample_template(self, skill: str, split: str, rng: np.random.Generator) -> str:
        """One template, each part drawn uniformly (frame, then each slot, then the filler: none
        half the time, else one prefix or suffix)."""
        vocab = SPLITS[split]
        frame = vocab.frames[skill][int(rng.integers(len(vocab.frames[skill])))]
        body = frame
        for slot in _slots(frame):
            options = vocab.choices(skill, slot)
            body = _fill(body, slot, options[int(rng.integers(len(options)))])
        if rng.random() < 0.5:
            return body
        fillers = [*vocab.suffixes, *(vocab.prefixes if _takes_prefix(frame) else ())]
        filler = fillers[int(rng.integers(len(fillers)))]
        return body + filler if filler in vocab.suffixes else filler + body

    @staticmethod
    def render(template: str, goal: Goal) -> str:
        """A template's wording of a goal."""
        return (
            template.replace("{c}", goal.target)
            .replace("{o}", goal.place_on or "")
            .replace("{d}", goal.direction or "")
        )

    def wording(self, goal: Goal, split: str, rng: np.random.Generator) -> str:
        """A fresh wording of `goal` from `split`."""
        return self.render(self.sample_template(goal.skill, split, rng), goal)

    # ----------------------------------------------------------------- parse
    def parse(self, instruction: str) -> tuple[Goal, str] | None:
        """-> (the goal it words, its split), or None if no wording of this grammar says it."""
        found = self._match(instruction)
        if found is None:
            return None
        text, split, skill, _, match = found
        groups = match.groupdict()
        way = re.search("|".join(DIRECTIONS), groups["D"]).group() if groups.get("D") else None
        return Goal(skill, text, target=groups["c"], place_on=groups.get("o"), direction=way), split

    def frame(self, instruction: str) -> str | None:
        """-> "<split> <skill>: <frame>", the word order an instruction follows (e.g. "heldout
        stack: {R} the {o} {m}, {V} the {c} {n}"), or None if no wording of this grammar says it.
        An evaluation groups its episodes by it: which word orders a policy follows."""
        found = self._match(instruction)
        return None if found is None else f"{found[1]} {found[2]}: {found[3]}"

    def _match(self, instruction: str) -> tuple[str, str, str, str, re.Match] | None:
        """-> (the normalised text, split, skill, frame, match) of the first frame whose pattern
        says the instruction with a goal (a cube never goes on itself), or None."""
        text = normalize(instruction)
        bare = _unpunctuated(text)
        for split, parsers in self._parsers.items():
            for skill, frame, pattern in parsers:
                match = pattern.fullmatch(bare)
                if match is None:
                    continue
                if match.groupdict().get("o") is not None and match["o"] == match["c"]:
                    return None
                return text, split, skill, frame, match
        return None

    def _compile(self, vocab: Vocabulary) -> list[tuple[str, str, re.Pattern]]:
        """(skill, frame, pattern) per frame; named groups c, o (colours) and D (the direction phrase)."""

        def alternation(options) -> str:
            return "(?:" + "|".join(re.escape(o) for o in sorted(options, key=len, reverse=True)) + ")"

        def direction(options) -> str:
            either = "(?:" + "|".join(DIRECTIONS) + ")"
            phrases = sorted(options, key=len, reverse=True)
            return "(?P<D>" + "|".join(either.join(re.escape(x) for x in o.split("{d}")) for o in phrases) + ")"

        colour = "(?P<{}>" + "|".join(self.colors) + ")"
        parsers = []
        for skill in self.skills:
            for frame in vocab.frames[skill]:
                body = re.escape(_unpunctuated(frame)).replace("\\ ", " ")
                for slot in PART_SLOTS:
                    options = vocab.choices(skill, slot)
                    if slot in ("V", "P"):
                        body = body.replace("\\{" + slot + "\\} it", alternation(_with_it(v) for v in options))
                    fill = direction if slot == "D" else alternation
                    body = body.replace("\\{" + slot + "\\}", fill(options))
                body = body.replace("\\{c\\}", colour.format("c")).replace("\\{o\\}", colour.format("o"))
                prefix = alternation(_unpunctuated(p) + " " for p in vocab.prefixes) if _takes_prefix(frame) else "(?!)"
                pattern = f"(?:{prefix})?{body}{alternation(' ' + _unpunctuated(x) for x in vocab.suffixes)}?"
                parsers.append((skill, frame, re.compile(pattern)))
        return parsers
