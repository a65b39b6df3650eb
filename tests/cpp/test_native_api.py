"""The native C++ API test (tests/cpp/native/test_api.cpp) with real artifacts."""

from __future__ import annotations

import pytest

from tests.cpp.helpers import run

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("which", ["exported", "batch1"])
def test_native_api(cpp_build, ov_artifact, ov_artifact_batch1, sample_jpegs, which):
    artifact = ov_artifact if which == "exported" else ov_artifact_batch1
    proc = run([cpp_build.api_test, artifact.path, sample_jpegs[0], "4"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith(" passed, 0 failed")
    assert "threads: 4 x 4 infer() calls, bit-identical to single-threaded" in proc.stdout
    model_free = run([cpp_build.api_test]).stdout.split()
    assert int(proc.stdout.splitlines()[-1].split()[0]) > int(model_free[0])  # model checks ran


def test_four_threads_fifty_calls_each(cpp_build, tiny_ov_artifact, sample_jpegs):
    proc = run([cpp_build.api_test, tiny_ov_artifact, sample_jpegs[0], "50"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "threads: 4 x 50 infer() calls, bit-identical to single-threaded" in proc.stdout


def test_ctest_runs_the_model_free_checks(cpp_build):
    proc = run(["ctest", "--output-on-failure"], cwd=cpp_build.build_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
