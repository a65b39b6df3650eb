"""Session fixtures of the C++ tests: one CMake build, exported artifacts and test images.

The build goes into a temporary directory (configure + ``cmake --build -j2``
once per session) against the pip OpenVINO wheel's CMake package.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from qtseg.preprocess import PreprocessSpec
from tests.cpp.helpers import (
    REPO,
    Artifact,
    CppBuild,
    configure,
    require_module,
    require_tool,
    run_checked,
    write_artifact,
    write_png,
)
from tests.cpp.tiny_models import tiny_openvino


@pytest.fixture(scope="session")
def cpp_build(tmp_path_factory: pytest.TempPathFactory) -> CppBuild:
    """Configure and build the repository's CMake project (Release, OpenVINO required)."""
    ov = require_module("openvino")
    cmake = require_tool("cmake")
    require_tool("c++")
    ov_dir = Path(ov.__file__).resolve().parent / "cmake"
    build = tmp_path_factory.mktemp("cpp-build")
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    start = time.perf_counter()
    configure(
        [
            cmake,
            "-S",
            REPO,
            "-B",
            build,
            *generator,
            "-DCMAKE_BUILD_TYPE=Release",
            f"-DOpenVINO_DIR={ov_dir}",
            "-DQTSEG_WITH_OPENVINO=ON",
        ],
        what="cmake configure",
    )
    run_checked([cmake, "--build", build, "-j2"], what="cmake --build")
    seconds = time.perf_counter() - start
    print(f"\n[tests/cpp] configure + build took {seconds:.1f} s")
    return CppBuild(
        build_dir=build,
        cli=build / "cpp" / "qtseg_infer",
        api_test=build / "tests" / "cpp" / "native" / "qtseg_api_test",
        openvino_dir=ov_dir,
        seconds=seconds,
    )


def _self_built_openvino(out: Path) -> Artifact:
    """A random-weight qtseg-v2 (width 8, 256x256, dynamic batch) saved as OpenVINO IR fp32."""
    import openvino as ov
    import torch

    from qtseg.models import create

    size = (256, 256)
    torch.manual_seed(0)
    model = create("qtseg-v2", num_classes=2, width=8, img_size=size).eval()
    example = torch.rand(1, 3, *size)
    ov_model = ov.convert_model(
        model, example_input=example, input=[ov.PartialShape([-1, 3, *size])]
    )
    ov_model.inputs[0].get_tensor().set_names({"image"})
    ov_model.outputs[0].get_tensor().set_names({"logits"})
    out.mkdir(parents=True)
    ov.save_model(ov_model, str(out / "model.xml"), compress_to_fp16=False)
    write_artifact(
        out,
        spec=PreprocessSpec(input_size=size),
        fmt="openvino",
        files={"model": "model.xml", "weights": "model.bin"},
        input_shape=[-1, 3, *size],
        output_shape=[-1, 2, *size],
        model_name="qtseg-v2",
    )
    return Artifact(
        out, "self-built qtseg-v2 (random weights, width 8, 256x256) via openvino.convert_model"
    )


def _tiny_checkpoint(out: Path) -> Path:
    """A random-weight qtseg-v2 checkpoint (width 8, 256x256) for the exporter."""
    import torch

    from qtseg.checkpoint import save_checkpoint
    from qtseg.models import create

    torch.manual_seed(0)
    model = create("qtseg-v2", num_classes=2, width=8, img_size=(256, 256)).eval()
    save_checkpoint(out, model, PreprocessSpec(input_size=(256, 256)))
    return out


