"""Which text representation carries a goal to words never trained on? An offline probe that takes
minutes: a small reader is trained to name the goal (skill and objects, one of the grammar's goals)
from frozen MiniLM features of the training wordings a policy sees (`train.reword_templates`
templates per skill), and is then asked on wordings it never saw: fresh training-split templates,
and the held-out split, whose verbs, nouns, relations, directions, fillers and frames occur in no
training wording. The readers are the policy's text pathways in miniature:

- `tokens`: MiniLM's token features of one layer (`model.text.minilm_layer`), projected and
  attention-pooled by a learned query (the policy reads its text tokens by attention); a layer
  set such as (3, 5) gives each token its features of those layers side by side (3+5);
- `tokens-max`: the same token features, projected and read by the policy's own goal reader
  (`text.condition: goal`): each tagged by a small MLP, the tags max-pooled over the tokens;
- `tokens-per-layer`: each layer of a set read on its own, by a projection and a query of its
  own, the pooled vectors joined (a policy reading two layers as two token sets);
- `sentence`: MiniLM's pooled sentence embedding through an MLP;
- `tokens+sentence`: the sentence embedding as one more token before the word tokens
  (`model.text.sentence_token`);
- `tokens-tuned`: the `tokens` reader of layer k over MiniLM's layers k-1 and k fine-tuned with
  it (from layer k-2's features; the encoder no longer frozen at its top);
- `tokens-mean`: the same token features, mean-pooled: what the instruction condition of the
  vision encoder (its FiLM and instructed keypoints) is made of;
- `sentence-knn`: no training, the goal of the nearest training wording in sentence space (what
  the instruction gate looks up).

A representation whose reader names the goal of held-out wordings is one the policy can learn to
follow in those words; one that only names the goal of its training templates is not."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import Tensor, nn

from vla_policy.eval.metrics import wilson_interval
from vla_policy.losses import masked_mean
from vla_policy.models.goal_reader import GoalReader

READERS = (
    "tokens",
    "tokens-max",
    "tokens-per-layer",
    "tokens-tuned",
    "tokens-mean",
    "sentence",
    "tokens+sentence",
    "sentence-knn",
)
DEFAULT_READERS = tuple(r for r in READERS if r != "tokens-tuned")  # it fine-tunes MiniLM: asked for by name


class Reader(nn.Module):
    """(B, L, 384 k) token features (k layers side by side), (B, L) mask, (B, 384) sentence
    embedding -> (B, G) goal logits."""

    def __init__(
        self, kind: str, goals: int, dim: int = 128, heads: int = 4, token_dim: int = 384, tuned: nn.Module = None
    ):
        super().__init__()
        self.kind = kind
        self.tuned = tuned  # tokens-tuned: MiniLM layers run (and trained) before the reading
        self.token_proj = nn.Linear(token_dim, dim)
        self.sentence_proj = nn.Linear(384, dim)
        self.query = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.attend = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.out = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, goals))
        if kind == "tokens-max":
            self.goal_reader = GoalReader(dim, goals)  # the policy's own (text.condition: goal)
        if kind == "tokens-per-layer":
            k = token_dim // 384
            self.layer_proj = nn.ModuleList(nn.Linear(384, dim) for _ in range(k))
            self.layer_query = nn.Parameter(torch.randn(k, 1, 1, dim) * 0.02)
            self.layer_attend = nn.ModuleList(nn.MultiheadAttention(dim, heads, batch_first=True) for _ in range(k))
            self.merge = nn.Linear(k * dim, dim)

    def forward(self, tokens: Tensor, mask: Tensor, sentence: Tensor) -> Tensor:
        if self.kind == "sentence":
            return self.out(self.sentence_proj(sentence))
        if self.kind == "tokens-per-layer":
            pooled = []
            for i, (proj, attend) in enumerate(zip(self.layer_proj, self.layer_attend)):
                keys = proj(tokens[..., 384 * i : 384 * (i + 1)])  # (B, L, D): layer i's tokens
                query = self.layer_query[i].expand(len(keys), -1, -1)  # (B, 1, D)
                pooled.append(attend(query, keys, keys, key_padding_mask=~mask)[0][:, 0])
            return self.out(self.merge(torch.cat(pooled, -1)))  # (B, k D) -> (B, G)
        if self.tuned is not None:
            for layer in self.tuned:
                tokens = layer(tokens, src_key_padding_mask=~mask)  # (B, L, 384)
        keys = self.token_proj(tokens)  # (B, L, D)
        if self.kind == "tokens-max":
            return self.goal_reader(keys, mask)[0]  # (B, G)
        if self.kind == "tokens-mean":
            return self.out(masked_mean(keys, mask))
        if self.kind == "tokens+sentence":
            keys = torch.cat([self.sentence_proj(sentence)[:, None], keys], 1)  # (B, 1 + L, D)
            mask = torch.cat([mask.any(1, keepdim=True), mask], 1)
        pooled, _ = self.attend(self.query.expand(len(keys), -1, -1), keys, keys, key_padding_mask=~mask)
        return self.out(pooled[:, 0])  # (B, G)


def _features(backbone, texts: list[str], max_tokens: int, layers: tuple[int, ...]) -> tuple[dict, Tensor, Tensor]:
    """-> {layer: (N, L, 384) token features} for the asked layers, (N, L) mask, (N, 384) sentence
    embeddings (pooled from the last layer), in batches; the other layers are not kept."""
    from vla_policy.models.text import pooled_sentence, tokenize

    states, masks, sentences = {layer: [] for layer in layers}, [], []
    for start in range(0, len(texts), 512):
        ids, mask = tokenize(texts[start : start + 512], max_tokens)
        hidden = backbone.hidden_states(ids, mask)
        for layer in layers:
            states[layer].append(hidden[layer])
        masks.append(mask)
        sentences.append(pooled_sentence(hidden[-1], mask))
    return {layer: torch.cat(s) for layer, s in states.items()}, torch.cat(masks), torch.cat(sentences)


def _wordings(grammar, goals, templates: dict[str, list[str]]) -> tuple[list[str], Tensor]:
    """Every template of a goal's skill rendered for that goal -> texts and (N,) goal indices."""
    texts, labels = [], []
    for g, goal in enumerate(goals):
        for template in templates[goal.skill]:
            texts.append(grammar.render(template, goal))
            labels.append(g)
    return texts, torch.tensor(labels)


