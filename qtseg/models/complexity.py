"""Parameter and multiply-accumulate (MAC) counting, computed by qtseg itself.

The counter runs one forward pass and counts the MACs of each operation from
its tensor shapes via ``TorchDispatchMode`` (it sees every aten op, including
those inside ``scaled_dot_product_attention`` decompositions and functional
calls), attributing them to the innermost module being executed. Convention
(fvcore style, as the QTSeg papers' "FLOPs" column): one MAC per
multiply-add of convolutions, transposed convolutions, matrix products and
attention; element-wise ops, normalization and pooling are not counted.
``FLOPs = 2 x MACs``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten


@dataclass
class Complexity:
    """Counts of one model at one input size."""

    params: int
    macs: int
    input_shape: tuple[int, ...]
    per_module: dict[str, int] = field(default_factory=dict)

    @property
    def flops(self) -> int:
        """2 FLOPs per MAC."""
        return 2 * self.macs

    def to_dict(self) -> dict:
        """JSON-ready summary (without the per-module table)."""
        return {"params": self.params, "macs": self.macs, "flops": self.flops,
                "input_shape": list(self.input_shape)}


def _numel(shape) -> int:
    return math.prod(int(s) for s in shape)


def _conv_macs(args, out) -> int:
    x, w = args[0], args[1]
    transposed = bool(args[6]) if len(args) > 6 else False
    groups = int(args[8]) if len(args) > 8 else 1
    kernel = _numel(w.shape[2:])
    if transposed:
        # Each input element is multiplied into every output channel's kernel.
        c_out_per_group = w.shape[1]
        return _numel(x.shape) * c_out_per_group * kernel
    c_in_per_group = x.shape[1] // groups
    return _numel(out.shape) * c_in_per_group * kernel


def _mm_macs(args, out) -> int:
    a = args[0]
    return _numel(out.shape) * a.shape[-1]


def _addmm_macs(args, out) -> int:
    return _numel(out.shape) * args[1].shape[-1]


def _sdpa_macs(args, out) -> int:
    q, k = args[0], args[1]
    # q @ k^T and attn @ v
    return _numel(q.shape[:-1]) * k.shape[-2] * q.shape[-1] + _numel(out.shape) * k.shape[-2]


_RULES = {
    aten.convolution.default: _conv_macs,
    aten.mm.default: _mm_macs,
    aten.bmm.default: _mm_macs,
    aten.addmm.default: _addmm_macs,
    aten.matmul.default: _mm_macs,
    aten.linear.default: _mm_macs,
    aten._scaled_dot_product_flash_attention_for_cpu.default: _sdpa_macs,
    aten._scaled_dot_product_efficient_attention.default: _sdpa_macs,
    aten._scaled_dot_product_flash_attention.default: _sdpa_macs,
    aten._scaled_dot_product_cudnn_attention.default: _sdpa_macs,
}


class _MacCounter(TorchDispatchMode):
    def __init__(self, stack: list[str]) -> None:
        super().__init__()
        self.stack = stack
        self.per_module: dict[str, int] = defaultdict(int)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        rule = _RULES.get(func)
        if rule is not None:
            result = out[0] if isinstance(out, (tuple, list)) else out
            self.per_module[self.stack[-1]] += int(rule(args, result))
        return out


def count_params(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (optionally only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def measure(model: nn.Module, input_shape: tuple[int, ...] = (1, 3, 512, 512)) -> Complexity:
    """Parameters and MACs of one forward pass on a random input of ``input_shape``.

    The per-module table maps each leaf-most executing module's qualified name
    to the MACs of the ops it ran directly.
    """
    was_training = model.training
    model.eval()
    stack = ["(top)"]
    names = {m: n or "(top)" for n, m in model.named_modules()}

    def enter(module: nn.Module, _inputs) -> None:
        stack.append(names[module])

    def leave(_module: nn.Module, _inputs, _output) -> None:
        stack.pop()

    hooks = []
    for module in model.modules():
        hooks.append(module.register_forward_pre_hook(enter))
        hooks.append(module.register_forward_hook(leave))
    param = next(model.parameters())
    x = torch.rand(input_shape, device=param.device, dtype=param.dtype)
    counter = _MacCounter(stack)
    try:
        with counter:
            model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    per_module = dict(sorted(counter.per_module.items(), key=lambda kv: -kv[1]))
    return Complexity(count_params(model), sum(per_module.values()), tuple(input_shape), per_module)
