"""runtime.properties (issue 15 item 1, C++ side): the OpenVINO backend applies them verbatim
and reads them back from the compiled model; the precision in effect is the manifest's, or
loading fails with one line when the device cannot run that precision."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.cpp.helpers import cli_fails, clone_artifact, edit_manifest, read_f32, run, run_checked
from tests.cpp.tiny_models import SIZE

pytestmark = [pytest.mark.slow, pytest.mark.openvino]

PRECISION_OF_HINT = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}


def _python_logits(
    artifact: Path, x: np.ndarray, properties: dict[str, str]
) -> tuple[np.ndarray, str]:
    """Logits and the read-back INFERENCE_PRECISION_HINT from the openvino Python API."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(artifact / "model.xml"), "CPU", properties)
    hint = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    return compiled(x)[compiled.output("logits")], hint


def _with_properties(src: Path, dst: Path, properties: dict[str, str]) -> Path:
    clone_artifact(src, dst)

    def edit(m):
        m["runtime"]["properties"] = properties
        m["precision"] = PRECISION_OF_HINT[properties["INFERENCE_PRECISION_HINT"]]

    edit_manifest(dst, edit)
    return dst


def _cpp_logits(cpp_build, artifact: Path, x: np.ndarray, tmp: Path):
    x.astype("<f4").tofile(tmp / "x.bin")
    proc = run(
        [
            cpp_build.cli,
            "--artifact",
            artifact,
            "--input-tensor",
            tmp / "x.bin",
            "--input-shape",
            ",".join(map(str, x.shape)),
            "--dump-logits",
            tmp / "y.bin",
        ]
    )
    return proc, (read_f32(tmp / "y.bin", (x.shape[0], 2, *SIZE)) if proc.returncode == 0 else None)


@pytest.mark.parametrize("hint", ["f32", "bf16", "f16"])
def test_precision_hint_is_applied_or_refused(cpp_build, tiny_ov_artifact, tmp_path, hint):
    artifact = _with_properties(
        tiny_ov_artifact, tmp_path / "a", {"INFERENCE_PRECISION_HINT": hint}
    )
    x = np.random.default_rng(1).random((2, 3, *SIZE), dtype=np.float32)
    reference, in_effect = _python_logits(artifact, x, {"INFERENCE_PRECISION_HINT": hint})
    f32_reference, _ = _python_logits(artifact, x, {"INFERENCE_PRECISION_HINT": "f32"})
    proc, logits = _cpp_logits(cpp_build, artifact, x, tmp_path)
    print(f"\n[tests/cpp] INFERENCE_PRECISION_HINT={hint}: OpenVINO on this CPU runs {in_effect}")
    if in_effect != hint:
        # This CPU cannot run the verified precision: refused, not silently run at another.
        line = cli_fails(
            cpp_build.cli,
            "--artifact",
            artifact,
            "--input-tensor",
            tmp_path / "x.bin",
            "--input-shape",
            ",".join(map(str, x.shape)),
        )
        assert (
            f"with INFERENCE_PRECISION_HINT={in_effect} but the artifact was verified at {hint}"
            in line
        )
        return
    assert proc.returncode == 0, proc.stderr
    assert f"runtime properties: INFERENCE_PRECISION_HINT={hint}\n" in proc.stdout
    assert f"inference precision {hint}," in proc.stdout
    assert float(np.abs(logits - reference).max()) <= 1e-4
    if hint != "f32":
        # The reduced precision really ran (the logits are not the f32 ones).
        assert float(np.abs(logits - f32_reference).max()) > 1e-4


def test_exported_artifact_runs_at_its_manifest_precision(cpp_build, ov_artifact, sample_jpegs):
    hint = ov_artifact.manifest["runtime"]["properties"]["INFERENCE_PRECISION_HINT"]
    proc = run_checked(
        [cpp_build.cli, "--artifact", ov_artifact.path, "--input", sample_jpegs[0]],
        what="qtseg_infer",
    )
    assert f"INFERENCE_PRECISION_HINT={hint}" in proc.stdout


def test_other_properties_are_applied_verbatim(cpp_build, tiny_ov_artifact, tmp_path, sample_jpegs):
    properties = {
        "INFERENCE_PRECISION_HINT": "f32",
        "PERFORMANCE_HINT": "THROUGHPUT",
        "INFERENCE_NUM_THREADS": "1",
    }
    artifact = _with_properties(tiny_ov_artifact, tmp_path / "a", properties)
    proc = run_checked(
        [cpp_build.cli, "--artifact", artifact, "--input", sample_jpegs[0]], what="qtseg_infer"
    )
    line = next(x for x in proc.stdout.splitlines() if x.startswith("runtime properties: "))
    shown = dict(item.split("=") for item in line.removeprefix("runtime properties: ").split(", "))
    assert shown == properties


def test_unknown_property_is_an_error_not_ignored(
    cpp_build, tiny_ov_artifact, tmp_path, sample_jpegs
):
    artifact = _with_properties(
        tiny_ov_artifact, tmp_path / "a", {"INFERENCE_PRECISION_HINT": "f32", "NOT_A_PROPERTY": "1"}
    )
    line = cli_fails(cpp_build.cli, "--artifact", artifact, "--input", sample_jpegs[0])
    assert "OpenVINO cannot compile" in line and "NOT_A_PROPERTY" in line
