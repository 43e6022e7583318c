"""VLAModel: encoders -> fusion -> backbone (prefix-LM with a KV cache) -> action head + world model.

`compute_loss(batch) -> dict` and `sample_actions(batch) -> (B, H, A)`, openpi style. Batch keys
(all tensors, normalised by the Policy / dataset, never here):

    images        (B, C, 3, S, S) float in [0, 1]
    camera_mask   (B, C) bool            False = camera absent
    text_ids      (B, L) long, text_mask (B, L) bool
    proprio       (B, P) float
    actions       (B, H, A) float in [-1, 1], action_mask (B, H) bool     (training)
    future_images (B, C, 3, S, S)                                         (world model training)
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vla_policy.config import ModelConfig
from vla_policy.losses import masked_mean
from vla_policy.models.encoders import ProprioEncoder, VisionEncoder
from vla_policy.models.fusion import AttentionPool, Modalities, build_fusion
from vla_policy.models.goal_reader import GoalReader
from vla_policy.models.heads import build_head
from vla_policy.models.layers import Transformer, make_attn_mask
from vla_policy.models.text import TextEncoder
from vla_policy.models.world_model import WorldModelHead, surprise


class VLAModel(nn.Module):
    def __init__(self, config: ModelConfig, proprio_dim: int):
        super().__init__()
        if config.target_token and not config.aux.target_position:
            raise ValueError("target_token feeds the target head's estimate to the policy; set aux.target_position > 0")
        if config.aux.place_position and not config.aux.target_position:
            raise ValueError("aux.place_position is asked beside the target; set aux.target_position > 0")
        if config.aux.target_position and not config.vision.instructed_keypoints:
            raise ValueError("aux.target_position reads the instructed keypoints; set vision.instructed_keypoints > 0")
        if config.aux.masked and config.fusion == "late":
            raise ValueError("aux.masked needs a fusion that keeps per-patch vision tokens; 'late' pools them away")
        self.config = config
        d, cams = config.d_model, len(config.vision.cameras)
        v = config.vision
        self.vision = VisionEncoder(
            d, config.heads, v.layers, v.image_size, v.patch_size, cams, v.keypoints, v.film, v.instructed_keypoints
        )
        t = config.text
        self.text = TextEncoder(t.kind, d, config.heads, t.layers, t.max_tokens, t.sentence_token, t.minilm_layer)
        if t.condition not in ("mean", "attention", "goal"):
            raise ValueError(f"unknown text.condition {t.condition!r}; choose 'mean', 'attention' or 'goal'")
        if t.condition == "attention" and not self.vision.conditioned:
            raise ValueError("text.condition=attention reads the condition of the vision encoder; it has none")
        if config.aux.goal and t.condition != "goal":
            raise ValueError("aux.goal trains the goal reader; set text.condition=goal")
        self.condition_pool = AttentionPool(d, config.heads, 1) if t.condition == "attention" else None
        self.goal_reader = GoalReader(d, t.goals) if t.condition == "goal" else None
        self.proprio = ProprioEncoder(proprio_dim, d)
        self.fusion = build_fusion(config.fusion, d, config.heads, config.fusion_layers)
        self.backbone = Transformer(d, config.heads, config.backbone_layers, config.ff_mult, config.dropout)
        self.head = build_head(config)
        self.world_model = (
            WorldModelHead(d, config.action_dim, config.chunk, cams) if config.world_model_weight > 0 else None
        )
        # Auxiliary heads exist only when their loss is on: no dead weights (DDP requires every
        # parameter to receive a gradient, and checkpoints stay small).
        aux = config.aux
        if aux.infonce or aux.triplet or aux.align_uniform:
            self.image_proj, self.text_proj = nn.Linear(d, d), nn.Linear(d, d)
        if aux.infonce:
            self.log_temperature = nn.Parameter(torch.tensor(2.659))  # log(1/0.07), CLIP's init
        if aux.masked:
            self.mask_token = nn.Parameter(torch.zeros(d))
            self.mask_decoder = nn.Linear(d, d)
        if aux.object_position:
            self.object_queries = nn.Parameter(torch.randn(aux.objects, d) * 0.02)
            self.object_attention = nn.MultiheadAttention(d, config.heads, batch_first=True)
            self.object_decoder = nn.Linear(d, 3)
        if aux.target_position:
            self.target_decoder = nn.Sequential(nn.Linear((cams + 1) * d, d), nn.GELU(), nn.Linear(d, 3))
        if aux.place_position:
            self.place_decoder = nn.Sequential(nn.Linear((cams + 1) * d, d), nn.GELU(), nn.Linear(d, 3))
        if config.target_token:
            self.target_embed = nn.Sequential(nn.Linear(3, d), nn.GELU(), nn.Linear(d, d))
        if config.target_token and aux.place_position:
            self.place_embed = nn.Sequential(nn.Linear(3, d), nn.GELU(), nn.Linear(d, d))
            nn.init.zeros_(self.place_embed[-1].weight)  # added to the target token: a fine-tuned
            nn.init.zeros_(self.place_embed[-1].bias)  # policy starts as it was

    # ------------------------------------------------------------------ encoding
    def encode(self, batch: dict, vision_override: Tensor | None = None) -> Modalities:
        text, text_mask, goal_logits = self._read_text(batch["text_ids"], batch["text_mask"])
        condition = self._condition(text, text_mask) if self.vision.conditioned else None  # (B, D)
        vision, vision_mask, features = self.vision(
            batch["images"], batch["camera_mask"], condition, with_features=True
        )
        proprio = self.proprio(batch["proprio"])  # (B, 1, D)
        if self.config.target_token:  # (B, 2, D): proprio, then where the named objects are thought to be
            instructed = vision.view(vision.shape[0], batch["images"].shape[1], -1, vision.shape[-1])[:, :, -1]
            estimate = self._decode(self.target_decoder, instructed, proprio).detach()  # (B, 3) dm from the gripper
            token = self.target_embed(estimate)  # (B, D)
            if self.config.aux.place_position:
                token = token + self.place_embed(self._decode(self.place_decoder, instructed, proprio).detach())
            proprio = torch.cat([proprio, token[:, None]], dim=1)
        if vision_override is not None:
            vision = vision_override
        return Modalities(
            vision=vision,
            vision_mask=vision_mask,
            text=text,
            text_mask=text_mask,
            proprio=proprio,
            cameras=batch["images"].shape[1],
            stem_features=features,
            goal_logits=goal_logits,
        )

    def prefix(self, m: Modalities, with_output: bool = False):
        """Fuse and run the backbone over the context once; -> per-layer KV cache, (B, Np) mask
        (and the (B, Np, D) context tokens when `with_output`)."""
        tokens, mask = self.fusion(m)
        out, cache = self.backbone.forward_prefix(tokens, make_attn_mask(mask, torch.zeros_like(mask)))
        return (cache, mask, out) if with_output else (cache, mask)

    def suffix_runner(self, cache: list, prefix_mask: Tensor, suffix_ar: Tensor | None = None):
        """A function (B, Ns, D) -> (B, Ns, D): suffix tokens through the backbone against the cache.
        Without `suffix_ar` the suffix attends bidirectionally within itself (pi0's action expert)."""

        def run(suffix: Tensor) -> Tensor:
            b, ns = suffix.shape[:2]
            ar = suffix_ar if suffix_ar is not None else torch.zeros(ns, dtype=torch.long, device=suffix.device)
            own = make_attn_mask(torch.ones(b, ns, dtype=torch.bool, device=suffix.device), ar)
            mask = torch.cat([prefix_mask[:, None, :].expand(b, ns, -1), own], dim=2)  # (B, Ns, Np + Ns)
            return self.backbone.forward_suffix(suffix, cache, mask)

        return run

    def visual_latent(self, images: Tensor, camera_mask: Tensor) -> Tensor:
        """(B, C, 3, S, S) -> (B, C, D) one pooled latent per camera (the world model's target; an
        instruction-conditioned encoder run without its condition, so the target does not depend
        on the instruction)."""
        tokens, _ = self.vision(images, camera_mask)
        return tokens.view(images.shape[0], images.shape[1], -1, tokens.shape[-1]).mean(2)

    # -------------------------------------------------------------------- losses
    def forward(self, batch: dict) -> dict[str, Tensor]:
        """Same as compute_loss (DistributedDataParallel calls forward)."""
        return self.compute_loss(batch)

    def compute_loss(self, batch: dict) -> dict[str, Tensor]:
        """Every enabled loss, plus `total` (the weighted sum that is optimised)."""
        m = self.encode(batch)
        cache, prefix_mask, context = self.prefix(m, with_output=True)
        losses = {
            "action": self.head.loss(self.suffix_runner(cache, prefix_mask), batch["actions"], batch["action_mask"])
        }
        total = losses["action"]
        if self.world_model is not None:
            predicted = self._predict_future(cache, prefix_mask, batch["actions"])
            with torch.no_grad():
                target = self.visual_latent(batch["future_images"], batch["camera_mask"])
            valid = batch["camera_mask"].float()
            err = (1 - (predicted * F.normalize(target, dim=-1)).sum(-1)) * valid
            losses["world_model"] = err.sum() / valid.sum().clamp(min=1)
            total = total + self.config.world_model_weight * losses["world_model"]
        aux = self._aux_losses(batch, m)
        if self.config.aux.object_position:
            aux["object_position"] = self._object_position_loss(context, prefix_mask, batch)
        if self.config.aux.target_position:
            aux.update(self._grounding_losses(batch, m))
        if self.config.aux.goal:
            if "goal" not in batch:
                raise ValueError("aux.goal needs each sample's goal: train with train.reword_templates")
            aux["goal"] = F.cross_entropy(m.goal_logits, batch["goal"])
        for name, value in aux.items():
            losses[name] = value
            total = total + getattr(self.config.aux, name) * value
        losses["total"] = total
        return losses

    def _aux_losses(self, batch: dict, m: Modalities) -> dict[str, Tensor]:
        from vla_policy import losses as L

        w = self.config.aux
        out: dict[str, Tensor] = {}
        if not any((w.infonce, w.triplet, w.align_uniform, w.masked, w.sinkhorn)):
            return out
        if w.infonce or w.triplet or w.align_uniform:
            image = F.normalize(self.image_proj(L.masked_mean(m.vision, m.vision_mask)), dim=-1)  # (B, D)
            text = F.normalize(self.text_proj(L.masked_mean(m.text, m.text_mask)), dim=-1)
            same = L.same_instruction(batch["text_ids"])  # (B, B) pairs that share an instruction
        if w.infonce:
            out["infonce"] = L.info_nce(image, text, self.log_temperature.exp().clamp(max=100), same)
        if w.triplet:
            out["triplet"] = L.triplet_hard(image, text, same)
        if w.align_uniform:
            out["align_uniform"] = L.alignment(image, text) + L.uniformity(image) + L.uniformity(text)
        if w.masked:
            out["masked"] = self._masked_patch_loss(m)
        if w.sinkhorn:
            out["sinkhorn"] = L.sinkhorn_alignment_loss(m.vision, m.vision_mask, m.text, m.text_mask)
        return out

    def _masked_patch_loss(self, m: Modalities, ratio: float = 0.4) -> Tensor:
        """Masked multimodal modelling: hide a random subset of vision tokens (the learned mask
        token in their place), fuse with the full text, and regress the hidden tokens' features."""
        target = m.vision.detach()  # (B, N, D)
        hide = (torch.rand(target.shape[:2], device=target.device) < ratio) & m.vision_mask  # (B, N)
        corrupted = torch.where(hide[..., None], self.mask_token.expand_as(target), m.vision)
        tokens, _ = self.fusion(dataclasses.replace(m, vision=corrupted))
        recon = self.mask_decoder(tokens[:, -target.shape[1] :])  # fusions end with the vision tokens
        err = F.mse_loss(recon, target, reduction="none").mean(-1)  # (B, N)
        return (err * hide).sum() / hide.sum().clamp(min=1)

    def predict_object_positions(self, context: Tensor, prefix_mask: Tensor) -> Tensor:
        """(B, Np, D) context -> (B, K, 3) object positions relative to the gripper (decimetres)."""
        queries = self.object_queries.expand(context.shape[0], -1, -1)
        pooled, _ = self.object_attention(queries, context, context, key_padding_mask=~prefix_mask, need_weights=False)
        return self.object_decoder(pooled)

    def _object_position_loss(self, context: Tensor, prefix_mask: Tensor, batch: dict) -> Tensor:
        if "object_position" not in batch:
            raise ValueError("aux.object_position needs the dataset's object_state (collected by `vla collect`)")
        target = batch["object_position"].view(context.shape[0], -1, 3)  # (B, K, 3)
        return F.smooth_l1_loss(self.predict_object_positions(context, prefix_mask), target)

    def _read_text(self, text_ids: Tensor, text_mask: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """(B, L) ids and mask -> the text tokens the rest of the model sees (B, L', D), their mask
        (B, L') and, with text.condition=goal, the goal logits (B, G); the tokens are then one,
        the goal read (L' = 1)."""
        text, text_mask = self.text.encode(text_ids, text_mask)
        if self.goal_reader is None:
            return text, text_mask, None
        goal_logits, goal = self.goal_reader(text, text_mask)  # (B, G), (B, D)
        return goal[:, None], text_mask.any(1, keepdim=True), goal_logits

    def instruction_condition(self, text_ids: Tensor, text_mask: Tensor) -> Tensor:
        """(B, L) ids and mask -> (B, D) the vector that conditions the vision encoder."""
        return self._condition(*self._read_text(text_ids, text_mask)[:2])

    @torch.no_grad()
    def read_goal(self, text_ids: Tensor, text_mask: Tensor) -> Tensor:
        """(B, L) ids and mask -> (B, G) the probability of each of the task's goals (text.condition=goal)."""
        if self.goal_reader is None:
            raise RuntimeError("this model reads no goal (text.condition is not 'goal')")
        return self._read_text(text_ids, text_mask)[2].softmax(-1)

    def _condition(self, text: Tensor, text_mask: Tensor) -> Tensor:
        """(B, L', D) text tokens, (B, L') mask -> (B, D) (`text.condition`; with `goal` the one
        token is the goal read)."""
        if self.goal_reader is not None:
            return text[:, 0]
        if self.condition_pool is None:
            return masked_mean(text, text_mask)
        return self.condition_pool(text, text_mask)[:, 0]

    def predict_target_position(self, images: Tensor, text_ids: Tensor, text_mask: Tensor, proprio: Tensor) -> Tensor:
        """(B, C, 3, S, S) images, an instruction, (B, >=1, D) proprio tokens -> (B, 3) where the object
        the instruction names is, relative to the gripper (dm), read from each camera's
        instructed-keypoint token. So close to the keypoints, the loss teaches their queries to
        find what the words name."""
        return self._decode(self.target_decoder, self._instructed(images, text_ids, text_mask), proprio)

    def predict_place_position(self, images: Tensor, text_ids: Tensor, text_mask: Tensor, proprio: Tensor) -> Tensor:
        """The same for the object the named one is to be put on (aux.place_position) -> (B, 3) dm."""
        return self._decode(self.place_decoder, self._instructed(images, text_ids, text_mask), proprio)

    def _instructed(
        self, images: Tensor, text_ids: Tensor, text_mask: Tensor, stem_features: Tensor | None = None
    ) -> Tensor:
        """-> (B, C, D) each camera's instructed-keypoint token for this instruction."""
        return self.vision.instructed_tokens(images, self.instruction_condition(text_ids, text_mask), stem_features)

    @staticmethod
    def _decode(decoder: nn.Module, instructed: Tensor, proprio: Tensor) -> Tensor:
        """(B, C, D) instructed-keypoint tokens, (B, >=1, D) proprio tokens -> (B, 3)."""
        return decoder(torch.cat([instructed.flatten(1), proprio[:, 0]], dim=-1))

    def _grounding_losses(self, batch: dict, m: Modalities) -> dict[str, Tensor]:
        """Asked with the instruction reworded to name a random object in one of its roles (the
        dataset draws it), so the answer cannot come from recognising the scene."""
        if "target_position" not in batch:
            raise ValueError(
                "aux.target_position needs the dataset's object_state and goals (collected by `vla collect`)"
            )
        instructed = self._instructed(
            batch["images"], batch["target_text_ids"], batch["target_text_mask"], m.stem_features
        )
        losses = {
            "target_position": F.smooth_l1_loss(
                self._decode(self.target_decoder, instructed, m.proprio), batch["target_position"]
            )
        }
        if self.config.aux.place_position:
            err = F.smooth_l1_loss(
                self._decode(self.place_decoder, instructed, m.proprio), batch["place_position"], reduction="none"
            ).mean(-1)  # (B,)
            valid = batch["place_valid"].float()  # (B,) only goals that name a place count
            losses["place_position"] = (err * valid).sum() / valid.sum().clamp(min=1)
        return losses

    def _predict_future(self, cache: list, prefix_mask: Tensor, actions: Tensor) -> Tensor:
        suffix, ar = self.world_model.suffix(actions)
        return self.world_model.predict(self.suffix_runner(cache, prefix_mask, ar)(suffix))

    # ----------------------------------------------------------------- inference
    def _sample(self, batch: dict, generator: torch.Generator | None, guide=None) -> tuple[Tensor, list, Tensor]:
        """(B, H, A) normalised actions, and the context cache they were sampled from."""
        m = self.encode(batch)
        cache, prefix_mask = self.prefix(m)
        actions = self.head.sample(
            self.suffix_runner(cache, prefix_mask), m.proprio.shape[0], m.proprio.device, generator, guide
        )
        return actions, cache, prefix_mask

    @torch.no_grad()
    def sample_actions(self, batch: dict, generator: torch.Generator | None = None, guide=None) -> Tensor:
        """(B, H, A) normalised action chunk; the context is encoded once for all K flow steps.
        `guide` (heads.flow.Guide): inpaint the chunk to continue committed actions (flow head)."""
        return self._sample(batch, generator, guide)[0]

    @torch.no_grad()
    def sample_actions_and_future(
        self, batch: dict, generator: torch.Generator | None = None, guide=None
    ) -> tuple[Tensor, Tensor]:
        """(B, H, A) normalised action chunk and (B, C, D) the visual latent the world model expects
        after executing it, from one encoding of the context."""
        if self.world_model is None:
            raise RuntimeError("this model was trained without a world model (world_model_weight = 0)")
        actions, cache, prefix_mask = self._sample(batch, generator, guide)
        return actions, self._predict_future(cache, prefix_mask, actions)

    @torch.no_grad()
    def predict_next(self, batch: dict, actions: Tensor) -> Tensor:
        """(B, C, D) predicted visual latent H steps after executing `actions` (B, H, A)."""
        if self.world_model is None:
            raise RuntimeError("this model was trained without a world model (world_model_weight = 0)")
        cache, prefix_mask = self.prefix(self.encode(batch))
        return self._predict_future(cache, prefix_mask, actions)

    @torch.no_grad()
    def surprise(self, predicted: Tensor, future_images: Tensor, camera_mask: Tensor) -> Tensor:
        """(B,) distance between a prediction and the latent of what was then observed."""
        return surprise(predicted, self.visual_latent(future_images, camera_mask))
