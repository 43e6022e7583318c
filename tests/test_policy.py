"""Policy: input validation, defined degraded behaviour, chunk queue with temporal ensembling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.model_utils import PROPRIO_DIM, tiny_model_config
from tests.model_utils import random_obs as _obs
from vla_policy.config import Config, load_config, merge
from vla_policy.data.normalize import NormStats
from vla_policy.models.vla import VLAModel
from vla_policy.policy import Policy

STATS = NormStats(tuple([0.0] * PROPRIO_DIM), tuple([1.0] * PROPRIO_DIM), tuple([-0.5] * 7), tuple([0.5] * 7))


@pytest.fixture(scope="module")
def policy() -> Policy:
    torch.manual_seed(0)
    config: Config = merge(load_config("tiny"), {"model": {"chunk": 4, "replan_every": 1}})
    return Policy(VLAModel(config.model, PROPRIO_DIM), config, STATS, device="cpu")


def test_chunk_is_unnormalised_and_within_stats(policy):
    chunk = policy.predict_chunk(_obs())
    assert chunk.actions.shape == (4, 7) and chunk.dt == 0.05
    assert np.all(chunk.actions >= -0.5) and np.all(chunk.actions <= 0.5)


def test_select_action_ensembles_overlapping_chunks(policy):
    policy.reset()
    a0 = policy.select_action(_obs())
    assert a0.shape == (7,) and len(policy.scheduler.queue) == 1
    policy.select_action(_obs())
    assert len(policy.scheduler.queue) == 2
    for _ in range(6):
        policy.select_action(_obs())
    assert len(policy.scheduler.queue) <= 4  # chunks that no longer cover the step are dropped
    policy.reset()
    assert np.array_equal(policy.select_action(_obs()), a0)  # reset restores the seeded sampling


def _fresh_chunk(policy, obs) -> np.ndarray:
    policy.reset()  # the same sampling noise for every call
    return policy.predict_chunk(obs).actions


def test_degraded_inputs_have_defined_behaviour(policy):
    """A missing camera is masked out (what would have been in it does not matter), an empty
    instruction masks the text, and an over-long one is cut to the tokenizer's limit."""
    rng = np.random.default_rng(1)
    obs = _obs()
    del obs["wrist_image"]
    batch = policy.make_batch(obs)
    assert batch["camera_mask"].tolist() == [[True, False]]
    noise = {**batch, "images": batch["images"].clone()}
    noise["images"][:, 1] = torch.rand_like(noise["images"][:, 1])  # whatever fills the missing camera
    sample = [policy.model.sample_actions(b, torch.Generator().manual_seed(0)) for b in (batch, noise)]
    assert torch.equal(*sample)
    assert not np.allclose(_fresh_chunk(policy, obs), _fresh_chunk(policy, _obs()))  # the camera mattered

    empty = policy.make_batch({**_obs(), "instruction": "   "})
    assert not empty["text_mask"].any()
    other_ids = {**empty, "text_ids": torch.from_numpy(rng.integers(0, 1000, empty["text_ids"].shape))}
    sample = [policy.model.sample_actions(b, torch.Generator().manual_seed(0)) for b in (empty, other_ids)]
    assert torch.equal(*sample)

    limit = policy.config.model.text.max_tokens
    long = policy.make_batch({**_obs(), "instruction": "push " * 2000})  # 10k characters
    assert long["text_ids"].shape[-1] == limit and long["text_mask"].all()
    cut = _fresh_chunk(policy, {**_obs(), "instruction": "push " * 2000})
    assert np.array_equal(cut, _fresh_chunk(policy, {**_obs(), "instruction": "push " * (limit + 3)}))
    assert not np.array_equal(cut, _fresh_chunk(policy, {**_obs(), "instruction": "push"}))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda o: o.update(agentview_image=np.zeros((32, 32, 4), np.uint8)), "agentview_image must be"),
        (lambda o: o.update(agentview_image=np.zeros((32, 32, 3), np.float32)), "agentview_image must be"),
        (lambda o: o.update(joint_pos=np.array([np.nan] * 7)), "NaN"),
        (lambda o: o.pop("eef_pos"), "missing proprio key"),
        (lambda o: o.update(joint_pos=np.zeros(6)), "expects"),
        (lambda o: o.update(instruction=3), "instruction must be a string"),
    ],
)
def test_bad_inputs_are_clear_errors(policy, change, message):
    obs = _obs()
    change(obs)
    with pytest.raises((ValueError, KeyError), match=message):
        policy.predict_chunk(obs)


