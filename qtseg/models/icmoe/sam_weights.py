"""Load a user-supplied Segment Anything (ViT-B) checkpoint into every IC-MoE expert.

A SAM state dict has keys ``image_encoder.*``, ``prompt_encoder.*`` and
``mask_decoder.*``; each maps to ``experts.<name>.<same key>`` for the three
experts. Two kinds of tensors are adapted when the IC-MoE input size differs
from the checkpoint's (SAM: 1024):

- ``image_encoder.pos_embed`` (1, g, g, C): bilinear resize of the grid;
- ``rel_pos_h`` / ``rel_pos_w`` of global-attention blocks (2g-1, d): linear
  resize along the position axis (window blocks keep their size).

With more than four classes the mask decoder has extra mask tokens: the
checkpoint's rows fill the first ones and the rest keep their initial values.
Tensors SAM does not have (adapters, SgCL projections) keep their
initialisation and are listed as ``new``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from qtseg.models.icmoe.model import EXPERT_NAMES, ICMoE

SAM_PREFIXES = ("image_encoder.", "prompt_encoder.", "mask_decoder.")
# Model tensors that no SAM checkpoint provides.
_NEW_MARKERS = (".attn_adapter.", ".mlp_adapter.", "sgcl.")
# Decoder tensors whose first axis counts mask tokens.
_TOKEN_AXIS_KEYS = ("mask_decoder.mask_tokens.weight", "mask_decoder.iou_prediction_head.layers.2")


class SamCheckpointError(ValueError):
    """The state dict does not fit the IC-MoE architecture."""


@dataclass
class SamLoadReport:
    """What :func:`load_sam_weights` did; key lists use model (IC-MoE) names."""

    loaded: list[str] = field(default_factory=list)
    resized: list[str] = field(default_factory=list)
    partial: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def _resize_pos_embed(t: torch.Tensor, grid: int) -> torch.Tensor:
    x = t.permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(grid, grid), mode="bilinear", align_corners=False)
    return x.permute(0, 2, 3, 1).to(t.dtype)


def _resize_rel_pos(t: torch.Tensor, length: int) -> torch.Tensor:
    x = t.float().t().unsqueeze(0)  # (1, d, L)
    x = F.interpolate(x, size=length, mode="linear", align_corners=False)
    return x.squeeze(0).t().to(t.dtype)


def _adapt(
    key: str, src: torch.Tensor, dst: torch.Tensor, report: SamLoadReport, name: str
) -> torch.Tensor:
    """Return ``src`` shaped like ``dst`` or raise."""
    if src.shape == dst.shape:
        return src
    if key == "image_encoder.pos_embed" and src.dim() == 4 and src.shape[-1] == dst.shape[-1]:
        report.resized.append(name)
        return _resize_pos_embed(src, dst.shape[1])
    if (
        key.endswith((".rel_pos_h", ".rel_pos_w"))
        and src.dim() == 2
        and src.shape[1] == dst.shape[1]
    ):
        report.resized.append(name)
        return _resize_rel_pos(src, dst.shape[0])
    if (
        key.startswith(_TOKEN_AXIS_KEYS)
        and src.shape[1:] == dst.shape[1:]
        and src.shape[0] < dst.shape[0]
    ):
        report.partial.append(name)
        out = dst.detach().clone()
        out[: src.shape[0]] = src
        return out
    raise SamCheckpointError(
        f"{key}: checkpoint shape {tuple(src.shape)} does not fit {name} {tuple(dst.shape)}"
    )


def map_sam_state_dict(
    model: ICMoE, sam_state: Mapping[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], SamLoadReport]:
    """Translate a SAM state dict into an IC-MoE state dict (three copies).

    Returns the mapped tensors (model names) and a report. Raises
    :class:`SamCheckpointError` when a model tensor that SAM should provide is
    missing, or a checkpoint tensor cannot be shaped to fit.
    """
    if "model" in sam_state and isinstance(sam_state["model"], Mapping):
        sam_state = sam_state["model"]
    target = model.state_dict()
    report = SamLoadReport()
    mapped: dict[str, torch.Tensor] = {}
    for key, tensor in sam_state.items():
        if not key.startswith(SAM_PREFIXES):
            report.ignored.append(key)
            continue
        for expert in EXPERT_NAMES:
            name = f"experts.{expert}.{key}"
            if name not in target:
                raise SamCheckpointError(f"checkpoint key {key} has no place in the model ({name})")
            mapped[name] = _adapt(key, tensor, target[name], report, name)
            report.loaded.append(name)
    # Optional decoder heads of extra classes may be absent from SAM; all else must be there.
    for name in target:
        if name in mapped:
            continue
        if any(m in name for m in _NEW_MARKERS) or (
            ".output_hypernetworks_mlps." in name and _extra_hypernet(name, sam_state)
        ):
            report.new.append(name)
            continue
        raise SamCheckpointError(f"checkpoint has no tensor for {name}")
    return mapped, report


def _extra_hypernet(name: str, sam_state: Mapping[str, torch.Tensor]) -> bool:
    """True for a hypernetwork MLP whose index is beyond the checkpoint's mask
    tokens (only when the model has more classes than SAM has mask tokens)."""
    tokens = sam_state.get("mask_decoder.mask_tokens.weight")
    index = int(name.split(".output_hypernetworks_mlps.", 1)[1].split(".", 1)[0])
    return tokens is not None and index >= tokens.shape[0]


def load_sam_weights(model: ICMoE, sam_state: Mapping[str, torch.Tensor]) -> SamLoadReport:
    """Copy a SAM state dict into all three experts of ``model`` (in place).

    ``requires_grad`` flags are untouched. Returns the :class:`SamLoadReport`.
    """
    mapped, report = map_sam_state_dict(model, sam_state)
    result = model.load_state_dict(mapped, strict=False)
    leftover = [k for k in result.missing_keys if k not in report.new]
    if leftover or result.unexpected_keys:
        raise SamCheckpointError(
            f"unmapped tensors: missing {leftover}, unexpected {result.unexpected_keys}"
        )
    return report


def load_sam_checkpoint(model: ICMoE, path: str | os.PathLike[str]) -> SamLoadReport:
    """Read a SAM ``.pth`` file (tensors only, ``weights_only=True``) and load it."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    return load_sam_weights(model, state)