def _swapped(goals) -> Tensor:
    """(G, G) bool: [a, b] when goal b is stack goal a with its two cubes' roles swapped."""
    return torch.tensor(
        [
            [a.skill == b.skill == "stack" and (a.target, a.place_on) == (b.place_on, b.target) for b in goals]
            for a in goals
        ]
    )


def _rate(correct: Tensor) -> dict:
    hits, total = int(correct.sum()), len(correct)
    low, high = wilson_interval(hits, total)
    return {"hits": hits, "total": total, "rate": round(hits / total, 4), "wilson95": [round(low, 4), round(high, 4)]}


class ProbeWordings:
    """The wordings a probe names the goals of, each set as texts and (N,) goal indices: `train`,
    the pool of `templates` training templates per skill a policy trained with `seed` sees
    (WordingPool); `fresh_train`, `fresh` training-split templates per skill outside the pool;
    `heldout`, every held-out template (or a seeded `heldout_per_skill` of them)."""

    def __init__(self, task: str, templates: int, fresh: int, seed: int = 0, heldout_per_skill: int | None = None):
        from sim.tasks import get_task

        self.grammar = grammar = get_task(task).grammar
        self.goals = goals = grammar.goals()
        rng = np.random.default_rng(seed)  # the pool a policy trained with this seed sees
        pool = {s: [grammar.sample_template(s, "train", rng) for _ in range(templates)] for s in grammar.skills}
        unseen = {s: [] for s in grammar.skills}
        for s in grammar.skills:
            while len(unseen[s]) < fresh:
                t = grammar.sample_template(s, "train", rng)
                if t not in pool[s] and t not in unseen[s]:
                    unseen[s].append(t)
        heldout = {s: list(grammar.templates(s, "heldout")) for s in grammar.skills}
        if heldout_per_skill is not None:
            heldout = {s: [t[i] for i in rng.permutation(len(t))[:heldout_per_skill]] for s, t in heldout.items()}
        self.sets = {
            name: _wordings(grammar, goals, chosen)
            for name, chosen in (("train", pool), ("fresh_train", unseen), ("heldout", heldout))
        }
        self.heldout_orders = [grammar.frame(t) for t in self.sets["heldout"][0]]  # each held-out word order
        self.skills = torch.tensor([grammar.skills.index(g.skill) for g in goals])
        self.swapped = _swapped(goals)

    def report(self, predicted: dict[str, Tensor]) -> dict:
        """{set: (N,) predicted goal indices} -> how often each names the goal, per skill, per
        held-out word order, and how many stack wordings were read with the cubes' roles swapped."""
        out = {}
        for name in ("fresh_train", "heldout"):
            labels = self.sets[name][1]
            correct = predicted[name] == labels
            out[name] = _rate(correct) | {
                "per_skill": {s: _rate(correct[self.skills[labels] == i]) for i, s in enumerate(self.grammar.skills)},
                "skill_right": _rate(self.skills[predicted[name]] == self.skills[labels]),
                # stack wordings read as the other cube on this one: the roles, not the words, missed
                "stack_roles_swapped": int(self.swapped[labels, predicted[name]].sum()),
            }
        correct = predicted["heldout"] == self.sets["heldout"][1]
        out["heldout"]["per_frame"] = {
            order: _rate(correct[torch.tensor([o == order for o in self.heldout_orders])])
            for order in sorted(set(self.heldout_orders))
        }
        return out