def test_unknown_device_is_clear():
    with pytest.raises(ValueError, match="unknown device"):
        Policy(VLAModel(tiny_model_config(), PROPRIO_DIM), load_config("tiny"), STATS, device="tpu")


def test_replanning_less_often_than_the_chunk_length_never_runs_dry(policy):
    policy.replan_every = 10  # longer than the chunk of 4: the queue empties in between
    policy.reset()
    actions = [policy.select_action(_obs()) for _ in range(12)]
    assert all(np.isfinite(a).all() for a in actions)


def test_chunk_with_world_model_future_and_its_surprise(policy):
    chunk, future = policy.predict_chunk_and_future(_obs())
    assert chunk.actions.shape == (4, 7) and future.shape[:2] == (1, len(policy.config.model.vision.cameras))
    same = policy.surprise(future, _obs())
    # the model's own latent of a frame is what it predicts best: (almost) no surprise
    batch = policy.make_batch(_obs(), "")
    own = torch.nn.functional.normalize(policy.model.visual_latent(batch["images"], batch["camera_mask"]), dim=-1)
    assert policy.surprise(own, _obs()) == pytest.approx(0.0, abs=1e-5)
    other = _obs(48)
    other["agentview_image"] = 255 - other["agentview_image"]
    assert policy.surprise(own, other) > policy.surprise(own, _obs()) + 1e-3
    assert 0.0 <= same <= 2.0  # cosine distance of unit latents


def test_chunks_play_open_loop_for_the_configured_steps():
    torch.manual_seed(0)
    config: Config = merge(load_config("tiny"), {"model": {"chunk": 4, "replan_every": 3}})
    policy = Policy(VLAModel(config.model, PROPRIO_DIM), config, STATS, device="cpu")
    starts = []
    for _ in range(9):
        policy.select_action(_obs())
        starts.append(policy.scheduler.queue[-1].start)
    assert np.allclose(sorted(set(starts)), [0.0, 0.15, 0.30])  # a new chunk at steps 0, 3 and 6 only
    assert Policy(policy.model, config, STATS, device="cpu", replan_every=1).replan_every == 1  # explicit wins
    assert Policy(policy.model, config, STATS, device="cpu", replan_every=10).replan_every == 4  # at most the chunk


def test_orientation_proprio_is_continuous_where_the_quaternion_flips():
    import transforms3d

    from vla_policy.proprio import proprio_from_obs

    # A gripper pointing down is a rotation of ~180 degrees, where the w >= 0 convention flips
    # the whole quaternion between two nearly equal orientations.
    axis = np.array([0.7, 0.714, 0.0])
    before, after = (
        transforms3d.quaternions.mat2quat(transforms3d.axangles.axangle2mat(axis, np.pi + d)) for d in (-1e-3, 1e-3)
    )
    assert np.abs(before - after).max() > 1.0  # the quaternion jumps
    a, b = (proprio_from_obs({"eef_quat": q}, ("eef_rot6d",)) for q in (before, after))
    assert a.shape == (6,) and np.abs(a - b).max() < 1e-2  # the 6-d orientation does not
    matrix = transforms3d.quaternions.quat2mat(before)
    assert np.allclose(a, matrix[:, :2].T.reshape(-1), atol=1e-6)  # the first two columns
    with pytest.raises(KeyError, match="eef_quat"):
        proprio_from_obs({"eef_pos": np.zeros(3)}, ("eef_rot6d",))


def test_agent_pos_is_read_whole_from_a_sim_and_put_together_from_a_robots_parts():
    """Meta-World observes agent_pos (hand xyz, gripper opening) whole; a robot's eef_pose and
    joint_states give it in parts: the same numbers either way, and either missing is an error."""
    from vla_policy.proprio import proprio_from_obs, proprio_sources

    whole = {"agent_pos": np.array([0.1, 0.6, 0.2, 0.9])}
    parts = {"eef_pos": np.array([0.1, 0.6, 0.2]), "gripper_qpos": np.array([0.9])}
    assert np.array_equal(proprio_from_obs(whole, ("agent_pos",)), proprio_from_obs(parts, ("agent_pos",)))
    assert proprio_sources(("agent_pos",)) == {"agent_pos"}
    assert proprio_sources(("agent_pos", "eef_rot6d"), composed=True) == {"eef_pos", "gripper_qpos", "eef_quat"}
    with pytest.raises(KeyError, match="agent_pos"):
        proprio_from_obs({"eef_pos": np.zeros(3)}, ("agent_pos",))