@pytest.fixture(scope="session")
def ov_artifact(tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    """The OpenVINO fp32 artifact: from ``qtseg.export.cli`` when it exists, else self-built."""
    require_module("openvino")
    out = tmp_path_factory.mktemp("exports")
    try:
        from qtseg.export import cli as export_cli
    except ImportError:
        artifact = _self_built_openvino(out / "qtseg-v2_openvino-fp32")
    else:
        import qtseg

        args = [
            "--target",
            "openvino-fp32",
            "--out",
            str(out),
            "--dynamic-batch",
            "4",
            "--num-samples",
            "2",
            "--quiet",
        ]
        source = "qtseg.export.cli --target openvino-fp32 --dynamic-batch 4"
        if not (qtseg.DEFAULT_CHECKPOINT / "checkpoint.json").is_file():
            args += [
                "--checkpoint",
                str(_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")),
            ]
            source += (
                " (random-weight qtseg-v2 checkpoint, width 8, 256x256: no bundled checkpoint yet)"
            )
        rc = export_cli.main(args)
        assert rc in (0, None), f"qtseg.export.cli exited with {rc}"
        manifests = sorted(out.glob("*/manifest.json"))
        assert manifests, f"qtseg.export.cli wrote no artifact under {out}"
        artifact = Artifact(manifests[0].parent, source)
    print(f"\n[tests/cpp] OpenVINO artifact: {artifact.source} -> {artifact.path}")
    return artifact


@pytest.fixture(scope="session")
def ov_artifact_batch1(ov_artifact: Artifact, tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    """The same model reshaped to a fixed batch of 1 (exercises batching in chunks)."""
    import openvino as ov

    manifest = ov_artifact.manifest
    spec = ov_artifact.spec
    core = ov.Core()
    model = core.read_model(str(ov_artifact.file("model")))
    h, w = spec.input_size
    model.reshape({model.inputs[0].get_any_name(): ov.PartialShape([1, 3, h, w])})
    out = tmp_path_factory.mktemp("batch1") / "artifact"
    out.mkdir()
    ov.save_model(model, str(out / "model.xml"), compress_to_fp16=False)
    write_artifact(
        out,
        spec=spec,
        fmt="openvino",
        files={"model": "model.xml", "weights": "model.bin"},
        input_shape=[1, 3, h, w],
        output_shape=[1, spec.num_classes, h, w],
        input_name=manifest["inputs"][0]["name"],
        output_name=manifest["outputs"][0]["name"],
    )
    return Artifact(out, f"{ov_artifact.source}, reshaped to batch 1")


@pytest.fixture(scope="session")
def onnx_artifact(tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    """A tiny random conv net (3 classes, 64x64, BGR + mean/std) exported to ONNX."""
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Upsample(scale_factor=2, mode="bilinear"),
        torch.nn.Conv2d(8, 3, 3, padding=1),
    ).eval()
    out = tmp_path_factory.mktemp("onnx") / "tiny_onnx-fp32"
    out.mkdir()
    torch.onnx.export(
        net,
        (torch.rand(1, 3, 64, 64),),
        str(out / "model.onnx"),
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "n"}, "logits": {0: "n"}},
        dynamo=False,
    )
    spec = PreprocessSpec(
        input_size=(64, 64),
        channel_order="BGR",
        mean=(0.406, 0.456, 0.485),
        std=(0.225, 0.224, 0.229),
        num_classes=3,
    )
    write_artifact(
        out,
        spec=spec,
        fmt="onnx",
        files={"model": "model.onnx"},
        input_shape=[-1, 3, 64, 64],
        output_shape=[-1, 3, 64, 64],
        model_name="tiny-conv",
    )
    return Artifact(out, "self-built tiny conv net via torch.onnx.export")


@pytest.fixture(scope="session")
def sample_jpegs() -> list[Path]:
    """The bundled sample images (qtseg/assets/samples/images/*.jpg)."""
    images = sorted((REPO / "qtseg" / "assets" / "samples" / "images").glob("*.jpg"))
    if not images:
        pytest.fail("no bundled sample images under qtseg/assets/samples/images")
    return images


@pytest.fixture(scope="session")
def synthetic_jpegs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Pillow-written JPEGs in layouts the samples lack: gray, 4:4:4, 4:2:2, progressive."""
    out = tmp_path_factory.mktemp("jpegs")
    rng = np.random.default_rng(1)
    smooth = (np.cumsum(rng.integers(-8, 9, (61, 83, 3)), axis=1) % 256).astype(np.uint8)
    paths = []
    for name, mode, kwargs in [
        ("rgb420.jpg", "RGB", {"quality": 90}),
        ("rgb444.jpg", "RGB", {"quality": 95, "subsampling": 0}),
        ("rgb422.jpg", "RGB", {"quality": 85, "subsampling": 1}),
        ("progressive.jpg", "RGB", {"quality": 80, "progressive": True}),
        ("gray.jpg", "L", {"quality": 90}),
    ]:
        image = Image.fromarray(smooth if mode == "RGB" else smooth[:, :, 1])
        image.save(out / name, **kwargs)
        paths.append(out / name)
    return paths


@pytest.fixture(scope="session")
def png_images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Lossless test images covering every PNG layout the readers must agree on."""
    out = tmp_path_factory.mktemp("pngs")
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    big = (np.cumsum(rng.integers(-6, 7, (700, 900, 3)), axis=0) % 256).astype(np.uint8)
    alpha = rng.integers(0, 256, (37, 53), dtype=np.uint8)
    paths = []

    def pil(name: str, image: Image.Image, **kwargs) -> None:
        image.save(out / name, **kwargs)
        paths.append(out / name)

    pil("rgb.png", Image.fromarray(rgb))
    pil("big_rgb.png", Image.fromarray(big))
    pil("rgba.png", Image.fromarray(np.dstack([rgb, alpha])))
    pil("gray.png", Image.fromarray(rgb[:, :, 0]))
    pil("gray_alpha.png", Image.fromarray(np.dstack([rgb[:, :, 0], alpha]), mode="LA"))
    pil("palette.png", Image.fromarray(rgb).quantize(colors=37))
    pil("palette_trns.png", Image.fromarray(rgb).quantize(colors=16), transparency=3)
    pil("one_pixel.png", Image.fromarray(rgb[:1, :1]))
    pil("thin.png", Image.fromarray(big[:1, :300]))
    pil("tall.png", Image.fromarray(big[:600, :2]))
    for name, arr, depth, ctype in [
        ("gray16.png", rng.integers(0, 65536, (29, 31), dtype=np.uint16), 16, 0),
        ("rgb16.png", rng.integers(0, 65536, (29, 31, 3), dtype=np.uint16), 16, 2),
        ("gray_alpha16.png", rng.integers(0, 65536, (29, 31, 2), dtype=np.uint16), 16, 4),
        ("gray1.png", rng.integers(0, 2, (29, 31)), 1, 0),
        ("gray2.png", rng.integers(0, 4, (29, 31)), 2, 0),
        ("gray4.png", rng.integers(0, 16, (29, 31)), 4, 0),
    ]:
        paths.append(write_png(out / name, arr, bit_depth=depth, color_type=ctype))
    palette = bytes(rng.integers(0, 256, 12, dtype=np.uint8))
    paths.append(
        write_png(
            out / "palette4bit.png",
            rng.integers(0, 4, (29, 31)),
            bit_depth=4,
            color_type=3,
            palette=palette,
        )
    )
    return paths


@pytest.fixture(scope="session")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-wide scratch directory for dumps."""
    return Path(tmp_path_factory.mktemp("scratch"))


@pytest.fixture(scope="session")
def tiny_ov_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny OpenVINO IR fp32 artifact (64x64 conv net, dynamic batch) for hostile-input tests."""
    require_module("openvino")
    return tiny_openvino(tmp_path_factory.mktemp("tiny") / "tiny_openvino-fp32")
