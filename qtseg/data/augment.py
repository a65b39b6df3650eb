"""Batched training augmentation in pure PyTorch (runs on the GPU with the batch).

Geometric transforms (flips, rotation, scale/crop) are composed into one
affine matrix per sample and applied with ``grid_sample`` -- bilinear for
images, nearest for label maps, so labels stay integral. Colour jitter
changes brightness, contrast, saturation and gamma per sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    """Strength of each augmentation (0 disables it).

    Attributes:
        hflip, vflip: probability of a horizontal / vertical flip.
        rot90: probability of a random multiple-of-90-degree rotation.
        rotate_deg: maximum extra rotation in degrees (uniform +-).
        scale: ``(min, max)`` zoom factor (> 1 zooms in, i.e. crops).
        translate: maximum shift as a fraction of the image size.
        brightness, contrast, saturation: maximum relative change (+-).
        gamma: maximum relative change of the gamma exponent (+-).
    """

    hflip: float = 0.5
    vflip: float = 0.5
    rot90: float = 0.5
    rotate_deg: float = 20.0
    scale: tuple[float, float] = (0.75, 1.35)
    translate: float = 0.1
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    gamma: float = 0.2


def _affine(batch: int, cfg: AugmentConfig, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    def uniform(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(batch, generator=gen) * (hi - lo) + lo

    angle = uniform(-cfg.rotate_deg, cfg.rotate_deg) * (math.pi / 180.0)
    quarter = torch.randint(0, 4, (batch,), generator=gen) * (torch.rand(batch, generator=gen) < cfg.rot90)
    angle = angle + quarter * (math.pi / 2)
    zoom = uniform(*cfg.scale)
    sx = torch.where(torch.rand(batch, generator=gen) < cfg.hflip, -1.0, 1.0) / zoom
    sy = torch.where(torch.rand(batch, generator=gen) < cfg.vflip, -1.0, 1.0) / zoom
    cos, sin = angle.cos(), angle.sin()
    theta = torch.zeros(batch, 2, 3)
    theta[:, 0, 0] = cos * sx
    theta[:, 0, 1] = -sin * sy
    theta[:, 1, 0] = sin * sx
    theta[:, 1, 1] = cos * sy
    theta[:, 0, 2] = uniform(-cfg.translate, cfg.translate) * 2
    theta[:, 1, 2] = uniform(-cfg.translate, cfg.translate) * 2
    return theta.to(device)


def augment_batch(
    images: torch.Tensor, masks: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment a batch.

    Args:
        images: ``(B, 3, H, W)`` float in [0, 1].
        masks: ``(B, H, W)`` integer labels.
        cfg: augmentation strengths.
        gen: CPU generator (seeded) drawing all random parameters.

    Returns:
        ``(images, masks)`` of the same shapes and dtypes.
    """
    b = images.shape[0]
    theta = _affine(b, cfg, gen, images.device)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    warped = F.grid_sample(
        masks[:, None].float(), grid, mode="nearest", padding_mode="reflection", align_corners=False
    )
    masks = warped[:, 0].round().to(masks.dtype)

    def factor(amount: float) -> torch.Tensor:
        return (1.0 + (torch.rand(b, generator=gen) * 2 - 1) * amount).to(images.device).view(b, 1, 1, 1)

    images = images * factor(cfg.brightness)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    images = (images - mean) * factor(cfg.contrast) + mean
    gray = images.mean(dim=1, keepdim=True)
    images = (images - gray) * factor(cfg.saturation) + gray
    images = images.clamp(0.0, 1.0) ** factor(cfg.gamma)
    return images.clamp(0.0, 1.0), masks