def test_flow_steps_override_changes_the_integration_and_needs_a_flow_head():
    config: Config = merge(load_config("tiny"), {"model": {"chunk": 4}})
    torch.manual_seed(0)
    model = VLAModel(config.model, PROPRIO_DIM)
    default, fewer = (Policy(model, config, STATS, device="cpu", flow_steps=steps) for steps in (None, 1))
    assert model.head.steps == 1  # the override is the model's sampler setting
    one_step = fewer.predict_chunk(_obs()).actions
    model.head.steps = config.model.flow_steps
    assert not np.allclose(default.predict_chunk(_obs()).actions, one_step)
    discrete = merge(config, {"model": {"head": "discrete"}})
    with pytest.raises(ValueError, match="needs a flow head"):
        Policy(VLAModel(discrete.model, PROPRIO_DIM), discrete, STATS, device="cpu", flow_steps=4)


def test_the_checkpoint_carries_its_action_space(tiny_checkpoint):
    import json

    from vla_policy.action_space import from_meta
    from vla_policy.policy import Policy

    meta = json.loads((tiny_checkpoint / "meta.json").read_text())
    space = from_meta(meta)
    assert meta["action_space"]["name"] == space.name == "ee_delta_gripper" and space.dt == meta["dt"]
    policy = Policy.from_checkpoint(tiny_checkpoint, device="cpu")
    assert policy.action_space == space
    assert from_meta({"env_args": meta["env_args"], "dt": 0.05}) == space  # older checkpoints: from their env


@pytest.fixture(scope="module")
def rtc_policy() -> Policy:
    torch.manual_seed(0)
    config: Config = merge(load_config("tiny"), {"model": {"chunk": 8, "replan_every": 4}})
    return Policy(VLAModel(config.model, PROPRIO_DIM), config, STATS, device="cpu", join="rtc", delay_ms=100)


def test_rtc_freezes_the_committed_prefix_bit_for_bit_and_guides_the_rest_toward_it(rtc_policy):
    prefix = np.full((8, 7), np.nan)
    prefix[:6] = np.random.default_rng(3).uniform(-0.4, 0.4, size=(6, 7))  # the old chunk covers 6 steps
    obs = _obs()
    rtc_policy.reset()
    free = rtc_policy.predict_chunk(obs).actions
    rtc_policy.reset()  # the same sampling noise
    guided = rtc_policy.predict_chunk(obs, prefix=prefix, frozen=2).actions
    assert np.array_equal(guided[:2], prefix[:2])  # bit-identical, not merely close
    error, free_error = np.abs(guided - prefix).mean(-1), np.abs(free - prefix).mean(-1)  # (8,) NaN past the overlap
    assert error[2] < 0.5 * free_error[2] and error[2:6].mean() < 0.7 * free_error[2:6].mean()


def test_delay_holds_until_the_first_chunk_and_serialises_inference(rtc_policy):
    """100 ms at dt 0.05 s: each chunk arrives 2 steps after its observation and is due 4 steps
    after it (replan_every), so the next is planned from the frame 2 steps after it, the moment
    the one in flight has arrived (inference is serial)."""
    rtc_policy.reset()
    obs = _obs()
    actions = [rtc_policy.select_action(obs) for _ in range(10)]
    assert rtc_policy.sources[:2] == [-1, -1]  # nothing has arrived: hold
    assert np.array_equal(actions[0], [0, 0, 0, 0, 0, 0, -1.0])  # no motion, the gripper open
    assert rtc_policy.sources[2:] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert [q.start for q in rtc_policy.scheduler.queue][-1] == pytest.approx(6 * 0.05)  # anchored at its frame


