"""IC-MoE (Zhang et al.): three SAM experts fused by pixel-probability
adaptive voting, registered as ``icmoe``.

Experts (same SAM architecture, each with its own weights):
``basic`` (image encoder frozen), ``semantic`` (last ``semantic_trainable_blocks``
encoder blocks trainable), ``adaptive`` (frozen encoder + trainable adapters
in every block; the main expert). Mask decoders are trainable. Which
parameters train is expressed only through ``requires_grad``.

Output: for ``num_classes == 2`` every expert predicts one foreground mask
(SAM's single-mask token); the fused foreground probability p is returned as
two logits ``[-l/2, l/2]`` with ``l = logit(p)``, so softmax over the channels
gives ``[1 - p, p]`` and arg-max is ``p > 0.5``. For K > 2 classes the experts
predict K masks (softmax) and the output is ``log p`` per class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from qtseg.models.icmoe.ppav import ppav_inference, ppav_training
from qtseg.models.icmoe.sam_decoder import MaskDecoder, PromptEncoder
from qtseg.models.icmoe.sam_image_encoder import ImageEncoderViT
from qtseg.models.icmoe.sgcl import SgCLProjections
from qtseg.models.registry import register_model, size_pair

EXPERT_NAMES = ("basic", "semantic", "adaptive")
# SAM's pixel statistics (0-255 scale), applied inside the model to a [0, 1] input.
SAM_PIXEL_MEAN = (123.675, 116.28, 103.53)
SAM_PIXEL_STD = (58.395, 57.12, 57.375)
_PROB_EPS = 1e-6


@dataclass(frozen=True)
class ICMoEConfig:
    """IC-MoE hyper-parameters; defaults are three SAM ViT-B experts at 1024x1024.

    The paper's complexity table (279.06 M / 33.23 M trainable) corresponds
    to ``img_size=256`` (its BUSI setting).

    Attributes:
        num_classes: output classes including background (>= 2).
        img_size: square input ``(S, S)`` (an int means square); inputs must be
            exactly this size (absolute position embedding).
        patch_size, embed_dim, depth, num_heads, mlp_ratio, window_size,
        global_attn_indexes: the SAM ViT image encoder (ViT-B defaults).
        prompt_dim, decoder_depth, decoder_heads, decoder_mlp_dim,
        num_multimask_outputs: SAM prompt encoder / mask decoder.
        adapter_ratio: adapter bottleneck / embed_dim in the adaptive expert.
        semantic_trainable_blocks: trailing encoder blocks the semantic expert trains.
        train_decoders: whether the three mask decoders train.
        alpha: PPAV fusion coefficient; sgcl_dim: width of the SgCL projections.
    """

    num_classes: int = 2
    img_size: tuple[int, int] = (1024, 1024)
    patch_size: int = 16
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    window_size: int = 14
    global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11)
    prompt_dim: int = 256
    decoder_depth: int = 2
    decoder_heads: int = 8
    decoder_mlp_dim: int = 2048
    num_multimask_outputs: int = 3
    adapter_ratio: float = 0.25
    semantic_trainable_blocks: int = 2
    train_decoders: bool = True
    alpha: float = 0.5
    sgcl_dim: int = 256

    def __post_init__(self) -> None:
        size = size_pair(self.img_size)
        object.__setattr__(self, "img_size", size)
        object.__setattr__(
            self, "global_attn_indexes", tuple(int(i) for i in self.global_attn_indexes)
        )
        if size[0] != size[1] or size[0] <= 0 or size[0] % self.patch_size:
            raise ValueError(
                f"img_size must be square and a multiple of patch_size {self.patch_size}, "
                f"got {self.img_size}"
            )
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")
        if not 0 <= self.semantic_trainable_blocks <= self.depth:
            raise ValueError(f"semantic_trainable_blocks must be in [0, {self.depth}]")


class SamExpert(nn.Module):
    """One SAM: image encoder, prompt encoder (no prompts), mask decoder."""

    def __init__(
        self,
        image_encoder: ImageEncoderViT,
        prompt_encoder: PromptEncoder,
        mask_decoder: MaskDecoder,
    ) -> None:
        """Arguments: the three SAM parts (names match the SAM checkpoint)."""
        super().__init__()
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder

    def forward(self, x: torch.Tensor, num_outputs: int) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, 3, S, S) SAM-normalised -> (mask logits (B, num_outputs, S/4, S/4),
        image embedding (B, C, S/16, S/16))."""
        emb = self.image_encoder(x)
        pe = self.prompt_encoder.dense_pe()
        masks = self.mask_decoder(emb, pe, self.prompt_encoder.no_prompt_dense(), num_outputs)
        return masks, emb


