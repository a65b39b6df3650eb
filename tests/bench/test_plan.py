"""Which rows a GPU benchmark plans: ``--variants`` and ``--cuda-graph`` (no GPU needed)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from qtseg.bench.cli import main
from qtseg.bench.config import BenchConfig, ConfigError
from qtseg.bench.discover import ModelGroup
from qtseg.bench.markdown import row_label
from qtseg.bench.rows import GRAPH_VARIANT, RowSpec, failed_row
from qtseg.bench.runner import plan_rows
from qtseg.manifest import RuntimeSpec

from ..artifacts import make_manifest


def _group(root: Path) -> ModelGroup:
    """One model with a CUDA AOTI artifact, a CPU AOTI artifact and an ONNX artifact."""
    paths, manifests = [], []
    for name, fmt, device in (
        ("m_aoti-cuda-fp16", "aoti", "cuda"),
        ("m_aoti", "aoti", "cpu"),
        ("m_onnx", "onnx", None),
    ):
        folder = root / name
        folder.mkdir(parents=True)
        model_file = "model.pt2" if fmt == "aoti" else "model.onnx"
        (folder / model_file).write_bytes(b"not read when planning")
        manifest = make_manifest(folder, fmt=fmt, files={"model": model_file})
        manifest = dataclasses.replace(
            manifest, runtime=RuntimeSpec(manifest.runtime.name, device, {})
        )
        paths.append(folder)
        manifests.append(manifest)
    return ModelGroup(
        key="m@32x32",
        name="tiny",
        config={},
        spec=manifests[0].preprocess,
        checkpoint=root / "ckpt",
        checkpoint_note="given",
        artifacts=paths,
        manifests=manifests,
    )


def _ids(cfg: BenchConfig, group: ModelGroup) -> list[str]:
    specs = plan_rows(cfg, [group], {group.key: ("ref.npz", None)}, threads=1)
    return [s.id for s in specs]


def test_cuda_graph_adds_a_row_only_for_cuda_artifacts_of_graph_runtimes(tmp_path):
    group = _group(tmp_path)
    cfg = BenchConfig(device="cuda", variants=("eager-fp32", "fast-fp16"), cuda_graph=True)
    assert _ids(cfg, group) == [
        "m@32x32_torch-eager-fp32@cuda",
        "m@32x32_torch-fast-fp16@cuda",
        "m_aoti-cuda-fp16@cuda",
        "m_aoti-cuda-fp16+graph@cuda",
        "m_aoti@cuda",
        "m_onnx@cuda",
    ]
    specs = plan_rows(cfg, [group], {group.key: ("ref.npz", None)}, threads=1)
    graph = next(s for s in specs if s.id.endswith("+graph@cuda"))
    assert graph.cuda_graph and RowSpec.from_dict(graph.to_dict()) == graph
    assert not any(s.cuda_graph for s in specs if s is not graph)


def test_without_cuda_graph_every_artifact_has_one_row_and_all_variants_run(tmp_path):
    group = _group(tmp_path)
    ids = _ids(BenchConfig(device="cuda"), group)
    assert not any("+graph" in i for i in ids)
    assert [i for i in ids if "_torch-" in i] == [
        f"m@32x32_torch-{v}@cuda"
        for v in ("eager-fp32", "eager-fp16", "graph-fp32", "graph-fp16", "fast-fp16")
    ]


def test_graph_row_label_names_the_target_and_the_replay(tmp_path):
    group = _group(tmp_path)
    cfg = BenchConfig(device="cuda", variants=("eager-fp32",), cuda_graph=True)
    spec = plan_rows(cfg, [group], {group.key: ("ref.npz", None)}, threads=1)[2]
    row = failed_row(dataclasses.replace(spec, cuda_graph=True), "not_executed", "no GPU")
    assert row["variant"] == GRAPH_VARIANT
    assert row_label(row) == f"aoti-fp32 + {GRAPH_VARIANT}"  # the test manifest's target


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"variants": ("warp-speed",)}, "unknown --variants entry 'warp-speed'"),
        ({"variants": ("fast-fp16",)}, "torch variant fast-fp16 runs on cuda, not cpu"),
        ({"cuda_graph": True}, "--cuda-graph needs --device cuda"),
    ],
)
def test_bad_variant_or_graph_option_is_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        BenchConfig(device="cpu", **kwargs)


def test_cli_reports_a_bad_variant_in_one_line(tmp_path, capsys):
    assert main(["--variants", "eager-fp32,nope", "--out", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[0]] and err[0].startswith("error: unknown --variants entry 'nope'")