def test_inference_slower_than_the_chunk_lasts_holds_in_the_gaps():
    """150 ms (3 steps) of inference for 4-step chunks due every 4: serial inference delivers a
    chunk every 3 steps, each already 3 steps old, so one step of each is played, then holds."""
    config = merge(load_config("tiny"), {"model": {"chunk": 4, "replan_every": 4}})
    policy = Policy(VLAModel(config.model, PROPRIO_DIM), config, STATS, device="cpu", join="rtc", delay_ms=150)
    for _ in range(10):
        policy.select_action(_obs())
    assert policy.sources == [-1, -1, -1, 0, -1, -1, 1, -1, -1, 2]


def test_the_instruction_gate_holds_the_robot_on_what_it_does_not_understand(tiny_checkpoint, tmp_path):
    import shutil

    from sim.env import EnvConfig, SimEnv
    from vla_policy.eval.runner import run_episode
    from vla_policy.train.gate import gate_from_examples

    gated = tmp_path / "gated"
    shutil.copytree(tiny_checkpoint, gated)
    gate_from_examples(
        ["lift the cube", "pick up the cube", "raise the cube"],
        ["open the drawer", "make me a coffee", "hello"],
        ("cube",),
    ).save(gated)
    policy = Policy.from_checkpoint(gated, device="cpu")
    assert (
        Policy.from_checkpoint(tiny_checkpoint, device="cpu").check_instruction("make me a coffee").accepted
    )  # no gate
    ok, coffee = policy.check_instruction("lift the cube please"), policy.check_instruction("make me a coffee now")
    assert ok.accepted and ok.nearest.startswith(("lift", "raise", "pick")) and not ok.reason
    assert not coffee.accepted and coffee.reason.startswith("instruction not understood") and "coffee" in coffee.reason
    assert not policy.check_instruction("").accepted
    assert "names none of the objects" in policy.check_instruction("lift it up").reason
    with pytest.raises(ValueError, match="string"):
        policy.check_instruction(3)
    obs = {**_obs(), "instruction": "make me a coffee now"}
    policy.reset()
    held = [policy.select_action(obs) for _ in range(3)]
    assert all(np.all(a[:-1] == 0) for a in held) and policy.refusal is coffee and not policy.scheduler.queue
    moving = policy.select_action({**obs, "instruction": "lift the cube"})
    assert policy.refusal is None and len(policy.scheduler.queue) == 1 and moving.shape == (7,)
    config = EnvConfig(task="lift", image_size=32, cameras=tuple(policy.config.model.vision.cameras))
    with SimEnv(config) as env:
        env.reset(seed=1_000_000)
        record = run_episode(env, policy, seed=1_000_000)
    assert "refused" not in record  # the task's own instruction is understood
    inverted = tmp_path / "inverted"  # a gate that understands only what the task does not ask
    shutil.copytree(tiny_checkpoint, inverted)
    gate_from_examples(["open the drawer"], ["lift the cube"], ("drawer",)).save(inverted)
    with SimEnv(config) as env:
        record = run_episode(env, Policy.from_checkpoint(inverted, device="cpu"), seed=1_000_000)
    assert record["refused"].startswith("instruction not understood") and not record["success"]


def test_a_gates_wrong_refusals_are_counted_on_wordings_it_was_not_built_from():
    """Measured with its own build seed, the draws would be the gate's very examples (a gate
    built by `train.seed: 1` measured with `vla gate --seed 1`): those are skipped, not counted."""
    from sim.tasks import get_task
    from vla_policy.models.text import MiniLM
    from vla_policy.train.gate import build_gate, gate_alone, measure_gate

    task, backbone = get_task("tabletop"), MiniLM()
    gate = build_gate(task.grammar, task.object_names, backbone, examples=40, seed=1)
    asked = []
    decide = gate_alone(gate, backbone)
    report = measure_gate(
        gate, lambda texts: asked.extend(texts) or decide(texts), task.grammar, ["open the drawer"], 30, 1
    )
    counted = asked[1:61]  # after the out-of-scope command: the train wordings, then the held-out ones
    assert len(counted) == 60 and report["train_wordings"] == 30
    assert not set(counted) & set(gate.in_texts)
    assert report["train_skipped_as_gate_examples"] >= 30  # the seed replays the gate's own draws
    # then fresh draws of the out-of-scope generator, none of them the gate's own examples
    generated = asked[61:]
    assert len(generated) == report["generated_out_of_scope"] > 0 and not set(generated) & set(gate.out_texts)
    assert 0 <= report["generated_out_of_scope_accepted"] <= len(generated)


