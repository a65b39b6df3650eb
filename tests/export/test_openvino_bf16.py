"""``openvino-bf16``: verified at the bf16 floor where the CPU has native bf16, refused otherwise.

The refusal on a CPU without bf16 is tested in tests/export/test_targets.py and
tests/backends/test_openvino_backend.py (``OV_CPU_MAX_ISA`` in a subprocess).
"""

from __future__ import annotations

import pytest

from qtseg.backends import open_backend
from qtseg.evaluation import THRESHOLDS

from ..artifacts import read_manifest
from .conftest import run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _native_bf16() -> None:
    from qtseg.backends.openvino_backend import precision_problem

    if precision_problem("bf16"):
        pytest.skip("this CPU has no native bf16 (the refusal is tested elsewhere)")


def test_bundled_checkpoint_passes_the_bf16_gate_and_runs_at_bf16(tmp_path):
    """The trained model at 512x512 on the 8 gate samples (measured: agreement 99.98 %, Dice -0.08 pp)."""
    run = run_cli(["--target", "openvino-bf16", "--out", str(tmp_path), "--quiet"])
    assert run.rc == 0, run.err
    folder = tmp_path / "qtseg-v2_openvino-bf16"
    manifest = read_manifest(folder)
    assert manifest["precision"] == "bf16" and manifest["target"] == "openvino-bf16"
    assert manifest["runtime"]["properties"] == {"INFERENCE_PRECISION_HINT": "bf16"}
    assert manifest["details"]["openvino"]["inference_precision"] == "bf16"
    # QTSeg v2's four decoder-upsampler LayerNorm2d, without their transposes (openvino_passes)
    assert manifest["details"]["openvino"]["rewrites"] == {"channel_layernorm_to_mvn": 4}
    (result,) = manifest["parity"]["results"]
    assert result["passed"] and result["thresholds"] == THRESHOLDS["bf16"].to_dict()
    assert "inference precision bf16" in result["label"]
    assert result["agreement"] >= 0.999 and abs(result["dice_delta_pp"]) <= 0.1
    assert result["max_abs_diff"] > 1e-3  # really bf16: an f32 run agrees within ~2e-5
    with open_backend(folder) as backend:
        assert backend.compiled_property("INFERENCE_PRECISION_HINT") == "bf16"
        assert backend.describe()["precision"] == "bf16"


def test_a_model_that_does_not_survive_bf16_is_refused(tiny_checkpoint, tmp_path):
    """Random weights: logits near ties everywhere; bf16 flips ~0.5 % of the pixels (floor 99.9 %)."""
    run = run_cli(["--target", "openvino-bf16", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path),
                   "--quiet"])
    assert run.rc == 1
    assert "parity gate failed" in run.err and "< 99.9%" in run.err
    assert list(tmp_path.iterdir()) == []  # nothing at the final path, no staging leftovers
