"""The tabletop instruction grammar: splits that differ in words and templates, and every
wording parses back to its goal."""

from __future__ import annotations

import re

import numpy as np
import pytest

from sim.tasks.language import HELDOUT, SPLITS, TRAIN, Grammar
from sim.tasks.objects import CUBE_COLORS

GRAMMAR = Grammar(tuple(CUBE_COLORS))
FUNCTION_WORDS = {"the", "it", "to", "in", "is", "i", "you", "that", "for", "up", "go", "goes", "table"}


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text))


@pytest.mark.parametrize("skill", ["pick", "stack", "push"])
def test_each_skill_has_at_least_30_training_templates_and_disjoint_heldout_ones(skill):
    train, heldout = set(GRAMMAR.templates(skill, "train")), set(GRAMMAR.templates(skill, "heldout"))
    assert len(train) == GRAMMAR.count(skill, "train") >= 30
    assert len(heldout) == GRAMMAR.count(skill, "heldout") >= 30
    assert not train & heldout


def test_heldout_verbs_nouns_relations_and_directions_never_occur_in_training_wordings():
    heldout_parts = [*HELDOUT.nouns, *HELDOUT.relations, *HELDOUT.directions, *HELDOUT.prefixes, *HELDOUT.suffixes]
    heldout_parts += [v for verbs in HELDOUT.verbs.values() for v in verbs]
    heldout_words = set().union(*(_words(p.replace("{d}", "")) for p in heldout_parts)) - FUNCTION_WORDS
    assert {"hoist", "brick", "atop", "nudge", "towards", "kindly"} <= heldout_words
    training_words = set()
    for skill in ("pick", "stack", "push"):
        for template in GRAMMAR.templates(skill, "train"):
            training_words |= _words(template)
    assert not heldout_words & training_words
    assert TRAIN.words() & heldout_words == set()


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_every_wording_parses_back_to_its_goal_and_split(split):
    for skill in ("pick", "stack", "push"):
        for template in GRAMMAR.templates(skill, split):
            for goal in GRAMMAR.goals(skill):
                text = GRAMMAR.render(template, goal)
                parsed, found_split = GRAMMAR.parse(text)
                assert (parsed.skill, parsed.target, parsed.place_on, parsed.direction) == (
                    goal.skill,
                    goal.target,
                    goal.place_on,
                    goal.direction,
                ), text
                assert found_split == split, text


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_every_wording_names_the_word_order_it_follows(split):
    for skill in ("pick", "stack", "push"):
        goal = GRAMMAR.goals(skill)[-1]
        for frame in SPLITS[split].frames[skill]:
            for template in GRAMMAR.templates(skill, split, frame):
                assert GRAMMAR.frame(GRAMMAR.render(template, goal)) == f"{split} {skill}: {frame}", template
    assert (
        GRAMMAR.frame("Atop the blue brick, deposit the red piece!")
        == "heldout stack: {R} the {o} {m}, {V} the {c} {n}"
    )
    assert GRAMMAR.frame("open the drawer") is None


def test_parse_reads_case_punctuation_and_phrasal_verbs_and_refuses_what_no_goal_says():
    goal, split = GRAMMAR.parse("The yellow cube: pick it up, please.")
    assert (goal.skill, goal.target, split) == ("pick", "yellow", "train")
    assert GRAMMAR.parse("Push the red block leftwards")[0].direction == "left"
    assert GRAMMAR.parse("put the red cube on the red cube") is None  # a cube cannot go on itself
    for text in ("open the drawer", "pick up the purple cube", "", "push the red cube up", "red"):
        assert GRAMMAR.parse(text) is None, text


def test_sampled_wordings_vary_and_stay_in_their_split():
    rng = np.random.default_rng(0)
    goal = GRAMMAR.goals("stack")[0]
    for split in ("train", "heldout"):
        wordings = {GRAMMAR.wording(goal, split, rng) for _ in range(200)}
        assert len(wordings) > 100
        assert all(GRAMMAR.parse(w)[1] == split for w in wordings)
