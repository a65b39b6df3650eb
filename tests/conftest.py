"""Shared fixtures: the real Kvasir-SEG data beside the checkout and tiny checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
KVASIR = REPO.parent / "shared" / "data" / "kvasir-seg"


@pytest.fixture(scope="session")
def kvasir_dir() -> Path:
    """The real dataset shipped beside the checkout (``../shared/data/kvasir-seg``)."""
    if not (KVASIR / "images").is_dir():
        pytest.fail(f"real data missing: {KVASIR} (CI clones with ../shared beside the repo)")
    return KVASIR


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The bundled sample images + masks."""
    import qtseg

    return qtseg.SAMPLES_DIR


def randomize_batchnorm(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm non-trivial statistics so eval/train modes differ clearly."""
    gen = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            n = mod.num_features
            mod.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
            mod.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            mod.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            mod.bias.data.copy_(torch.rand(n, generator=gen) * 0.4 - 0.2)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A random-weight qtseg-v2 checkpoint at 128x128, width 8 (fast on CPU)."""
    from qtseg.checkpoint import save_checkpoint
    from qtseg.models import create
    from qtseg.preprocess import PreprocessSpec

    torch.manual_seed(0)
    model = create("qtseg-v2", width=8, img_size=(128, 128)).eval()
    randomize_batchnorm(model)
    out = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_checkpoint(out, model, PreprocessSpec(input_size=(128, 128)))
    return out
