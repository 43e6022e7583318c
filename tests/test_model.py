"""VLAModel: every fusion x head, heads' contracts, determinism, learning, world model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.model_utils import PROPRIO_DIM, fit, random_batch, tiny_model_config
from vla_policy.models.encoders import InstructedKeypoints, SpatialSoftmax, VisionEncoder
from vla_policy.models.fusion import FUSIONS
from vla_policy.models.heads.discrete import ActionTokenizer
from vla_policy.models.layers import make_attn_mask
from vla_policy.models.vla import VLAModel


@pytest.mark.parametrize("head", ["flow", "discrete"])
@pytest.mark.parametrize("fusion", sorted(FUSIONS))
def test_shapes_for_every_fusion_and_head(fusion, head):
    torch.manual_seed(0)
    config = tiny_model_config(fusion=fusion, head=head)
    model = VLAModel(config, PROPRIO_DIM)
    batch = random_batch(config)
    losses = model.compute_loss(batch)
    assert {"action", "world_model", "total"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    losses["total"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.fusion.parameters()) or fusion == "late"
    actions = model.sample_actions(batch)
    assert actions.shape == (3, config.chunk, config.action_dim)
    assert torch.isfinite(actions).all()
    assert model.predict_next(batch, actions).shape == (3, len(config.vision.cameras), config.d_model)


def test_unknown_fusion_and_head_are_clear():
    with pytest.raises(ValueError, match="unknown fusion 'erly'.*did you mean 'early'"):
        VLAModel(tiny_model_config(fusion="erly"), PROPRIO_DIM)
    with pytest.raises(ValueError, match="unknown head 'flo'.*did you mean 'flow'"):
        VLAModel(tiny_model_config(head="flo"), PROPRIO_DIM)


def test_action_tokenizer_round_trip_within_half_a_bin():
    tok = ActionTokenizer(256)
    x = torch.linspace(-1, 1, 10_001)
    err = (tok.decode(tok.encode(x)) - x).abs().max()
    assert err <= tok.half_bin + 1e-6
    assert tok.encode(torch.tensor([-1.0, 1.0, 5.0])).tolist() == [0, 255, 255]


def test_flow_sampling_is_deterministic_under_a_seed():
    torch.manual_seed(0)
    model = VLAModel(tiny_model_config(), PROPRIO_DIM).eval()
    batch = random_batch(model.config)
    a = model.sample_actions(batch, torch.Generator().manual_seed(5))
    b = model.sample_actions(batch, torch.Generator().manual_seed(5))
    c = model.sample_actions(batch, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_kv_cached_suffix_equals_one_full_pass():
    """The prefix cache gives exactly what a single pass over [prefix, suffix] gives."""
    torch.manual_seed(0)
    model = VLAModel(tiny_model_config(), PROPRIO_DIM).eval()
    batch = random_batch(model.config)
    m = model.encode(batch)
    tokens, mask = model.fusion(m)
    suffix = torch.randn(3, 5, model.config.d_model)
    cache, prefix_mask = model.prefix(m)
    cached = model.suffix_runner(cache, prefix_mask)(suffix)
    full_mask = torch.cat([mask, torch.ones(3, 5, dtype=torch.bool)], 1)
    ar = torch.cat([torch.zeros(mask.shape[1], dtype=torch.long), torch.tensor([1, 0, 0, 0, 0])])
    full = model.backbone(torch.cat([tokens, suffix], 1), make_attn_mask(full_mask, ar))[:, -5:]
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-5)


def test_make_attn_mask_block_causal():
    pad = torch.ones(1, 5, dtype=torch.bool)
    mask = make_attn_mask(pad, torch.tensor([0, 0, 1, 1, 0]))[0]
    # tokens 0-1 are the prefix (see each other), 2 sees prefix+itself, 3-4 form one block
    expected = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert torch.equal(mask, expected.bool())


@pytest.mark.parametrize("head", ["flow", "discrete"])
def test_overfitting_a_tiny_batch_drives_the_loss_down(head):
    torch.manual_seed(0)
    model = VLAModel(tiny_model_config(head=head, world_model_weight=0.0), PROPRIO_DIM)
    batch = random_batch(model.config, batch=4)
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)

    def measured() -> float:  # flow's loss is stochastic (noise, time): average under a fixed seed
        torch.manual_seed(123)
        with torch.no_grad():
            return sum(float(model.compute_loss(batch)["action"]) for _ in range(8)) / 8

    first = measured()
    fit(model, batch, "action", optim, 100)
    assert measured() < 0.5 * first


def test_world_model_surprise_is_lower_for_the_predicted_future():
    """After fitting, the predicted latent is closer to the true future than to another image."""
    torch.manual_seed(0)
    config = tiny_model_config(world_model_weight=1.0)
    model = VLAModel(config, PROPRIO_DIM)
    batch = random_batch(config, batch=4)
    optim = torch.optim.AdamW(
        [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("vision.")], lr=3e-3
    )
    fit(model, batch, "world_model", optim, 80)
    model.eval()
    predicted = model.predict_next(batch, batch["actions"])
    right = model.surprise(predicted, batch["future_images"], batch["camera_mask"])
    wrong = model.surprise(predicted, batch["future_images"].roll(1, dims=0), batch["camera_mask"])
    assert right.mean() < wrong.mean()
    assert right.shape == (4,)


def test_world_model_off_has_no_head():
    model = VLAModel(tiny_model_config(world_model_weight=0.0), PROPRIO_DIM)
    assert "world_model" not in model.compute_loss(random_batch(model.config))
    with pytest.raises(RuntimeError, match="without a world model"):
        model.predict_next(random_batch(model.config), torch.zeros(3, model.config.chunk, 7))


def test_missing_camera_and_missing_text_still_give_valid_actions():
    torch.manual_seed(0)
    model = VLAModel(tiny_model_config(), PROPRIO_DIM).eval()
    batch = random_batch(model.config)
    batch["camera_mask"][:, 1] = False
    batch["text_mask"][:] = False
    actions = model.sample_actions(batch)
    assert torch.isfinite(actions).all()


def test_spatial_softmax_finds_each_maps_peak():
    maps = torch.full((1, 2, 16, 16), -30.0)
    maps[0, 0, 3, 12] = 30.0  # row 3, column 12
    maps[0, 1, 15, 0] = 30.0
    xy = SpatialSoftmax()(maps)  # (1, 4): x0, x1, y0, y1 in [-1, 1]
    expected = torch.tensor([[12 / 15 * 2 - 1, -1.0, 3 / 15 * 2 - 1, 1.0]])
    assert torch.allclose(xy, expected, atol=1e-4)


def test_keypoint_token_is_one_more_token_per_camera_and_moves_with_the_image():
    torch.manual_seed(0)
    encoder = VisionEncoder(dim=32, heads=2, layers=1, image_size=32, patch_size=16, cameras=2, keypoints=8)
    images = torch.zeros(1, 2, 3, 32, 32)
    images[..., 4:8, 4:8] = 1.0
    tokens, mask = encoder(images, torch.tensor([[True, False]]))
    assert tokens.shape == (1, 2 * (4 + 1), 32) and mask.tolist() == [[True] * 5 + [False] * 5]
    shifted = torch.roll(images, shifts=(2, 2), dims=(-2, -1))  # 2 px: still inside the same 16 px patch
    keypoints = encoder.keypoints[:2]  # 1x1 conv + spatial softmax: (B, 2K) coordinates
    before = keypoints(encoder.stem(images[:, 0])[1])
    after = keypoints(encoder.stem(shifted[:, 0])[1])
    assert (after - before).abs().max() > 0.02  # the coordinates see a sub-patch shift


def test_film_stem_starts_as_the_identity_and_then_conditions_the_keypoints():
    torch.manual_seed(0)
    encoder = VisionEncoder(dim=32, heads=2, layers=1, image_size=32, patch_size=16, cameras=1, keypoints=8, film=True)
    images = torch.rand(2, 1, 3, 32, 32)
    red, blue = torch.randn(1, 32).expand(2, -1), torch.randn(1, 32).expand(2, -1)
    plain, _ = encoder(images)
    assert torch.allclose(encoder(images, condition=red)[0], plain)  # zero-initialised FiLM: no change yet
    for film in encoder.stem.films.values():
        torch.nn.init.normal_(film.proj.weight, std=0.5)
    red_tokens, blue_tokens = encoder(images, condition=red)[0], encoder(images, condition=blue)[0]
    keypoint = slice(4, 5)  # the keypoint token follows the 4 patch tokens
    assert (red_tokens[:, keypoint] - blue_tokens[:, keypoint]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="without FiLM or instructed keypoints"):
        VisionEncoder(dim=32, heads=2, layers=1, image_size=32, patch_size=16, cameras=1)(images, condition=red)


def test_instructed_keypoints_go_where_the_condition_points():
    finder = InstructedKeypoints(condition_dim=2, channels=2, count=1)
    with torch.no_grad():
        finder.query.weight.copy_(torch.eye(2))  # condition e_k queries channel k
        finder.query.bias.zero_()
        finder.key.weight.copy_(torch.eye(2)[:, :, None, None])
        finder.key.bias.zero_()
        finder.log_scale.fill_(4.0)  # similarity x e^4 = 55: the peak outweighs the 255 other cells
    features = torch.zeros(2, 2, 16, 16)
    features[:, 0, 3, 12] = 1.0  # channel 0 ("red") at row 3, column 12
    features[:, 1, 15, 0] = 1.0  # channel 1 ("blue") at row 15, column 0
    out = finder(features, torch.eye(2))  # (2, 1 * (2 + 2)): x, y, found features
    assert torch.allclose(out[0, :2], torch.tensor([12 / 15 * 2 - 1, 3 / 15 * 2 - 1]), atol=1e-2)
    assert torch.allclose(out[1, :2], torch.tensor([-1.0, 1.0]), atol=1e-2)
    assert out[0, 2] > 0.95 and out[1, 3] > 0.95  # what was found there is the queried channel


def test_instructed_keypoints_learn_to_find_the_named_colour():
    """Two squares, red and blue, at random places; the instruction names one: the stem and the
    instructed keypoints learn, from the position loss alone, to locate the named one."""
    torch.manual_seed(0)
    encoder = VisionEncoder(dim=32, heads=2, layers=1, image_size=32, patch_size=16, cameras=1, instructed_keypoints=2)
    readout = torch.nn.Linear(32, 2)
    words = torch.randn(2, 32)  # "red", "blue"
    optim = torch.optim.Adam([*encoder.parameters(), *readout.parameters()], lr=3e-3)

    def scene(n: int, generator: torch.Generator):
        images = torch.zeros(n, 1, 3, 32, 32)
        corners = torch.randint(0, 28, (n, 2, 2), generator=generator)  # (n, square, row/col)
        for i in range(n):
            for colour in range(2):
                r, c = corners[i, colour].tolist()
                images[i, 0, 0 if colour == 0 else 2, r : r + 4, c : c + 4] = 1.0
        named = torch.randint(0, 2, (n,), generator=generator)
        target = (corners[torch.arange(n), named].float() + 1.5) / 31 * 2 - 1  # (n, 2) row, col in [-1, 1]
        return images, words[named], target

    def error(images, condition, target):
        tokens, _ = encoder(images, condition=condition)
        return (readout(tokens[:, -1]) - target).abs().mean()  # the instructed token is the last

    train = torch.Generator().manual_seed(1)
    for _ in range(200):
        loss = error(*scene(32, train))
        optim.zero_grad()
        loss.backward()
        optim.step()
    with torch.no_grad():
        held_out = error(*scene(64, torch.Generator().manual_seed(2)))
    assert held_out < 0.05  # guessing between the two squares (or their middle) errs ~0.3


def test_target_token_gives_the_policy_the_target_heads_estimate_without_training_the_head():
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="aux.target_position"):
        VLAModel(tiny_model_config(target_token=True), PROPRIO_DIM)
    config = tiny_model_config(vision={"instructed_keypoints": 2}, aux={"target_position": 1.0}, target_token=True)
    model = VLAModel(config, PROPRIO_DIM)
    batch = random_batch(config)
    assert model.encode(batch).proprio.shape == (3, 2, config.d_model)  # proprio, then the estimate
    model.compute_loss(
        batch
        | {
            "target_text_ids": batch["text_ids"],
            "target_text_mask": batch["text_mask"],
            "target_position": torch.zeros(3, 3),
        }
    )["action"].backward()
    assert all(p.grad is None for p in model.target_decoder.parameters())  # the action loss does not move the head
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.target_embed.parameters())
    assert torch.isfinite(model.sample_actions(batch)).all()


def test_grounding_reads_the_stem_features_of_the_policy_pass_and_reruns_the_stem_only_under_film():
    torch.manual_seed(0)
    for film in (False, True):
        config = tiny_model_config(vision={"instructed_keypoints": 2, "film": film}, aux={"target_position": 1.0})
        model = VLAModel(config, PROPRIO_DIM)
        batch = random_batch(config)
        m = model.encode(batch)
        reworded = torch.roll(batch["text_ids"], 1, dims=0), torch.roll(batch["text_mask"], 1, dims=0)
        fresh = model._instructed(batch["images"], *reworded)  # runs the stem itself
        stem_runs = []
        hook = model.vision.stem.register_forward_hook(lambda *_: stem_runs.append(1))
        reused = model._instructed(batch["images"], *reworded, m.stem_features)
        hook.remove()
        assert torch.allclose(reused, fresh, atol=1e-6)
        assert len(stem_runs) == (1 if film else 0)  # FiLM'd features depend on the words: run again


def test_place_head_adds_its_estimate_to_the_target_token_starting_from_nothing():
    torch.manual_seed(0)
    base = dict(vision={"instructed_keypoints": 2}, target_token=True)
    config = tiny_model_config(aux={"target_position": 1.0, "place_position": 1.0}, **base)
    model = VLAModel(config, PROPRIO_DIM)
    without = VLAModel(tiny_model_config(aux={"target_position": 1.0}, **base), PROPRIO_DIM)
    without.load_state_dict(model.state_dict(), strict=False)  # all but the place head and its embedding
    batch = random_batch(config)
    # zero-initialised, so a checkpoint fine-tuned with a place head starts where it was
    assert torch.allclose(model.encode(batch).proprio, without.encode(batch).proprio)
    grounding = {
        "target_text_ids": batch["text_ids"],
        "target_text_mask": batch["text_mask"],
        "target_position": torch.zeros(3, 3),
        "place_position": torch.ones(3, 3),
        "place_valid": torch.tensor([True, False, True]),
    }
    losses = model.compute_loss(batch | grounding)
    losses["action"].backward(retain_graph=True)
    assert all(p.grad is None for p in model.place_decoder.parameters())  # the action loss does not move the head
    assert model.place_embed[-1].weight.grad.abs().sum() > 0
    model.zero_grad()
    losses["place_position"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.place_decoder.parameters())
    alone = model.compute_loss(batch | grounding | {"place_valid": torch.tensor([False, False, True])})
    predicted = model.predict_place_position(
        batch["images"], batch["text_ids"], batch["text_mask"], model.encode(batch).proprio
    )
    expected = torch.nn.functional.smooth_l1_loss(predicted[2], torch.ones(3))  # only the valid sample counts
    assert torch.allclose(alone["place_position"], expected, atol=1e-5)


def test_film_model_trains_its_film_layers_and_samples():
    torch.manual_seed(0)
    config = tiny_model_config(vision={"film": True})
    model = VLAModel(config, PROPRIO_DIM)
    batch = random_batch(config)
    model.compute_loss(batch)["total"].backward()
    film_grads = [p.grad for p in model.vision.stem.films.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in film_grads)  # the instruction reaches the stem
    assert torch.isfinite(model.sample_actions(batch)).all()


# Which inputs each fusion lets reach which outputs, at initialisation: (the text changes the vision
# tokens, the vision changes the text tokens, anything changes the proprio token).
FUSION_FLOW = {
    "early": (True, True, True),  # one joint self-attention over every token
    "late": (False, False, False),  # separate streams; only summaries are combined, after the fusion
    "cross": (True, False, False),  # vision queries the text; the text passes through
    "gated": (False, False, False),  # Flamingo's tanh gates start closed: no text until trained open
    "bidir": (True, True, False),
    "co": (True, True, False),
    "hybrid": (True, True, True),  # cross-attention, then joint self-attention over every token
    "cross_channel": (True, True, False),
}


@pytest.mark.parametrize("fusion", sorted(FUSIONS))
def test_each_fusion_lets_exactly_its_own_modalities_meet(fusion):
    """Perturb the text, then the vision, and see which output tokens move: the fusions differ in
    who attends to whom, and each must keep to its own wiring."""
    from vla_policy.models.fusion import Modalities, build_fusion

    assert set(FUSION_FLOW) == set(FUSIONS)  # a new fusion states its wiring here
    torch.manual_seed(0)
    b, nt, nv, d = 2, 5, 8, 32  # two cameras of 4 tokens
    module = build_fusion(fusion, d, 4, 2).eval()
    text, vision, proprio = torch.randn(b, nt, d), torch.randn(b, nv, d), torch.randn(b, 1, d)
    masks = dict(vision_mask=torch.ones(b, nv, dtype=torch.bool), text_mask=torch.ones(b, nt, dtype=torch.bool))

    def parts(text, vision):
        tokens, _ = module(Modalities(vision=vision, text=text, proprio=proprio, cameras=2, **masks))
        k = 2 if fusion == "late" else nt  # late fusion's text summary is 2 tokens
        return tokens[:, :k], tokens[:, k : k + 1], tokens[:, k + 1 :]  # text, proprio, vision

    with torch.no_grad():
        base = parts(text, vision)
        new_text = parts(text + torch.randn_like(text), vision)
        new_vision = parts(text, vision + torch.randn_like(vision))

    def moved(a, b):
        return not torch.allclose(a, b, atol=1e-6)

    text_to_vision, vision_to_text, to_proprio = FUSION_FLOW[fusion]
    assert moved(base[2], new_text[2]) == text_to_vision
    assert moved(base[0], new_vision[0]) == vision_to_text
    assert (moved(base[1], new_text[1]) or moved(base[1], new_vision[1])) == to_proprio
    assert moved(base[2], new_vision[2]) and moved(base[0], new_text[0])  # each stream carries its own input
    if fusion == "gated":  # opened, the gates let the text in
        with torch.no_grad():
            for layer in module.cross:
                layer.attn_gate.fill_(1.0)
            assert moved(parts(text, vision)[2], parts(text + torch.randn_like(text), vision)[2])


ALIGNMENT_OBJECTIVES = {  # aux loss -> the parameters that only it trains
    "infonce": ("log_temperature", "image_proj.weight", "text_proj.weight"),
    "triplet": ("image_proj.weight", "text_proj.weight"),
    "align_uniform": ("image_proj.weight", "text_proj.weight"),
    "masked": ("mask_token", "mask_decoder.weight"),
    "sinkhorn": (),
}


@pytest.mark.parametrize("name", ALIGNMENT_OBJECTIVES)
def test_each_alignment_objective_joins_the_total_with_its_weight_and_trains(name):
    """Through compute_loss, as training runs it: the objective is reported, weighted into the
    total, reaches its own parameters and the vision encoder, and optimising it lowers it."""
    config = tiny_model_config(head="discrete", aux={name: 0.5})
    torch.manual_seed(0)
    model = VLAModel(config, PROPRIO_DIM)
    batch = random_batch(config, batch=6)
    losses = model.compute_loss(batch)
    assert set(losses) == {"action", "world_model", name, "total"}
    expected = losses["action"] + config.world_model_weight * losses["world_model"] + 0.5 * losses[name]
    assert torch.allclose(losses["total"], expected) and torch.isfinite(losses[name]) and losses[name] > 0
    model.zero_grad()
    losses[name].backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    for own in ALIGNMENT_OBJECTIVES[name]:
        assert grads[own] is not None and grads[own].abs().sum() > 0, own
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if n.startswith("vision.")), name
    values = fit(model, batch, name, torch.optim.Adam(model.parameters(), lr=1e-3), 40)
    assert np.mean(values[-5:]) < 0.9 * values[0], values


def test_the_sentence_token_leads_the_text_tokens_with_minilms_sentence_embedding():
    from vla_policy.models.text import MiniLM, tokenize

    config = tiny_model_config(text={"kind": "minilm", "sentence_token": True})
    model = VLAModel(config, PROPRIO_DIM)
    texts = ["hoist the red brick", "lift the red block", ""]
    ids, mask = tokenize(texts, config.text.max_tokens)
    mask[2] = False  # an empty instruction is masked out (Policy._text)
    tokens, token_mask = model.text.encode(ids, mask)
    assert tokens.shape == (3, ids.shape[1] + 1, config.d_model)
    assert token_mask[:2, 0].all() and not token_mask[2].any() and (token_mask[:, 1:] == mask).all()
    embedding = MiniLM().sentence_embedding(texts[:2], max_tokens=config.text.max_tokens)
    assert torch.allclose(tokens[:2, 0], model.text.sentence_proj(embedding), atol=1e-5)
    assert torch.allclose(tokens[:, 1:], model.text(ids, mask), equal_nan=True)  # the word tokens as without it
    assert torch.isfinite(tokens[2, 0]).all()
    losses = model.compute_loss(random_batch(config))
    losses["total"].backward()
    assert model.text.sentence_proj.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="text.kind=minilm"):
        VLAModel(tiny_model_config(text={"kind": "scratch", "sentence_token": True}), PROPRIO_DIM)


def test_the_text_tokens_are_read_from_the_configured_minilm_layer():
    from vla_policy.models.text import MiniLM, pooled_sentence, tokenize

    texts = ["atop the green brick, rest the red brick", "put the red cube on the green cube"]
    config = tiny_model_config(text={"kind": "minilm", "minilm_layer": 3, "sentence_token": True})
    model = VLAModel(config, PROPRIO_DIM)
    ids, mask = tokenize(texts, config.text.max_tokens)
    states = MiniLM().hidden_states(ids, mask)
    assert len(states) == 7
    tokens, _ = model.text.encode(ids, mask)
    assert torch.allclose(tokens[:, 1:], model.text.proj(states[3]), atol=1e-5)
    assert not torch.allclose(tokens[:, 1:], model.text.proj(states[6]), atol=1e-3)
    assert torch.allclose(tokens[:, 0], model.text.sentence_proj(pooled_sentence(states[6], mask)), atol=1e-5)
    assert torch.allclose(MiniLM()(ids, mask, 3), states[3])
    words_only = VLAModel(tiny_model_config(text={"kind": "minilm", "minilm_layer": 3}), PROPRIO_DIM)
    tokens, _ = words_only.text.encode(ids, mask)
    assert torch.allclose(tokens, words_only.text.proj(states[3]), atol=1e-5)
    with pytest.raises(ValueError, match="minilm_layer"):
        VLAModel(tiny_model_config(text={"kind": "minilm", "minilm_layer": 7}), PROPRIO_DIM)


def test_a_learned_query_reads_the_instruction_that_conditions_the_vision_encoder():
    from vla_policy.losses import masked_mean

    config = tiny_model_config(vision={"instructed_keypoints": 2}, text={"condition": "attention"})
    model = VLAModel(config, PROPRIO_DIM)
    batch = random_batch(config)
    text, mask = model.text.encode(batch["text_ids"], batch["text_mask"])
    condition = model.instruction_condition(batch["text_ids"], batch["text_mask"])  # (B, D)
    assert torch.allclose(condition, model.condition_pool(text, mask)[:, 0])
    assert not torch.allclose(condition, masked_mean(text, mask), atol=1e-3)
    model.compute_loss(batch)["total"].backward()  # the policy's loss reaches the query (the keypoints)
    assert model.condition_pool.queries.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="text.condition"):
        VLAModel(tiny_model_config(vision={"film": True}, text={"condition": "max"}), PROPRIO_DIM)
    with pytest.raises(ValueError, match="has none"):
        VLAModel(tiny_model_config(text={"condition": "attention"}), PROPRIO_DIM)


def test_the_goal_reader_reads_each_token_in_place_and_never_the_padding():
    """Tags max-pooled over the tokens: padding, whatever its features, never changes the goal
    read, and the read depends on which tokens are there, not on where they stand."""
    from vla_policy.models.goal_reader import GoalReader

    torch.manual_seed(0)
    reader = GoalReader(16, goals=5)
    text = torch.randn(2, 6, 16)  # (B, L, D)
    mask = torch.tensor([[True] * 4 + [False] * 2, [True] * 6])
    logits, goal = reader(text, mask)
    noisy = text.clone()
    noisy[0, 4:] = 100.0  # padding that would win any max if it were read
    assert torch.allclose(reader(noisy, mask)[0], logits)
    assert goal.shape == (2, 16)
    shuffled = text[:, [3, 1, 0, 2, 4, 5]]  # the first row's words in another order
    assert torch.allclose(reader(shuffled, mask)[0][0], logits[0], atol=1e-6)
    moved = text[:, [0, 1, 2, 4, 3, 5]]  # a padded token moved among the first row's words is read
    assert not torch.allclose(reader(moved, mask)[0][0], logits[0])


@pytest.mark.parametrize("name", ["lift", "tabletop", "mt10", "mt50"])
def test_every_shipped_training_config_loads_and_builds_its_model(root, name):
    """A bad key or value in configs/*.yaml fails here, not hours into `vla train`."""
    from vla_policy.config import load_config

    config = load_config(str(root / "configs" / f"{name}.yaml"))
    model = VLAModel(config.model, PROPRIO_DIM)
    if name == "tabletop":
        assert model.text.minilm_layer == 5 and model.goal_reader.embed.shape[0] == 24  # the grammar's goals


def test_the_policy_benchmark_times_a_recipe_with_privileged_objectives(root):
    """`vla bench policy --config configs/tabletop.yaml` trains with the position objectives on."""
    from vla_policy.bench.policy_bench import bench_policy

    result = bench_policy(str(root / "configs" / "tabletop.yaml"), repeats=1, train_steps=1)
    assert result["train_samples_per_s"] > 0 and all(h["p50_ms"] > 0 for h in result["heads"])
