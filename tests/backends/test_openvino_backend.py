"""OpenVINO backend on a real tiny graph (ONNX and IR)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from qtseg.backends import BackendError
from qtseg.backends.openvino_backend import OpenVINOBackend

from .conftest import reference_conv

pytestmark = pytest.mark.openvino


def test_onnx_and_ir_match_pytorch(tmp_path, conv_onnx, batch):
    import openvino as ov

    xml = tmp_path / "model.xml"
    ov.save_model(ov.convert_model(str(conv_onnx)), str(xml), compress_to_fp16=False)
    for path in (conv_onnx, xml):
        with OpenVINOBackend(path) as be:
            meta = be.input_metadata()[0]
            assert meta.name == "image" and meta.shape == (-1, 3, 32, 32) and meta.dtype == "float32"
            out = be.infer(batch)
            assert be.describe()["config"] == {"INFERENCE_PRECISION_HINT": "f32"}
        np.testing.assert_allclose(out, reference_conv(batch), atol=1e-5)


def test_unknown_device(conv_onnx):
    with pytest.raises(BackendError, match="not available"):
        OpenVINOBackend(conv_onnx, device="npu9")


# A CPU without bf16, for real: OpenVINO's CPU plugin reads OV_CPU_MAX_ISA when it loads and
# then behaves as on an AVX-512 CPU without AVX512_BF16/VNNI (no BF16 in its capabilities).
NO_BF16 = {"OV_CPU_MAX_ISA": "AVX512_CORE"}
PROBE = """
import json, sys
from qtseg.backends import open_backend
from qtseg.backends.base import NotExecutableHere
from qtseg.backends.openvino_backend import cpu_capabilities, fastest_float_precision
out = {"capabilities": list(cpu_capabilities()), "fastest": fastest_float_precision()}
try:
    with open_backend(sys.argv[1]) as be:
        out["opened"] = be.compiled_property("INFERENCE_PRECISION_HINT")
except NotExecutableHere as exc:
    out["refused"] = str(exc)
print(json.dumps(out))
"""


def probe(folder, env: dict[str, str]) -> dict:
    """Open ``folder`` with open_backend in a fresh process with ``env`` added."""
    proc = subprocess.run([sys.executable, "-c", PROBE, str(folder)], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture()
def bf16_artifact(tmp_path):
    from ..artifacts import manifest_dict, write_manifest_dict
    from .conftest import make_conv_openvino_artifact

    folder = make_conv_openvino_artifact(tmp_path / "a_bf16")
    data = manifest_dict(folder)
    data["precision"] = "bf16"
    data["runtime"]["properties"]["INFERENCE_PRECISION_HINT"] = "bf16"
    write_manifest_dict(folder, data)
    return folder


def test_bf16_artifact_is_refused_on_a_cpu_without_bf16(bf16_artifact):
    """OpenVINO would emulate bf16 there (slower than f32) or compute otherwise: never run it silently."""
    got = probe(bf16_artifact, NO_BF16)
    assert "BF16" not in got["capabilities"] and got["fastest"] == "f32"
    assert "opened" not in got
    assert got["refused"].startswith("not executable here: inference precision bf16 needs native BF16")
    assert "\n" not in got["refused"]


def test_bf16_artifact_runs_at_bf16_where_the_cpu_has_it(bf16_artifact):
    from qtseg.backends.openvino_backend import cpu_capabilities

    if "BF16" not in cpu_capabilities():
        pytest.skip("this CPU has no native bf16")
    got = probe(bf16_artifact, {})
    assert got == {"capabilities": list(cpu_capabilities()), "fastest": "bf16", "opened": "bf16"}


def test_the_refusal_covers_every_way_of_asking_for_bf16(conv_onnx):
    """An explicit hint or properties: the same check, in this process too."""
    from qtseg.backends.base import NotExecutableHere
    from qtseg.backends.openvino_backend import precision_problem

    for kwargs in ({"inference_precision": "bf16"}, {"properties": {"INFERENCE_PRECISION_HINT": "bf16"}}):
        if precision_problem("bf16"):
            with pytest.raises(NotExecutableHere, match="BF16"):
                OpenVINOBackend(conv_onnx, **kwargs)
        else:
            with OpenVINOBackend(conv_onnx, **kwargs) as be:
                assert be.compiled_property("INFERENCE_PRECISION_HINT") == "bf16"
                assert "BF16" in be.describe()["cpu_capabilities"]
