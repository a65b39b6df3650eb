"""``qtseg-train --model-config JSON``: validated config overrides, and an IC-MoE smoke run."""

from __future__ import annotations

import json

import pytest
import torch

from qtseg.checkpoint import load_checkpoint
from qtseg.cli.train import main
from qtseg.models import create
from qtseg.training.trainer import TrainConfig, model_kwargs

ICMOE_TINY = {
    "patch_size": 16,
    "embed_dim": 32,
    "depth": 2,
    "num_heads": 2,
    "window_size": 2,
    "global_attn_indexes": [1],
    "prompt_dim": 32,
    "decoder_depth": 1,
    "decoder_heads": 2,
    "decoder_mlp_dim": 64,
    "sgcl_dim": 16,
}


def test_model_kwargs_merges_and_rejects() -> None:
    cfg = TrainConfig(data="unused", model="hrmedseg", imgsz=128, model_config={"depth": 2})
    assert model_kwargs(cfg) == {"depth": 2, "num_classes": 2, "img_size": (128, 128)}
    with pytest.raises(ValueError, match="no config field 'bogus'"):
        model_kwargs(TrainConfig(data="unused", model="hrmedseg", model_config={"bogus": 1}))
    with pytest.raises(ValueError, match="with --imgsz"):
        model_kwargs(TrainConfig(data="unused", model="icmoe", model_config={"img_size": 64}))


@pytest.mark.parametrize(
    ("model_config", "message"),
    [
        ("{not json", "--model-config is not valid JSON"),
        ("[1, 2]", "--model-config must be a JSON object, got list"),
        ('{"bogus": 1}', "model icmoe has no config field 'bogus'"),
        ('{"num_classes": 3}', "set 'num_classes' with --num-classes"),
        ('{"depth": 2, "semantic_trainable_blocks": 3}', "semantic_trainable_blocks must be in [0, 2]"),
    ],
)
def test_bad_model_config_fails_before_any_work(tmp_path, kvasir_mini, capsys, model_config, message) -> None:
    out = tmp_path / "run"
    rc = main(["--data", str(kvasir_mini), "--model", "icmoe", "--imgsz", "64",
               "--model-config", model_config, "--out", str(out)])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert not out.exists()


def test_icmoe_trains_one_epoch_with_its_objective(tmp_path, kvasir_mini) -> None:
    """4 Kvasir images at 64x64: the SgCL projections train, frozen experts stay put."""
    out = tmp_path / "icmoe"
    rc = main(["--data", str(kvasir_mini), "--model", "icmoe", "--imgsz", "64", "--epochs", "1",
               "--batch", "4", "--limit", "4", "--workers", "1", "--seed", "0",
               "--model-config", json.dumps(ICMOE_TINY), "--out", str(out)])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["model_config"] == ICMOE_TINY
    assert len(summary["history"]) == 1 and summary["history"][0]["loss"] > 0
    model, spec, info = load_checkpoint(out / "best")
    assert info.model == "icmoe" and info.config["depth"] == 2 and spec.input_size == (64, 64)

    # The trainer seeds torch before building the model; rebuild the initial weights.
    torch.manual_seed(0)
    initial = create("icmoe", **info.config)
    start = dict(initial.named_parameters())
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, start[n])}
    frozen = {n for n, p in start.items() if not p.requires_grad}
    assert frozen and not changed & frozen  # frozen experts untouched (and the rebuild is exact)
    assert any(n.startswith("sgcl.") for n in changed)  # only the SgCL loss reaches W1..W3
    assert any("adapter" in n for n in changed)
