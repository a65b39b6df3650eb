"""Export orchestration: one job (model + options), many targets, each staged and gated.

For every target: build into a staging directory beside the final one, run
the parity gate on the staged files, write ``manifest.json`` and
``preprocess.json``, then move the directory into place. Any failure (build
error, parity failure, interrupt) removes the staging directory, so nothing
partial is ever left at ``<out>/<model>_<target>/``.

ONNX graphs, the PyTorch reference logits and ONNX Runtime parity results are
computed once per job and shared by the targets of an ``all`` run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from qtseg.export import manifest as mf
from qtseg.export.int8_context import Int8Options
from qtseg.export.onnx_fp16 import BlockList, block_list_for
from qtseg.export.parity import ParityResult, SampleSet, check_parity, load_samples, run_logits
from qtseg.export.targets import GRAPHS, Target
from qtseg.export.wrapper import ExportIO
from torch import nn

from qtseg.atomic import atomic_write_bytes, staging_dir
from qtseg.backends.base import Backend, BackendUnavailable, NotExecutableHere, TensorMeta
from qtseg.checkpoint import CheckpointInfo
from qtseg.preprocess import PreprocessSpec


class ParityFailure(RuntimeError):
    """The parity gate rejected an artifact; carries the results."""

    def __init__(self, target: str, results: list[ParityResult]) -> None:
        self.results = results
        failed = [r for r in results if not r.passed]
        super().__init__(f"{target}: parity gate failed: " + " | ".join(r.summary() for r in failed))


@dataclass(frozen=True)
class ExportOptions:
    """User options of one export run (defaults = CLI defaults).

    Attributes:
        batch: static batch size.
        dynamic_batch: maximum batch of a dynamic batch dimension (0 = static).
        dynamic_hw: free height/width (multiples of 32).
        opset: ONNX opset (>= 17).
        simplify: run onnxslim.
        io_fp16: float16 graph I/O for ``onnx-fp16``.
        verify: run the parity gate.
        samples: folder of sample images (default: the bundled samples).
        num_samples: images used by the gate.
        workspace_mib: TensorRT workspace limit.
        compute_capability: TensorRT-RTX target architectures.
        timing_cache: TensorRT timing-cache file.
        int8: INT8 settings (calibration set, method, accuracy budget) for
            the INT8 targets; ``None`` when no calibration set was given.
    """

    batch: int = 1
    dynamic_batch: int = 0
    dynamic_hw: bool = False
    opset: int = 17
    simplify: bool = True
    io_fp16: bool = False
    verify: bool = True
    samples: str | None = None
    num_samples: int = 8
    workspace_mib: int = 1024
    compute_capability: tuple[str, ...] = ()
    timing_cache: str | None = None
    int8: Int8Options | None = None

    def non_default(self) -> set[str]:
        """Names of options set to something other than the default."""
        default = ExportOptions()
        names = {f.name for f in dataclasses.fields(self) if getattr(self, f.name) != getattr(default, f.name)}
        if "workspace_mib" in names:
            names = (names - {"workspace_mib"}) | {"workspace"}
        return names - {"num_samples", "int8"}


class Progress:
    """One line per step on stderr: ``[target] step ... (1.2 s)``."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.prefix = ""

    def info(self, message: str) -> None:
        """Print one line."""
        if not self.quiet:
            print(f"[{self.prefix}] {message}" if self.prefix else message, file=self.stream, flush=True)

    @contextmanager
    def step(self, message: str) -> Iterator[None]:
        """Print the step, run it, print its time (or that it failed)."""
        self.info(f"{message} ...")
        start = time.perf_counter()
        try:
            yield
        except BaseException:
            self.info(f"  failed after {time.perf_counter() - start:.1f} s")
            raise
        self.info(f"  done in {time.perf_counter() - start:.1f} s")


@dataclass
class ParityCheck:
    """One backend run of the gate: a label and a function opening the backend."""

    label: str
    open: Callable[[], Backend]