def text_probe(
    task: str = "tabletop",
    templates: int = 256,
    fresh: int = 64,
    steps: int = 1500,
    seeds: int = 3,
    max_tokens: int = 24,
    readers: tuple[str, ...] = DEFAULT_READERS,
    layers: tuple[int | tuple[int, ...], ...] = (6, 3),
    heldout_per_skill: int | None = None,
) -> dict:
    """Train each reader `seeds` times on the pool of `templates` training templates per skill,
    reading the token features of each of MiniLM's `layers` (`model.text.minilm_layer`; a tuple
    of layers is read side by side); -> how often each names the goal of (a) `fresh`
    training-split templates per skill outside the pool and (b) every held-out template (or a
    seeded `heldout_per_skill` of them), per skill and overall, per seed and averaged; held-out
    ones also per word order (grammar frame), and how many stack wordings were read with the two
    cubes' roles swapped."""
    from vla_policy.models.text import MINILM_LAYERS, MiniLM

    unknown = set(readers) - set(READERS)
    if unknown:
        raise ValueError(f"unknown readers {sorted(unknown)}; choose from {READERS}")
    layer_sets = [(spec,) if isinstance(spec, int) else tuple(spec) for spec in layers]
    if not all(layer_set and all(1 <= layer <= MINILM_LAYERS for layer in layer_set) for layer_set in layer_sets):
        raise ValueError(f"layers must be 1..{MINILM_LAYERS}, got {layers}")
    if "tokens-tuned" in readers and any(len(layer_set) != 1 or layer_set[0] < 3 for layer_set in layer_sets):
        raise ValueError(f"tokens-tuned reads one layer k >= 3 (from layer k-2's features); got layers {layers}")
    wordings = ProbeWordings(task, templates, fresh, 0, heldout_per_skill)
    grammar, goals = wordings.grammar, wordings.goals

    started = time.time()
    backbone = MiniLM()
    features = {}
    wanted = {layer for layer_set in layer_sets for layer in layer_set} | {MINILM_LAYERS}
    if "tokens-tuned" in readers:
        wanted |= {layer_set[0] - 2 for layer_set in layer_sets}
    wanted = tuple(wanted)
    for name, (texts, labels) in wordings.sets.items():
        features[name] = (*_features(backbone, texts, max_tokens, wanted), labels)

    results = {}
    for kind in readers:
        for layer_set in layer_sets if "tokens" in kind else [(MINILM_LAYERS,)]:
            read = (layer_set[0] - 2,) if kind == "tokens-tuned" else layer_set  # the features read in
            sets = {
                n: (torch.cat([states[layer] for layer in read], -1), mask, sentence, labels)
                for n, (states, mask, sentence, labels) in features.items()
            }  # tokens (N, L, 384 k)
            tuned = backbone.layers[layer_set[0] - 2 : layer_set[0]] if kind == "tokens-tuned" else None
            runs = []
            for seed in range(1 if kind == "sentence-knn" else seeds):
                if kind == "sentence-knn":
                    bank, bank_labels = sets["train"][2], sets["train"][3]
                    predicted = {n: bank_labels[(sets[n][2] @ bank.T).argmax(1)] for n in ("fresh_train", "heldout")}
                else:
                    predicted = _train_reader(kind, sets, len(goals), steps, seed, tuned)
                runs.append(wordings.report(predicted))
            named = f"layer {layer_set[0]}" if len(layer_set) == 1 else "layers " + "+".join(map(str, layer_set))
            results[f"{kind} (tokens of {named})" if "tokens" in kind else kind] = {
                "runs": runs,
                "fresh_train": round(float(np.mean([r["fresh_train"]["rate"] for r in runs])), 4),
                "heldout": round(float(np.mean([r["heldout"]["rate"] for r in runs])), 4),
                "heldout_per_skill": {
                    s: round(float(np.mean([r["heldout"]["per_skill"][s]["rate"] for r in runs])), 4)
                    for s in grammar.skills
                },
                "heldout_per_frame": {
                    order: round(float(np.mean([r["heldout"]["per_frame"][order]["rate"] for r in runs])), 4)
                    for order in runs[0]["heldout"]["per_frame"]
                },
                "heldout_stack_roles_swapped": float(np.mean([r["heldout"]["stack_roles_swapped"] for r in runs])),
            }
    return {
        "task": task,
        "goals": len(goals),
        "pool_templates_per_skill": templates,
        "wordings": {name: len(labels) for name, (_, labels) in wordings.sets.items()},
        "steps": steps,
        "seeds": seeds,
        "seconds": round(time.time() - started, 1),
        "readers": results,
    }