@dataclass(frozen=True)
class ICMoETrainOutput:
    """What :meth:`ICMoE.forward_train` returns.

    logits: (B, K, H, W) fused logits (same encoding as ``forward``);
    expert_probs: (B, 3, K', H, W) [basic, semantic, adaptive];
    choice: one-hot (B, 3) chosen candidate [P0, P1, P3]; scores: (B, 3);
    img_feats / fg_feats / bg_feats: four (B, C, h, w) embeddings
    [basic, semantic, adaptive, mean] (fg/bg None when not computed).
    """

    logits: torch.Tensor
    expert_probs: torch.Tensor
    choice: torch.Tensor
    scores: torch.Tensor
    img_feats: list[torch.Tensor]
    fg_feats: list[torch.Tensor] | None
    bg_feats: list[torch.Tensor] | None


class ICMoE(nn.Module):
    """Three SAM experts + PPAV fusion + SgCL projections."""

    def __init__(
        self,
        experts: dict[str, SamExpert],
        sgcl: SgCLProjections,
        *,
        num_classes: int,
        img_size: int,
        alpha: float,
    ) -> None:
        """Arguments: experts: ``basic``, ``semantic``, ``adaptive``; sgcl: W1-W3 of
        the contrastive loss; num_classes: K; img_size: square input side;
        alpha: PPAV fusion coefficient."""
        super().__init__()
        if tuple(experts) != EXPERT_NAMES:
            raise ValueError(f"experts must be {EXPERT_NAMES}, got {tuple(experts)}")
        self.experts = nn.ModuleDict(experts)
        self.sgcl = sgcl
        self.num_classes = num_classes
        self.num_outputs = 1 if num_classes == 2 else num_classes
        self.img_size = img_size
        self.alpha = alpha
        self.register_buffer(
            "pixel_mean", torch.tensor(SAM_PIXEL_MEAN).reshape(1, 3, 1, 1) / 255.0, persistent=False
        )
        self.register_buffer(
            "pixel_std", torch.tensor(SAM_PIXEL_STD).reshape(1, 3, 1, 1) / 255.0, persistent=False
        )

    def _check(self, x: torch.Tensor) -> None:
        if tuple(x.shape[-2:]) != (self.img_size, self.img_size):
            raise ValueError(
                f"IC-MoE expects {self.img_size}x{self.img_size} input, got {tuple(x.shape[-2:])}"
            )

    def _probs(self, logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return torch.sigmoid(logits) if self.num_outputs == 1 else torch.softmax(logits, dim=1)

    def expert_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x: (B, 3, S, S) in [0, 1] -> (probabilities (B, 3, K', S, S),
        three embeddings (B, C, h, w))."""
        if not torch.jit.is_tracing():  # a traced graph is fixed to its example size anyway
            self._check(x)
        xn = (x - self.pixel_mean) / self.pixel_std
        probs, feats = [], []
        for name in EXPERT_NAMES:
            masks, emb = self.experts[name](xn, self.num_outputs)
            probs.append(self._probs(masks, x.shape[-2:]))
            feats.append(emb)
        return torch.stack(probs, dim=1), feats

    def probs_to_logits(self, p: torch.Tensor) -> torch.Tensor:
        """Fused probabilities (B, K', H, W) -> (B, K, H, W) logits whose softmax is p."""
        if self.num_outputs == 1:
            p = p.clamp(_PROB_EPS, 1.0 - _PROB_EPS)
            half = 0.5 * (torch.log(p) - torch.log(1.0 - p))
            return torch.cat([-half, half], dim=1)
        return torch.log(p.clamp_min(_PROB_EPS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) float32 in [0, 1] -> (B, num_classes, S, S) logits (inference PPAV)."""
        probs, _ = self.expert_outputs(x)
        return self.probs_to_logits(ppav_inference(probs, self.alpha, binary=self.num_outputs == 1))

    def _reference(self, target: torch.Tensor) -> torch.Tensor:
        if self.num_outputs == 1:
            return (target > 0).to(torch.float32).unsqueeze(1)
        return F.one_hot(target, self.num_classes).permute(0, 3, 1, 2).to(torch.float32)

    def forward_train(
        self,
        x: torch.Tensor,
        target: torch.Tensor,
        *,
        with_sgcl: bool = True,
        capacity: int | None = None,
    ) -> ICMoETrainOutput:
        """Training pass: ground-truth-guided, load-balanced PPAV plus the
        features SgCL needs.

        x: (B, 3, S, S) in [0, 1]; target: (B, S, S) int64 labels. With
        ``with_sgcl`` the three encoders also run (without gradient) on the
        foreground-only and background-only images ``x * fg`` and ``x * (1 - fg)``.
        """
        probs, feats = self.expert_outputs(x)
        fused, choice, scores = ppav_training(
            probs,
            self._reference(target),
            self.alpha,
            binary=self.num_outputs == 1,
            capacity=capacity,
        )
        img_feats = feats + [torch.stack(feats).mean(0)]
        fg_feats = bg_feats = None
        if with_sgcl:
            fg = (target > 0).to(x.dtype).unsqueeze(1)
            with torch.no_grad():
                fg_feats = self._encode_all(x * fg)
                bg_feats = self._encode_all(x * (1.0 - fg))
        return ICMoETrainOutput(
            logits=self.probs_to_logits(fused),
            expert_probs=probs,
            choice=choice,
            scores=scores,
            img_feats=img_feats,
            fg_feats=fg_feats,
            bg_feats=bg_feats,
        )

    def _encode_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        xn = (x - self.pixel_mean) / self.pixel_std
        feats = [self.experts[name].image_encoder(xn) for name in EXPERT_NAMES]
        return feats + [torch.stack(feats).mean(0)]


def apply_trainable_policy(model: ICMoE, *, semantic_blocks: int, train_decoders: bool) -> None:
    """Set ``requires_grad`` for the IC-MoE split (everything else frozen):
    semantic expert's last ``semantic_blocks`` encoder blocks, adaptive expert's
    adapters, the mask decoders (when ``train_decoders``) and the SgCL projections."""
    for p in model.parameters():
        p.requires_grad_(False)
    semantic_blocks_list = model.experts["semantic"].image_encoder.blocks
    for blk in list(semantic_blocks_list)[len(semantic_blocks_list) - semantic_blocks :]:
        blk.requires_grad_(True)
    for blk in model.experts["adaptive"].image_encoder.blocks:
        for adapter in (blk.attn_adapter, blk.mlp_adapter):
            if adapter is not None:
                adapter.requires_grad_(True)
    for name in EXPERT_NAMES:
        model.experts[name].mask_decoder.requires_grad_(train_decoders)
    model.sgcl.requires_grad_(True)


def _build_expert(cfg: ICMoEConfig, *, adapter_ratio: float) -> SamExpert:
    grid = cfg.img_size[0] // cfg.patch_size
    encoder = ImageEncoderViT(
        img_size=cfg.img_size[0],
        patch_size=cfg.patch_size,
        embed_dim=cfg.embed_dim,
        depth=cfg.depth,
        num_heads=cfg.num_heads,
        mlp_ratio=cfg.mlp_ratio,
        out_chans=cfg.prompt_dim,
        window_size=cfg.window_size,
        global_attn_indexes=cfg.global_attn_indexes,
        adapter_ratio=adapter_ratio,
    )
    prompt = PromptEncoder(embed_dim=cfg.prompt_dim, grid=grid)
    class_tokens = cfg.num_classes if cfg.num_classes > 2 else 1
    decoder = MaskDecoder(
        dim=cfg.prompt_dim,
        num_mask_tokens=max(cfg.num_multimask_outputs + 1, class_tokens),
        depth=cfg.decoder_depth,
        num_heads=cfg.decoder_heads,
        mlp_dim=cfg.decoder_mlp_dim,
        iou_head_hidden_dim=cfg.prompt_dim,
    )
    return SamExpert(encoder, prompt, decoder)


@register_model(
    "icmoe",
    ICMoEConfig,
    description="IC-MoE: three SAM ViT-B experts (basic/semantic/adaptive) fused by "
    "pixel-probability voting",
)
def build_icmoe(cfg: ICMoEConfig) -> ICMoE:
    """Build IC-MoE from its config (random weights; see ``load_sam_weights``)."""
    experts = {
        "basic": _build_expert(cfg, adapter_ratio=0.0),
        "semantic": _build_expert(cfg, adapter_ratio=0.0),
        "adaptive": _build_expert(cfg, adapter_ratio=cfg.adapter_ratio),
    }
    model = ICMoE(
        experts,
        SgCLProjections(cfg.prompt_dim, cfg.sgcl_dim),
        num_classes=cfg.num_classes,
        img_size=cfg.img_size[0],
        alpha=cfg.alpha,
    )
    apply_trainable_policy(
        model, semantic_blocks=cfg.semantic_trainable_blocks, train_decoders=cfg.train_decoders
    )
    return model