def test_an_instruction_must_name_the_objects_of_the_goal_the_policy_reads_in_it(tmp_path):
    """Sentence space cannot tell a cube on itself from a stack (one word apart): the goal read
    and the count can, since no goal stacks a cube on itself. Nor may an instruction name more
    than its goal."""
    from sim.tasks import get_task
    from vla_policy.gate import InstructionGate, load_gate
    from vla_policy.train.gate import build_gate

    near = torch.tensor([[1.0, 0.0]])  # (1, 2): every instruction here is a training wording's neighbour
    goals = [("stack red on green", ("red", "green")), ("pick red", ("red",))]
    gate = InstructionGate(near, ["put the red cube on the green cube"], torch.tensor([[0.0, 1.0]]), ["x"],
                           ("red", "green", "blue"), goals=goals)  # fmt: skip

    def check(text, goal):
        return gate.decide([text], near, goals_read=None if goal is None else [goal])[0]

    assert check("put the red cube on the green cube", 0).accepted
    on_itself = check("put the red cube on the red cube", 0)
    assert not on_itself.accepted and check("put the red cube on the red cube", None).accepted
    assert on_itself.reason == (
        "instruction not understood: 'put the red cube on the red cube' reads closest to 'stack red on green', "
        "which names red and green; it names red and red"
    )
    assert not check("put the red cube on the red cube", 1).accepted  # read as one cube, named twice
    assert not check("pick up the red cube next to the blue one", 1).accepted
    assert not check("pick up the red cube", 0).accepted
    gate.save(tmp_path)
    assert load_gate(tmp_path).goals == goals
    with pytest.raises(ValueError, match="goal read"):
        InstructionGate(near, ["a"], near, ["b"], ("red",)).decide(["red"], near, goals_read=[0])
    tabletop = get_task("tabletop")
    built = build_gate(tabletop.grammar, tabletop.object_names, examples=10, leave_out=("a cube on itself",))
    assert len(built.goals) == len(tabletop.grammar.goals()) and built.report["left_out"] == ["a cube on itself"]
    assert ("push blue left", ("blue",)) in built.goals and ("stack red on green", ("red", "green")) in built.goals
    with pytest.raises(ValueError, match="unknown out-of-scope kinds"):
        build_gate(tabletop.grammar, tabletop.object_names, examples=10, leave_out=("a cube on a cube",))


def test_a_gate_of_several_neighbours_outweighs_one_odd_example_and_keeps_its_count(tmp_path):
    """One out-of-scope example nearer than every training wording refuses with one neighbour;
    with three, the three training wordings close by outweigh it, and one training wording does not
    outweigh three out-of-scope examples. The count ships with the gate."""
    from vla_policy.gate import InstructionGate, load_gate

    def unit(*xs):
        v = torch.tensor(xs, dtype=torch.float32)
        return v / v.norm()

    query = unit(1, 0, 0)[None]  # (1, 3)
    in_scope = torch.stack([unit(0.9, 0.44, 0), unit(0.9, 0, 0.44), unit(0.9, -0.44, 0)])  # cos 0.9 each
    out_scope = torch.stack([unit(0.95, 0.31, 0), unit(0, 1, 0), unit(0, 0, 1)])  # cos 0.95, 0, 0
    texts = ["lift the red cube"] * 3, ["x"] * 3
    one = InstructionGate(in_scope, texts[0], out_scope, texts[1], ("red",))
    three = InstructionGate(in_scope, texts[0], out_scope, texts[1], ("red",), neighbours=3)
    assert not one.decide(["raise the red cube"], query)[0].accepted
    check = three.decide(["raise the red cube"], query)[0]
    assert check.accepted and check.similarity == pytest.approx(0.9, abs=0.01)
    # and the other way round: one training wording nearer than three out-of-scope examples
    odd_in = InstructionGate(out_scope, texts[0], in_scope, texts[1], ("red",))
    assert odd_in.decide(["raise the red cube"], query)[0].accepted
    odd_in_of_three = InstructionGate(out_scope, texts[0], in_scope, texts[1], ("red",), neighbours=3)
    assert not odd_in_of_three.decide(["raise the red cube"], query)[0].accepted
    three.save(tmp_path)
    assert load_gate(tmp_path).neighbours == 3
    with pytest.raises(ValueError, match="neighbours"):
        InstructionGate(in_scope, texts[0], out_scope, texts[1], ("red",), neighbours=4)