def checkpoint_reading(checkpoint: str, fresh: int = 64, heldout_per_skill: int | None = None) -> dict:
    """A goal-reading policy's own reader (text.condition=goal) on the probe's wordings: how often
    it names the goal of training templates outside its pool and of held-out ones, as a probe's
    reader is scored. Its pool (the wordings it was trained on) is its train.seed's."""
    from vla_policy.models.text import tokenize
    from vla_policy.train.checkpoint import load_checkpoint

    started = time.time()
    model, config, _, meta = load_checkpoint(checkpoint)
    if getattr(model, "goal_reader", None) is None:
        raise ValueError(f"{checkpoint} reads no goal (its model.text.condition is {config.model.text.condition!r})")
    task = meta["env_args"]["env_kwargs"]["task"]
    wordings = ProbeWordings(task, config.train.reword_templates, fresh, config.train.seed, heldout_per_skill)
    model.eval()
    predicted = {}
    for name in ("fresh_train", "heldout"):
        texts = wordings.sets[name][0]
        predicted[name] = torch.cat(
            [
                model.read_goal(*tokenize(texts[i : i + 512], config.model.text.max_tokens)).argmax(-1)
                for i in range(0, len(texts), 512)
            ]
        )
    return {
        "checkpoint": str(checkpoint),
        "task": task,
        "goals": len(wordings.goals),
        "pool_templates_per_skill": config.train.reword_templates,
        "wordings": {name: len(labels) for name, (_, labels) in wordings.sets.items()},
        "seconds": round(time.time() - started, 1),
        "reader": wordings.report(predicted),
    }


def _train_reader(
    kind: str, sets: dict, goals: int, steps: int, seed: int, tuned: nn.Module | None = None
) -> dict[str, Tensor]:
    """Fit a Reader on sets["train"]; -> its predicted goal for each other set. `tuned`: MiniLM
    layers fine-tuned with it (a copy; lr 3e-5, BERT's fine-tuning range)."""
    import copy

    torch.manual_seed(seed)
    if tuned is not None:
        tuned = copy.deepcopy(tuned).requires_grad_(True)
    reader = Reader(kind, goals, token_dim=sets["train"][0].shape[-1], tuned=tuned)
    own = [p for name, p in reader.named_parameters() if not name.startswith("tuned.")]
    groups = [{"params": own, "lr": 1e-3}] + ([{"params": tuned.parameters(), "lr": 3e-5}] if tuned else [])
    optimizer = torch.optim.AdamW(groups, weight_decay=1e-4)
    tokens, mask, sentence, labels = sets["train"]
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        batch = torch.randint(len(labels), (128,), generator=generator)
        loss = nn.functional.cross_entropy(reader(tokens[batch], mask[batch], sentence[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    reader.eval()
    with torch.no_grad():
        return {n: reader(*sets[n][:3]).argmax(1) for n in ("fresh_train", "heldout")}
