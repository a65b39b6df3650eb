"""`cmake --install` produces a usable package: find_package(qtseg) from examples/, and a
relocatable tree when the OpenVINO runtime is bundled."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.cpp.helpers import REPO, run, run_checked

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prefix(cpp_build, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("install")
    run_checked(
        ["cmake", "--install", cpp_build.build_dir, "--prefix", out], what="cmake --install"
    )
    return out


def test_install_layout(prefix):
    assert (prefix / "include" / "qtseg" / "qtseg.hpp").is_file()
    assert (prefix / "include" / "qtseg" / "version.hpp").is_file()
    assert (prefix / "bin" / "qtseg_infer").is_file()
    assert list((prefix / "lib").glob("libqtseg_infer.so*"))
    assert (prefix / "lib" / "cmake" / "qtseg" / "qtsegConfig.cmake").is_file()
    assert not list((prefix / "include").rglob("*openvino*")), "runtime headers must stay private"


def test_example_builds_against_installed_package(
    cpp_build, prefix, ov_artifact, sample_jpegs, tmp_path
):
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    build = tmp_path / "example"
    configure = run_checked(
        [
            "cmake",
            "-S",
            REPO / "examples",
            "-B",
            build,
            *generator,
            "-DCMAKE_BUILD_TYPE=Release",
            f"-DCMAKE_PREFIX_PATH={prefix}",
        ],
        what="configure examples/",
    )
    assert "with backends: openvino" in configure.stdout
    run_checked(["cmake", "--build", build, "-j2"], what="build examples/")

    image = sample_jpegs[0]
    example = run_checked(
        [build / "segment_image", ov_artifact.path, image, tmp_path / "ex.png"],
        what="segment_image",
    )
    assert "backend openvino" in example.stdout
    run_checked(
        [
            prefix / "bin" / "qtseg_infer",
            "--artifact",
            ov_artifact.path,
            "--input",
            image,
            "--output",
            tmp_path / "cli.png",
        ],
        what="installed qtseg_infer",
    )
    assert np.array_equal(
        np.asarray(Image.open(tmp_path / "ex.png")), np.asarray(Image.open(tmp_path / "cli.png"))
    )


def test_bundled_runtime_is_used_by_the_installed_tree(
    cpp_build, ov_artifact, sample_jpegs, tmp_path
):
    prefix = tmp_path / "bundle"
    run_checked(
        ["cmake", "--install", cpp_build.build_dir, "--prefix", prefix], what="cmake --install"
    )
    run_checked(
        [
            "cmake",
            "--install",
            cpp_build.build_dir,
            "--prefix",
            prefix,
            "--component",
            "qtseg_runtime_libs",
        ],
        what="cmake --install --component qtseg_runtime_libs",
    )
    ldd = run(["ldd", prefix / "bin" / "qtseg_infer"]).stdout
    resolved = {
        line.split("=>")[0].strip(): Path(line.split("=>")[1].split("(")[0].strip()).resolve()
        for line in ldd.splitlines()
        if "=>" in line
    }
    for lib in ("libopenvino.so.", "libtbb.so."):
        found = [path for name, path in resolved.items() if name.startswith(lib)]
        assert found and found[0].parent == (prefix / "lib").resolve(), (lib, found)
    run_checked(
        [
            prefix / "bin" / "qtseg_infer",
            "--artifact",
            ov_artifact.path,
            "--input",
            sample_jpegs[0],
        ],
        what="qtseg_infer with bundled OpenVINO",
    )