@dataclass
class BuildResult:
    """What a family builder wrote into the staging directory."""

    files: dict[str, str]
    inputs: list[TensorMeta]
    outputs: list[TensorMeta]
    checks: list[ParityCheck]
    extra: dict[str, Any] = field(default_factory=dict)
    built: str = ""


@dataclass
class TargetOutcome:
    """Result of one target: ``ok``, ``failed`` or ``skipped``."""

    target: str
    status: str
    path: Path | None = None
    message: str = ""
    parity: list[ParityResult] = field(default_factory=list)
    seconds: float = 0.0


class ExportJob:
    """A model, its checkpoint facts and the options: everything targets share.

    Arguments:
        model: the model in eval mode (float32, CPU).
        spec: preprocessing of the artifacts (its ``input_size`` is the export size).
        info: the checkpoint's :class:`CheckpointInfo`.
        options: :class:`ExportOptions`.
        progress: where step lines go.
        fp16_block_list: nodes kept in FP32 by FP16 graphs (default: the
            model's, :func:`qtseg.export.onnx_fp16.block_list_for`).
    """

    def __init__(
        self,
        model: nn.Module,
        spec: PreprocessSpec,
        info: CheckpointInfo,
        options: ExportOptions,
        *,
        progress: Progress | None = None,
        fp16_block_list: BlockList | None = None,
    ) -> None:
        self.model = model
        self.spec = spec
        self.info = info
        self.options = options
        self.progress = progress or Progress()
        if fp16_block_list is None:
            fp16_block_list = block_list_for(info.model)
        self.fp16_block_list = fp16_block_list
        self.notes: dict[str, Any] = {}
        self.io_spec = ExportIO(
            input_size=spec.input_size,
            num_classes=spec.num_classes,
            batch=options.batch,
            dynamic_batch=options.dynamic_batch > 0,
            dynamic_hw=options.dynamic_hw,
        )
        self._workdir = tempfile.TemporaryDirectory(prefix="qtseg-export-")
        self._protos: dict[tuple[str, bool], Any] = {}
        self._bytes: dict[tuple[str, bool], bytes] = {}
        self._files: dict[str, Path] = {}
        self._samples: SampleSet | None = None
        self._reference: list[np.ndarray] | None = None

    @property
    def model_name(self) -> str:
        """Registered model name, e.g. ``"qtseg-v2"``."""
        return self.info.model

    def batch_label(self) -> str:
        """``"batch 1"`` or ``"dynamic batch 1..8"`` (+ dynamic H/W)."""
        o = self.options
        text = f"dynamic batch 1..{o.dynamic_batch}" if o.dynamic_batch else f"batch {o.batch}"
        return text + (", dynamic H/W" if o.dynamic_hw else "")

    def close(self) -> None:
        """Remove the job's temporary files."""
        self._workdir.cleanup()

    # -- ONNX graphs -------------------------------------------------------
    def graph_proto(self, key: str, *, io_fp16: bool = False) -> Any:
        """The (unstamped) ONNX graph ``key`` of :data:`GRAPHS`, built once."""
        cache_key = (key, io_fp16)
        if cache_key not in self._protos:
            self._protos[cache_key] = GRAPHS[key](self, io_fp16=io_fp16)
        return self._protos[cache_key]

    def graph_bytes(self, key: str, *, io_fp16: bool = False) -> bytes:
        """Deterministic bytes of graph ``key`` with qtseg metadata_props."""
        import onnx
        from qtseg.export import onnx_graph

        cache_key = (key, io_fp16)
        if cache_key not in self._bytes:
            model = onnx.ModelProto()
            model.CopyFrom(self.graph_proto(key, io_fp16=io_fp16))
            onnx_graph.set_metadata(model, self.onnx_metadata(key, model, io_fp16=io_fp16))
            self._bytes[cache_key] = onnx_graph.serialize(model)
        return self._bytes[cache_key]

    def graph_file(self, key: str) -> Path:
        """Graph ``key`` written to the job's temp folder (for converters reading files)."""
        if key not in self._files:
            path = Path(self._workdir.name) / f"graph-{key}.onnx"
            atomic_write_bytes(path, self.graph_bytes(key))
            self._files[key] = path
        return self._files[key]

    def graph_io(self, key: str, *, io_fp16: bool = False) -> tuple[list[TensorMeta], list[TensorMeta]]:
        """Input and output metadata of graph ``key``."""
        import onnx

        model = self.graph_proto(key, io_fp16=io_fp16)

        def meta(value: Any) -> TensorMeta:
            t = value.type.tensor_type
            dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name
            return TensorMeta(value.name, tuple(d.dim_value if not d.dim_param else -1 for d in t.shape.dim), dtype)

        return [meta(v) for v in model.graph.input], [meta(v) for v in model.graph.output]

    def graph_extra(self, key: str, *, io_fp16: bool = False) -> dict[str, Any]:
        """Manifest items describing graph ``key`` (opset, simplifier, FP16 block list)."""
        extra: dict[str, Any] = {
            "onnx": {
                "opset": self.options.opset,
                "exporter": "torch.onnx.export (TorchScript, dynamo=False)",
                "simplifier": "onnxslim" if self.options.simplify else None,
                "graph": key,
                "sha256": hashlib.sha256(self.graph_bytes(key, io_fp16=io_fp16)).hexdigest(),
            }
        }
        if key == "fp16":
            extra["fp16"] = {
                "fp32_block_list": self.fp16_block_list.to_dict(),
                "io_dtype": "float16" if io_fp16 else "float32",
                "nodes": self.notes.get("fp16_nodes"),
            }
        return extra

    def onnx_metadata(self, key: str, model: Any, *, io_fp16: bool = False) -> dict[str, Any]:
        """Key manifest items for the ONNX ``metadata_props`` (deterministic)."""
        versions = mf.tool_versions(("torch", "onnx", "onnxslim"))
        items: dict[str, Any] = {
            "schema": mf.SCHEMA,
            "model": self.model_name,
            "config_hash": mf.config_hash(self.model_name, self.info.config),
            "checkpoint_sha256": self.info.weights_sha256,
            "graph": key,
            "precision": key.split("-")[0],
            "preprocess": self.spec.to_dict(),
            "io_dtype": "float16" if io_fp16 else "float32",
            "versions": versions,
        }
        if key == "fp16":
            items["fp32_block_list"] = self.fp16_block_list.to_dict()
        return items

    def rt_info(self, target: Target) -> dict[str, str]:
        """Key manifest items for OpenVINO ``rt_info`` (strings)."""
        import json

        return {
            "model": self.model_name,
            "target": target.name,
            "precision": target.precision,
            "config_hash": mf.config_hash(self.model_name, self.info.config),
            "checkpoint_sha256": self.info.weights_sha256,
            "preprocess": json.dumps(self.spec.to_dict(), sort_keys=True),
        }

    # -- parity ------------------------------------------------------------
    def samples(self) -> SampleSet:
        """The gate's sample images, loaded once."""
        if self._samples is None:
            import qtseg

            folder = self.options.samples or (qtseg.SAMPLES_DIR / "images")
            with self.progress.step(f"load {self.options.num_samples} sample images from {folder}"):
                self._samples = load_samples(folder, self.spec, limit=self.options.num_samples)
        return self._samples

    def reference_logits(self) -> list[np.ndarray]:
        """PyTorch FP32 logits of the samples (eval mode), computed once."""
        if self._reference is None:
            from qtseg.backends.torch_backend import TorchBackend

            samples = self.samples()
            with (
                self.progress.step("PyTorch FP32 reference logits"),
                TorchBackend(self.model, input_size=self.spec.input_size) as ref,
            ):
                self._reference = run_logits(ref, samples)
        return self._reference

    def ort_check(self, path: Path, label: str) -> ParityCheck:
        """Parity check running ``path`` on ONNX Runtime CPU."""

        def open_ort() -> Backend:
            from qtseg.backends.onnxruntime_backend import OnnxRuntimeBackend

            return OnnxRuntimeBackend(path, device="cpu")

        return ParityCheck(label, open_ort)

    def run_check(self, check: ParityCheck, precision: str) -> ParityResult:
        """Open the backend, run the samples, compare with the reference.

        Raises:
            NotExecutableHere, BackendUnavailable: from opening the backend.
        """
        samples, reference = self.samples(), self.reference_logits()
        with check.open() as backend, self.progress.step(f"parity: {check.label}"):
            result = check_parity(
                reference, backend, samples, self.spec, precision=precision,
                label=check.label, reference_name="torch fp32 (cpu)",
            )
        self.progress.info(result.summary())
        return result


