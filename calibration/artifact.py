"""The calibration-set artifact: one folder, reusable by every backend.

```
<set>/x.npy            # (N, 3, H, W) float32, preprocessed with the spec below
<set>/manifest.json    # schema qtseg.calibration/1: set id, sources + hashes, rule, versions
<set>/preprocess.json  # the PreprocessSpec the tensors were made with
```

The set id is derived from the tensor bytes, the image names and the spec
(not from the creation time), so rebuilding the same selection gives the
same id; every INT8 artifact records it in its manifest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qtseg.atomic import atomic_write_text, staging_dir, strict_json_loads
from qtseg.preprocess import PreprocessSpec, SpecError
from qtseg.provenance import file_sha256

SCHEMA = "qtseg.calibration/1"
DATA_FILENAME = "x.npy"
MANIFEST_FILENAME = "manifest.json"
MIN_IMAGES = 8


class CalibrationError(ValueError):
    """A calibration set that cannot be used (empty, too small, wrong spec, NaN/Inf, ...)."""


def _spec_key(spec: PreprocessSpec) -> dict[str, Any]:
    """The parts of a spec that change the tensors (class names do not)."""
    data = spec.to_dict()
    data.pop("class_names", None)
    data.pop("num_classes", None)
    return data


def compute_set_id(x: np.ndarray, names: list[str], spec: PreprocessSpec) -> str:
    """``cal-`` + 16 hex digits of SHA-256 over tensor bytes, names and spec."""
    digest = hashlib.sha256()
    digest.update(hashlib.sha256(np.ascontiguousarray(x).tobytes()).digest())
    digest.update(json.dumps({"names": names, "spec": _spec_key(spec)}, sort_keys=True).encode())
    return "cal-" + digest.hexdigest()[:16]


@dataclass
class CalibrationSet:
    """Preprocessed calibration tensors plus their provenance.

    Attributes:
        x: ``(N, 3, H, W)`` float32 model inputs.
        spec: the preprocessing they were made with.
        names: one image name per row of ``x``.
        manifest: the provenance written to ``manifest.json``.
        path: the folder it was loaded from / saved to, if any.
    """

    x: np.ndarray
    spec: PreprocessSpec
    names: list[str]
    manifest: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def set_id(self) -> str:
        """Content-derived id (see module doc)."""
        if "set_id" not in self.manifest:
            self.manifest["set_id"] = compute_set_id(self.x, self.names, self.spec)
        return self.manifest["set_id"]

    def __len__(self) -> int:
        return int(self.x.shape[0]) if self.x.ndim else 0

    def batches(self, batch_size: int = 1) -> Iterator[np.ndarray]:
        """``(b, 3, H, W)`` float32 slices in order (the last one may be smaller)."""
        for start in range(0, len(self), batch_size):
            yield np.ascontiguousarray(self.x[start : start + batch_size], dtype=np.float32)

    def summary(self) -> dict[str, Any]:
        """What an INT8 artifact's manifest records about the set it was calibrated with."""
        return {
            "set_id": self.set_id,
            "path": str(self.path) if self.path else None,
            "count": len(self),
            "source": self.manifest.get("source"),
            "selection": self.manifest.get("selection"),
        }


