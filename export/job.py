"""What every export target's builder shares: the job, the build result, the outcome.

Builders import this module; it imports no builder and not the target table
(``targets`` names builders by module and loads them on use), so the import
graph of ``qtseg.export`` has no cycle. An :class:`ExportJob` holds what the targets
of one run share: the model, its checkpoint facts, the options, the ONNX
graphs (built once), the sample images and the PyTorch reference logits.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from torch import nn

import qtseg
from qtseg.atomic import atomic_write_bytes
from qtseg.backends.base import Backend
from qtseg.checkpoint import CheckpointInfo
from qtseg.evaluation import ParityResult, SampleSet, check_parity, infer_logits
from qtseg.export import onnx_graph
from qtseg.export.onnx_fp16 import BlockList, block_list_for, fp16_graph
from qtseg.export.options import ExportOptions
from qtseg.export.target import GRAPH_KEYS, Target
from qtseg.export.wrapper import ExportIO
from qtseg.manifest import SCHEMA, TensorMeta
from qtseg.preprocess import PreprocessSpec
from qtseg.provenance import bytes_sha256, config_hash, package_versions


class ParityFailure(RuntimeError):
    """The parity gate rejected an artifact; carries the results."""

    def __init__(self, target: str, results: list[ParityResult]) -> None:
        self.results = results
        failed = [r for r in results if not r.passed]
        super().__init__(f"{target}: parity gate failed: " + " | ".join(r.summary() for r in failed))


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
    """What a family builder wrote into the staging directory.

    Attributes:
        files: role -> path relative to the staging directory, for every file
            the builder wrote (the pipeline hashes them and adds ``preprocess``).
        inputs, outputs: tensor metadata of the artifact.
        checks: parity checks to run on the staged files.
        properties: runtime properties loaders must apply (``runtime.properties``).
        details: target-specific manifest blocks (``onnx``, ``fp16``, ``tensorrt``...).
        calibration: the calibration set summary of an INT8 artifact.
        built: one line saying what was built.
    """

    files: dict[str, str]
    inputs: list[TensorMeta]
    outputs: list[TensorMeta]
    checks: list[ParityCheck]
    properties: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None
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

    @property
    def workdir(self) -> Path:
        """The job's temporary folder (removed by :meth:`close`)."""
        return Path(self._workdir.name)

    def close(self) -> None:
        """Remove the job's temporary files."""
        self._workdir.cleanup()

    # -- ONNX graphs -------------------------------------------------------
    def graph_proto(self, key: str, *, io_fp16: bool = False) -> Any:
        """The (unstamped) ONNX graph ``key`` (``"fp32"`` or ``"fp16"``), built once."""
        if key not in GRAPH_KEYS:
            raise ValueError(f"unknown graph {key!r}; known: {', '.join(GRAPH_KEYS)}")
        cache_key = (key, io_fp16)
        if cache_key not in self._protos:
            if key == "fp32":
                if io_fp16:
                    raise ValueError("--io-fp16 applies to FP16 graphs only")
                self._protos[cache_key] = onnx_graph.fp32_graph(
                    self.model, self.io_spec, opset=self.options.opset,
                    slim=self.options.simplify, step=self.progress.step,
                    batch_label=self.batch_label(),
                )
            else:
                model, counts = fp16_graph(
                    self.graph_proto("fp32"), self.io_spec, block=self.fp16_block_list,
                    io_fp16=io_fp16, step=self.progress.step,
                )
                self.notes.setdefault("fp16_nodes", counts)
                self._protos[cache_key] = model
        return self._protos[cache_key]

    def graph_bytes(self, key: str, *, io_fp16: bool = False) -> bytes:
        """Deterministic bytes of graph ``key`` with qtseg metadata_props."""
        import onnx

        cache_key = (key, io_fp16)
        if cache_key not in self._bytes:
            model = onnx.ModelProto()
            model.CopyFrom(self.graph_proto(key, io_fp16=io_fp16))
            onnx_graph.set_metadata(model, self.onnx_metadata(key, io_fp16=io_fp16))
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
        return onnx_graph.io_metadata(self.graph_proto(key, io_fp16=io_fp16))

    def graph_details(self, key: str, *, io_fp16: bool = False) -> dict[str, Any]:
        """Manifest ``details`` describing graph ``key`` (opset, simplifier, FP16 block list)."""
        details: dict[str, Any] = {
            "onnx": {
                "opset": self.options.opset,
                "exporter": "torch.onnx.export (TorchScript, dynamo=False)",
                "simplifier": "onnxslim" if self.options.simplify else None,
                "graph": key,
                "sha256": bytes_sha256(self.graph_bytes(key, io_fp16=io_fp16)),
            }
        }
        if key == "fp16":
            details["fp16"] = {
                "fp32_block_list": self.fp16_block_list.to_dict(),
                "io_dtype": "float16" if io_fp16 else "float32",
                "nodes": self.notes.get("fp16_nodes"),
            }
        return details

    def onnx_metadata(self, key: str, *, io_fp16: bool = False) -> dict[str, Any]:
        """Key manifest items for the ONNX ``metadata_props`` (deterministic)."""
        items: dict[str, Any] = {
            "schema": SCHEMA,
            "model": self.model_name,
            "config_hash": config_hash(self.model_name, self.info.config),
            "checkpoint_sha256": self.info.weights_sha256,
            "graph": key,
            "precision": key.split("-")[0],
            "preprocess": self.spec.to_dict(),
            "io_dtype": "float16" if io_fp16 else "float32",
            "versions": package_versions(("torch", "onnx", "onnxslim")),
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
            "config_hash": config_hash(self.model_name, self.info.config),
            "checkpoint_sha256": self.info.weights_sha256,
            "preprocess": json.dumps(self.spec.to_dict(), sort_keys=True),
        }

    # -- parity ------------------------------------------------------------
    @property
    def loaded_samples(self) -> SampleSet | None:
        """The gate's samples if they were loaded (``None`` when the gate did not run)."""
        return self._samples

    def samples(self) -> SampleSet:
        """The gate's sample images, loaded once."""
        if self._samples is None:
            folder = self.options.samples or (qtseg.SAMPLES_DIR / "images")
            with self.progress.step(f"load {self.options.num_samples} sample images from {folder}"):
                self._samples = SampleSet.from_folder(folder, self.spec, limit=self.options.num_samples)
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
                self._reference = infer_logits(ref, samples.x)
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