def export_target(job: ExportJob, target: Target, out_dir: Path) -> TargetOutcome:
    """Build, verify and place one target's artifact directory.

    Returns:
        The outcome; ``failed`` when the build or the gate failed (nothing is
        left at the final path in that case).
    """
    final = Path(out_dir) / f"{job.model_name}_{target.name}"
    job.progress.prefix = target.name
    start = time.perf_counter()
    parity: list[ParityResult] = []
    try:
        with staging_dir(final) as staging:
            result = target.build(job, target, staging)
            verified, not_run = [], []
            if job.options.verify:
                for check in result.checks:
                    try:
                        parity.append(job.run_check(check, target.precision))
                        verified.append(check.label)
                    except (NotExecutableHere, BackendUnavailable) as exc:
                        note = f"{check.label}: {exc}"
                        not_run.append(note)
                        job.progress.info(note)
                if any(not r.passed for r in parity):
                    raise ParityFailure(target.name, parity)
            else:
                job.progress.info("WARNING: --no-verify: the artifact was NOT checked against PyTorch")
                not_run.append("parity gate skipped (--no-verify)")
            manifest = _manifest(job, target, result, parity, verified, not_run)
            mf.write_manifest(staging, manifest)
            job.spec.save(staging)
    except ParityFailure as exc:
        return TargetOutcome(target.name, "failed", None, str(exc), parity, time.perf_counter() - start)
    job.progress.info(f"wrote {final}")
    return TargetOutcome(target.name, "ok", final, result.built, parity, time.perf_counter() - start)