def validate_set(calib: CalibrationSet, spec: PreprocessSpec | None = None, *, min_images: int = MIN_IMAGES) -> None:
    """Refuse a set that cannot calibrate a model with ``spec``.

    Raises:
        CalibrationError: empty, fewer than ``min_images`` images, a tensor
            shape or preprocessing that differs from ``spec``, or NaN/Inf values.
    """
    x = calib.x
    where = f"calibration set {calib.path}" if calib.path else "calibration set"
    if x.ndim != 4 or x.shape[0] == 0:
        raise CalibrationError(f"{where} is empty (tensor shape {list(x.shape)})")
    if x.shape[0] < min_images:
        raise CalibrationError(
            f"{where} has {x.shape[0]} image(s); at least {min_images} are needed for stable INT8 ranges"
        )
    if x.dtype != np.float32:
        raise CalibrationError(f"{where} holds {x.dtype} data; expected float32")
    if spec is not None:
        want = _spec_key(spec)
        have = _spec_key(calib.spec)
        diff = sorted(k for k in want if want[k] != have.get(k))
        if diff:
            details = ", ".join(f"{k}: set {have.get(k)!r} vs model {want[k]!r}" for k in diff)
            raise CalibrationError(f"{where} was preprocessed with a different spec than the model's ({details})")
        expected = (3, *spec.input_size)
        if tuple(x.shape[1:]) != expected:
            raise CalibrationError(f"{where} has tensors of shape {list(x.shape[1:])}; the model needs {list(expected)}")
    bad = [i for i in range(x.shape[0]) if not np.isfinite(x[i]).all()]
    if bad:
        name = calib.names[bad[0]] if bad[0] < len(calib.names) else f"#{bad[0]}"
        raise CalibrationError(f"{where} contains NaN/Inf values in {len(bad)} image(s), e.g. {name}")


def save_set(calib: CalibrationSet, out_dir: str | Path) -> Path:
    """Write the set folder atomically (replacing an existing one); return its path."""
    out_dir = Path(out_dir)
    manifest = dict(calib.manifest)
    manifest["schema"] = SCHEMA
    manifest["set_id"] = calib.set_id
    manifest["count"] = len(calib)
    manifest["names"] = list(calib.names)
    manifest["preprocess"] = calib.spec.to_dict()
    with staging_dir(out_dir) as staging:
        np.save(staging / DATA_FILENAME, np.ascontiguousarray(calib.x, dtype=np.float32))
        manifest["data"] = {
            "file": DATA_FILENAME,
            "shape": list(calib.x.shape),
            "dtype": "float32",
            "sha256": file_sha256(staging / DATA_FILENAME),
        }
        atomic_write_text(staging / MANIFEST_FILENAME, json.dumps(manifest, indent=2) + "\n")
        calib.spec.save(staging)
    calib.manifest = manifest
    calib.path = out_dir
    return out_dir


def is_set_dir(path: str | Path) -> bool:
    """True when ``path`` holds a calibration-set manifest."""
    file = Path(path) / MANIFEST_FILENAME
    if not file.is_file():
        return False
    try:
        return json.loads(file.read_text()).get("schema") == SCHEMA
    except (OSError, json.JSONDecodeError, AttributeError):
        return False


def load_set(path: str | Path, *, verify_hash: bool = True) -> CalibrationSet:
    """Read a set folder written by :func:`save_set`.

    Raises:
        CalibrationError: missing or malformed files, or tensor bytes that do
            not match the recorded hash.
    """
    path = Path(path)
    file = path / MANIFEST_FILENAME
    try:
        manifest = strict_json_loads(file.read_bytes())
    except FileNotFoundError:
        raise CalibrationError(f"{path} is not a calibration set (no {MANIFEST_FILENAME})") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise CalibrationError(f"malformed {file}: {exc}") from None
    if not isinstance(manifest, dict):
        raise CalibrationError(f"malformed {file}: not a JSON object")
    if manifest.get("schema") != SCHEMA:
        raise CalibrationError(f"{file}: unsupported schema {manifest.get('schema')!r} (expected {SCHEMA})")
    data_file = path / manifest.get("data", {}).get("file", DATA_FILENAME)
    if not data_file.is_file():
        raise CalibrationError(f"calibration set {path} has no tensor file {data_file.name}")
    if verify_hash and manifest.get("data", {}).get("sha256") not in (None, file_sha256(data_file)):
        raise CalibrationError(f"{data_file} does not match the SHA-256 recorded in {file} (modified or corrupt)")
    try:
        spec = PreprocessSpec.load(path)
        x = np.load(data_file, mmap_mode="r", allow_pickle=False)
    except (SpecError, ValueError, OSError) as exc:
        raise CalibrationError(f"cannot read calibration set {path}: {exc}") from None
    names = list(manifest.get("names", []))
    return CalibrationSet(x=x, spec=spec, names=names, manifest=manifest, path=path)
