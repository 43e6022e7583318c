"""Fit a goal-reading policy's reader on text alone (`train.reader`).

With `text.condition: goal` nothing passes from the instruction to the policy but the goal it is
read as: the expected goal embedding under the reader's logits (models/goal_reader.py). The
reader (the projection of MiniLM's token features, the tags and the classifier) can therefore be
fitted anew after the policy is trained, on the wordings alone, without changing what the policy
does for any goal: the goal embeddings stay as the policy learned them.

Why refit rather than keep the reader trained beside the policy: which of MiniLM's layers reads
words never trained on best is a property of the text alone, measured in minutes by `vla
text-probe`. On the held-out words, a text-alone reader of layer 3 names 99.9% of goals (3 fits;
9 of 3,840 stacks read with the roles swapped), one of layer 5 98.5% (94); the shipped policy's
reader, trained with it on layer 5, named 97.2% (155), and refitted on layer 3 99.7% (21)
(docs/RESULTS.md).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from vla_policy.config import Config
from vla_policy.data.rewording import WordingPool

DEFAULT_STEPS = 1500  # `vla reader` on a checkpoint trained without train.reader
READER_PREFIXES = ("text.proj.", "goal_reader.")  # what a fit changes (the goal embeddings excepted)


def reading_layer(config: Config, layer: int) -> Config:
    """`config` with its model's text read from MiniLM's layer `layer`: what a fit leaves."""
    text = dataclasses.replace(config.model.text, minilm_layer=layer)
    return dataclasses.replace(config, model=dataclasses.replace(config.model, text=text))


def _reset(module: nn.Module) -> None:
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.LayerNorm)):
            layer.reset_parameters()


def fit_reader(
    model: nn.Module,
    wordings: WordingPool,
    minilm_layer: int,
    steps: int,
    seed: int,
    batch_size: int = 128,
    lr: float = 1e-3,
) -> dict:
    """Re-initialise and fit `model`'s goal reader on `wordings` (every goal in each of its
    templates; the labels are the goals' rows) from MiniLM's layer `minilm_layer`, the goal
    embeddings frozen; `model` is changed in place. -> the fit's last loss and how many of the
    wordings it names the goal of."""
    reader, text = model.goal_reader, model.text
    if reader is None or text.kind != "minilm":
        raise ValueError("fitting a reader on text alone needs text.condition=goal over MiniLM features")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small fit: on one thread it gives the same bits on every CPU
    try:
        return _fit(model, wordings, minilm_layer, steps, seed, batch_size, lr)
    finally:
        torch.set_num_threads(threads)


def _fit(model, wordings, minilm_layer, steps, seed, batch_size, lr) -> dict:
    reader, text = model.goal_reader, model.text
    ids, mask = wordings.ids.flatten(0, 1), wordings.mask.flatten(0, 1)  # (N, L) N = G x templates
    labels = torch.arange(len(wordings.goals)).repeat_interleave(wordings.ids.shape[1])  # (N,)
    device = next(model.parameters()).device
    text.read_layer(minilm_layer)
    with torch.no_grad():
        features = torch.cat(
            [
                text.backbone(ids[i : i + 512].to(device), mask[i : i + 512].to(device), minilm_layer)
                for i in range(0, len(ids), 512)
            ]
        )  # (N, L, 384) frozen
    mask, labels = mask.to(device), labels.to(device)

    fitted = [text.proj, reader.tag, reader.classify]
    with torch.random.fork_rng(devices=[]):  # the caller's random stream goes on as before
        torch.manual_seed(seed)
        for module in fitted:
            _reset(module)
    params = [p for module in fitted for p in module.parameters()]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.train()
    for _ in range(steps):
        batch = torch.randint(len(labels), (batch_size,), generator=generator).to(device)
        logits, _ = reader(text.proj(features[batch]), mask[batch])  # (B, G)
        loss = nn.functional.cross_entropy(logits, labels[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.train(was_training)
    with torch.no_grad():
        read = torch.cat(
            [
                reader(text.proj(features[i : i + 512]), mask[i : i + 512])[0].argmax(-1)
                for i in range(0, len(labels), 512)
            ]
        )
    return {
        "minilm_layer": minilm_layer,
        "steps": steps,
        "loss": round(float(loss.detach()), 5),
        "wordings_read": f"{int((read == labels).sum())}/{len(labels)}",
    }


def fit_checkpoint_reader(
    checkpoint: str | Path, out: str | Path | None = None, steps: int | None = None, minilm_layer: int | None = None
) -> dict:
    """`vla reader`: fit a goal-reading checkpoint's reader on its training wordings alone (its
    task's grammar, `train.reword_templates` templates per skill drawn with its `train.seed`, as
    training drew them), in place or into a copy at `out`. What `train.reader` does after a
    run's last step, for a checkpoint that was trained without it. -> the fit's report."""
    import json
    import shutil

    from safetensors.torch import load_file, save_file

    from vla_policy.config import to_dict
    from vla_policy.train.checkpoint import complete_checkpoint, load_checkpoint, trainable_state

    source = complete_checkpoint(checkpoint)
    model, config, _, meta = load_checkpoint(source)
    t = config.train
    if not t.reword_templates:
        raise ValueError(f"{source} was trained without train.reword_templates: no training wordings to fit on")
    settings = dataclasses.replace(
        t.reader,
        steps=steps if steps is not None else t.reader.steps or DEFAULT_STEPS,
        minilm_layer=minilm_layer if minilm_layer is not None else t.reader.minilm_layer,
    )
    if settings.steps < 1:
        raise ValueError(f"steps must be >= 1, got {settings.steps}")
    wordings = WordingPool(
        meta["env_args"]["env_kwargs"]["task"], t.reword_templates, config.model.text.max_tokens, t.seed
    )
    report = fit_reader(model, wordings, settings.minilm_layer, settings.steps, t.seed)

    target = Path(out) if out else source
    if out:
        shutil.copytree(source, target, dirs_exist_ok=False)
    weights = trainable_state(model)
    save_file(weights, str(target / "model.safetensors"))
    train_state = target / "train_state.safetensors"
    if train_state.exists():  # a run's checkpoint: its raw model takes the same reader
        raw = load_file(str(train_state))
        raw.update({f"model.{k}": v for k, v in weights.items() if k.startswith(READER_PREFIXES)})
        save_file(raw, str(train_state))
    config = dataclasses.replace(
        reading_layer(config, settings.minilm_layer), train=dataclasses.replace(t, reader=settings)
    )
    (target / "config.json").write_text(json.dumps(to_dict(config), indent=2))
    (target / "meta.json").write_text(json.dumps(meta | {"reader_fit": report}, indent=2))
    return {"checkpoint": str(target), "reader_fit": report}
