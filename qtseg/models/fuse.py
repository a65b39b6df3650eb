"""Fold inference-mode BatchNorm into the preceding convolution.

``fuse_conv_bn(model)`` rewrites every :class:`~qtseg.models.blocks.Conv` and
:class:`~qtseg.models.blocks.ConvTranspose` unit in place: the convolution
gets the BatchNorm's affine transform folded into its weights and a bias, and
the BatchNorm is replaced by ``nn.Identity``. Outputs stay equal up to float
rounding; the model must be in eval mode (running statistics are used).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from qtseg.models.blocks import Conv, ConvTranspose


def _fold(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d) -> None:
    """Fold ``bn`` into ``conv`` in place (adds a bias to ``conv``)."""
    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        shift = bn.bias - bn.running_mean * scale
        # Conv2d weights are (out, in, k, k); ConvTranspose2d weights are (in, out, k, k).
        if isinstance(conv, nn.ConvTranspose2d):
            conv.weight.mul_(scale.view(1, -1, 1, 1))
        else:
            conv.weight.mul_(scale.view(-1, 1, 1, 1))
        bias = shift if conv.bias is None else conv.bias * scale + shift
        conv.bias = nn.Parameter(bias.detach().clone())


def fuse_conv_bn(model: nn.Module) -> nn.Module:
    """Fold every Conv/ConvTranspose + BatchNorm pair of ``model`` (in place).

    Returns:
        the same module, now in eval mode with no BatchNorm left in those units.
    """
    if model.training:
        model.eval()
    for module in model.modules():
        if isinstance(module, (Conv, ConvTranspose)) and isinstance(module.bn, nn.BatchNorm2d):
            _fold(module.conv, module.bn)
            module.bn = nn.Identity()
    return model
