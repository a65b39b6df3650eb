"""Saved weights keep loading: every registered model against a stored state_dict layout.

``fixtures/<model>.safetensors`` holds, for a tiny configuration of each
model, the names, shapes and dtypes of its ``state_dict`` (safetensors
metadata) and the logits (1, K, H, W) that the model code of commit 681b69d
computed for seeded weights in that layout and a seeded input. The weights
are not stored: :func:`seeded_state` recreates them from the layout alone,
so a refactor of the model code must keep every parameter and buffer name
and shape (strict load) and the output.

The logits are compared with a tolerance of 1e-5 rather than bit for bit:
the fixture was computed on an AVX-512 CPU and other machines pick other
kernels. Regenerate (``python -m tests.models.test_state_dicts``) only when
a model's computation is changed on purpose, and say so in the commit.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from qtseg.models import create, list_models

FIXTURES = Path(__file__).parent / "fixtures"
SEED = 0

TINY_CONFIGS: dict[str, dict[str, object]] = {
    "qtseg-v2": {"width": 4, "img_size": (64, 64), "depths": (1, 1, 2), "heads": 2, "mlp_dim": 16},
    "qtseg-v1": {"width": 4, "img_size": (64, 64), "depths": (1, 1, 2), "heads": 2, "mlp_dim": 16},
    "hrmedseg": {
        "img_size": 64, "embed_dim": 16, "depth": 1, "decoder_dim": 32, "decoder_heads": 2,
        "decoder_mlp_dim": 32, "up_dims": (16, 8),
    },
    "icmoe": {
        "img_size": 32, "patch_size": 8, "embed_dim": 16, "depth": 2, "num_heads": 2,
        "window_size": 2, "global_attn_indexes": (1,), "prompt_dim": 16, "decoder_depth": 1,
        "decoder_heads": 2, "decoder_mlp_dim": 16, "sgcl_dim": 8,
    },
}


def _build(name: str) -> torch.nn.Module:
    return create(name, **TINY_CONFIGS[name]).eval()


def layout_of(model: torch.nn.Module) -> dict[str, list]:
    """``{name: [shape, dtype]}`` of a model's ``state_dict``."""
    return {k: [list(v.shape), str(v.dtype)] for k, v in model.state_dict().items()}


def seeded_state(layout: dict[str, list], seed: int = SEED) -> dict[str, torch.Tensor]:
    """Weights for ``layout``, drawn in sorted-name order (independent of module order).

    Floats are ``0.5 * N(0, 1) + 0.1`` (away from zero-initialised gammas);
    BatchNorm variances are made positive; integer buffers are zero.
    """
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name in sorted(layout):
        shape, dtype = layout[name]
        dt = getattr(torch, dtype.removeprefix("torch."))
        if not dt.is_floating_point:
            state[name] = torch.zeros(shape, dtype=dt)
            continue
        value = 0.5 * torch.randn(shape, generator=gen) + 0.1
        if name.endswith("running_var"):
            value = value.abs() + 0.5
        state[name] = value.to(dt)
    return state


def _input(size: tuple[int, int]) -> torch.Tensor:
    return torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(SEED + 1))


def write_fixture(name: str) -> Path:
    """Store the state_dict layout and the current code's logits for ``name``."""
    model = _build(name)
    layout = layout_of(model)
    model.load_state_dict(seeded_state(layout), strict=True)
    with torch.no_grad():
        logits = model(_input(model.config.img_size))
    FIXTURES.mkdir(exist_ok=True)
    path = FIXTURES / f"{name}.safetensors"
    save_file({"logits": logits}, str(path), metadata={"layout": json.dumps(layout)})
    return path


def test_every_registered_model_has_a_fixture() -> None:
    assert sorted(TINY_CONFIGS) == list_models()


@pytest.mark.parametrize("name", sorted(TINY_CONFIGS))
def test_saved_state_dict_loads_strictly_and_gives_the_same_logits(name: str) -> None:
    with safe_open(str(FIXTURES / f"{name}.safetensors"), framework="pt") as f:
        layout = json.loads(f.metadata()["layout"])
        expected = f.get_tensor("logits")
    model = _build(name)
    assert layout_of(model) == layout
    model.load_state_dict(seeded_state(layout), strict=True)
    with torch.no_grad():
        logits = model(_input(model.config.img_size))
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)


if __name__ == "__main__":
    for model_name in sys.argv[1:] or sorted(TINY_CONFIGS):
        print(write_fixture(model_name))