def _manifest(
    job: ExportJob,
    target: Target,
    result: BuildResult,
    parity: list[ParityResult],
    verified: list[str],
    not_run: list[str],
) -> dict[str, Any]:
    samples = job._samples
    summary = [result.built or "artifact written"]
    if verified:
        summary.append("numerics checked with " + "; ".join(verified))
    summary.extend(not_run)
    manifest: dict[str, Any] = {
        "schema": mf.SCHEMA,
        "format": target.format,
        "target": target.name,
        "precision": target.precision,
        "files": result.files,
        "inputs": [t.to_dict() for t in result.inputs],
        "outputs": [t.to_dict() for t in result.outputs],
        "preprocess": job.spec.to_dict(),
        "model": {
            "name": job.model_name,
            "config": job.info.config,
            "config_hash": mf.config_hash(job.model_name, job.info.config),
            "checkpoint": str(job.info.path),
            "checkpoint_sha256": job.info.weights_sha256,
        },
        "export": {
            "batch": None if job.options.dynamic_batch else job.options.batch,
            "dynamic_batch_max": job.options.dynamic_batch or None,
            "dynamic_hw": job.options.dynamic_hw,
            "opset": job.options.opset,
        },
        "versions": mf.tool_versions(),
        "git_sha": mf.git_sha(),
        "calibration": None,
        "parity": {
            "verified": job.options.verify,
            "passed": all(r.passed for r in parity) if parity else None,
            "samples": {"dir": str(job.options.samples or "bundled"), "names": samples.names if samples else []},
            "results": [r.to_dict() for r in parity],
        },
        "execution": {
            "built_on": mf.host_description(),
            "verified_with": "; ".join(verified) or None,
            "not_run": "; ".join(not_run) or None,
            "summary": "; ".join(summary),
        },
    }
    manifest.update(result.extra)
    return manifest
