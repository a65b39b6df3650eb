"""The one preprocessing specification shared by training, export, bench and C++.

A :class:`PreprocessSpec` is serialized as ``preprocess.json`` next to every
checkpoint and artifact. The arithmetic is deliberately simple and written out
step by step in float32 so that the C++ library (``cpp/src/preprocess.cpp``)
reproduces it bit for bit:

1. decode to ``(H, W, 3)`` uint8 RGB (:func:`qtseg.imageio.read_image`);
2. plain resize ("stretch", no letterbox) to ``input_size`` with bilinear
   interpolation, half-pixel centres (``align_corners=False``), edge clamping
   and *no* antialiasing -- the same sampling as ``cv2.INTER_LINEAR`` and
   ``F.interpolate(..., antialias=False)``;
3. ``x = (v / scale - mean[c]) / std[c]`` in float32;
4. reorder channels (``RGB`` or ``BGR``) and lay out as NCHW.

Plain resize was chosen over letterbox because the papers train on images
resized to 512x512 without padding; predictions are mapped back to each
image's own size by resizing the logits with the same bilinear rule and taking
the arg-max (:meth:`PreprocessSpec.postprocess`).

For speed the resize runs over blocks of output rows and interpolates each
source row along x once, however many output rows use it; every value is still
the contract's per-pixel formula, bit for bit (``tests/test_preprocess.py``
compares with a per-pixel oracle, ``tests/cpp/`` with the C++ code). No state
is shared between calls, so several threads may preprocess at once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from qtseg.atomic import atomic_write_text, strict_json_loads
from qtseg.imageio import ImageLike, read_image

SCHEMA = "qtseg.preprocess/1"
PREPROCESS_FILENAME = "preprocess.json"


class SpecError(ValueError):
    """A preprocessing spec that is malformed or does not match its use."""


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _is_float32(value: float) -> bool:
    """Finite, and finite once rounded to float32 (the arithmetic's type; C++ checks the same)."""
    return math.isfinite(value) and abs(value) <= _FLOAT32_MAX


def _axis_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of a half-pixel bilinear resize along one axis.

    Returns ``(i0, i1, w1)`` with ``i0, i1`` int64 indices and ``w1`` float32
    weights of the second sample (the first gets ``1 - w1``).
    """
    scale = np.float32(in_size) / np.float32(out_size)
    dst = np.arange(out_size, dtype=np.float32)
    src = (dst + np.float32(0.5)) * scale - np.float32(0.5)
    src = np.maximum(src, np.float32(0.0))
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    w1 = (src - i0.astype(np.float32)).astype(np.float32)
    return i0, i1, w1


# Elements of one (rows, C, out_w) float32 block buffer: three such buffers stay
# in a core's L2 cache, and a 512x512x3 image needs about a dozen blocks.
_BLOCK_ELEMENTS = 1 << 15


def _resize_blocks(
    src: np.ndarray, out_hw: Sequence[int]
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Bilinear resize of an ``(H, C, W)`` array, yielded in blocks of output rows.

    Computes the contract's arithmetic exactly: each source row needed by a
    block is interpolated along x once (``p[x0] * wx0 + p[x1] * wx1``), then
    output rows along y (``top * wy0 + bottom * wy1``), every operation a
    separate float32 ufunc so each product and sum is rounded on its own.

    Args:
        src: ``(H, C, W)`` array (any strides), uint8 or float32.
        out_hw: output ``(out_h, out_w)``.

    Yields:
        ``(r0, r1, values)``: output rows ``r0:r1`` as a new ``(r1 - r0, C, out_w)``
        float32 array that the caller may overwrite.
    """
    if src.dtype not in (np.uint8, np.float32):
        src = src.astype(np.float32)
    in_h, channels, in_w = src.shape
    out_h, out_w = int(out_hw[0]), int(out_hw[1])
    y0, y1, wy1 = _axis_weights(in_h, out_h)
    x0, x1, wx1 = _axis_weights(in_w, out_w)
    wx0 = np.float32(1.0) - wx1
    wy0 = np.float32(1.0) - wy1
    step = max(1, _BLOCK_ELEMENTS // (channels * out_w))
    for r0 in range(0, out_h, step):
        r1 = min(r0 + step, out_h)
        s0, s1 = int(y0[r0]), int(y1[r1 - 1]) + 1
        rows = src[s0:s1]
        gathered = np.take(rows, x0, axis=2)
        across = np.multiply(gathered, wx0)  # (s1 - s0, C, out_w) float32
        np.take(rows, x1, axis=2, out=gathered)
        across += np.multiply(gathered, wx1)
        values = np.take(across, y0[r0:r1] - s0, axis=0)
        values *= wy0[r0:r1, None, None]
        bottom = np.take(across, y1[r0:r1] - s0, axis=0)
        bottom *= wy1[r0:r1, None, None]
        values += bottom
        yield r0, r1, values


def resize_bilinear(array: np.ndarray, out_hw: Sequence[int]) -> np.ndarray:
    """Bilinear resize of an ``(H, W, C)`` or ``(H, W)`` array to float32.

    Interpolates along x first, then y, each as ``a * (1 - w) + b * w`` in
    float32 -- the exact order the C++ code uses.
    """
    squeeze = array.ndim == 2
    src = array[:, :, None] if squeeze else array
    out_h, out_w = int(out_hw[0]), int(out_hw[1])
    out = np.empty((out_h, out_w, src.shape[2]), dtype=np.float32)
    for r0, r1, values in _resize_blocks(src.transpose(0, 2, 1), (out_h, out_w)):
        out[r0:r1] = values.transpose(0, 2, 1)
    return out[:, :, 0] if squeeze else out


@dataclass(frozen=True)
class PreprocessSpec:
    """How an image becomes the model's input tensor, and logits become a mask.

    Attributes:
        input_size: model input ``(height, width)``, each a multiple of 32.
        resize: ``"stretch"`` (plain resize, aspect ratio not kept).
        interpolation: ``"bilinear"`` (half-pixel centres, no antialias).
        channel_order: ``"RGB"`` or ``"BGR"`` order of the input tensor.
        scale: pixel values are divided by this (255 maps uint8 to [0, 1]).
        mean: per-channel mean subtracted after scaling (in tensor order).
        std: per-channel std divided after subtracting the mean.
        layout: ``"NCHW"``.
        dtype: ``"float32"``.
        num_classes: number of output channels of the logits.
        class_names: one name per class, background first.
    """

    input_size: tuple[int, int] = (512, 512)
    resize: str = "stretch"
    interpolation: str = "bilinear"
    channel_order: str = "RGB"
    scale: float = 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    layout: str = "NCHW"
    dtype: str = "float32"
    num_classes: int = 2
    class_names: tuple[str, ...] = field(default=("background", "foreground"))

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
            object.__setattr__(self, "scale", float(self.scale))
            object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
            object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        except (TypeError, ValueError, OverflowError) as exc:
            raise SpecError(f"input_size, scale, mean and std must be numbers ({exc})") from None
        object.__setattr__(self, "class_names", tuple(str(v) for v in self.class_names))
        h, w = self.input_size
        if len(self.input_size) != 2 or h <= 0 or w <= 0 or h % 32 or w % 32:
            raise SpecError(f"input_size must be two positive multiples of 32, got {self.input_size}")
        if self.resize != "stretch":
            raise SpecError(f"unsupported resize mode {self.resize!r}; supported: 'stretch'")
        if self.interpolation != "bilinear":
            raise SpecError(f"unsupported interpolation {self.interpolation!r}; supported: 'bilinear'")
        if self.channel_order not in ("RGB", "BGR"):
            raise SpecError(f"channel_order must be 'RGB' or 'BGR', got {self.channel_order!r}")
        if self.layout != "NCHW" or self.dtype != "float32":
            raise SpecError("only layout 'NCHW' with dtype 'float32' is supported")
        # finiteness first, as the C++ reader checks it while parsing (a NaN passes "<= 0")
        if not all(_is_float32(v) for v in (self.scale, *self.mean, *self.std)):
            raise SpecError("scale, mean and std must be finite numbers (no NaN or Inf)")
        if self.scale <= 0 or len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise SpecError("scale and std must be positive and mean/std must have 3 values")
        if self.num_classes < 2:
            raise SpecError(f"num_classes must be >= 2 (background + classes), got {self.num_classes}")
        if len(self.class_names) != self.num_classes:
            names = ("background",) + tuple(f"class_{i}" for i in range(1, self.num_classes))
            if self.num_classes == 2:
                names = ("background", "foreground")
            object.__setattr__(self, "class_names", names)

    # -- serialization -------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict including the schema tag."""
        data = asdict(self)
        data = {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}
        return {"schema": SCHEMA, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessSpec:
        """Build from :meth:`to_dict` output; unknown keys are rejected."""
        data = dict(data)
        schema = data.pop("schema", SCHEMA)
        if schema != SCHEMA:
            raise SpecError(f"unsupported preprocess schema {schema!r} (expected {SCHEMA!r})")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(f"unknown preprocess keys: {', '.join(unknown)}")
        return cls(**data)

    def save(self, directory_or_file: str | Path) -> Path:
        """Write ``preprocess.json`` (atomically) and return its path."""
        path = Path(directory_or_file)
        if path.suffix != ".json":
            path = path / PREPROCESS_FILENAME
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory_or_file: str | Path) -> PreprocessSpec:
        """Read ``preprocess.json`` from a directory or a direct file path."""
        path = Path(directory_or_file)
        if path.is_dir():
            path = path / PREPROCESS_FILENAME
        if not path.is_file():
            raise SpecError(f"preprocess spec not found: {path}")
        try:
            return cls.from_dict(strict_json_loads(path.read_bytes()))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SpecError(f"malformed preprocess spec {path}: {exc}") from None

    # -- the transform -------------------------------------------------------
    def preprocess_one(self, image: ImageLike) -> np.ndarray:
        """One image (path or array) -> ``(3, H, W)`` float32 tensor data."""
        out = np.empty((3, *self.input_size), dtype=np.float32)
        self._preprocess_into(read_image(image), out)
        return out

    def _preprocess_into(self, rgb: np.ndarray, out: np.ndarray) -> None:
        """Write one ``(H, W, 3)`` uint8 image into ``out`` ``(3, h, w)`` float32."""
        src = rgb.transpose(0, 2, 1)  # (H, 3, W) view
        if self.channel_order == "BGR":
            src = src[:, ::-1]
        scale = np.float32(self.scale)
        mean = np.asarray(self.mean, dtype=np.float32)[:, None]
        std = np.asarray(self.std, dtype=np.float32)[:, None]
        # Subtracting 0 and dividing by 1 are exact in IEEE float32, so skip them.
        center, divide = bool(mean.any()), bool((std != 1).any())
        rows = out.transpose(1, 0, 2)  # (h, 3, w) view of the output
        for r0, r1, values in _resize_blocks(src, self.input_size):
            target = rows[r0:r1]
            np.divide(values, scale, out=values if center or divide else target)
            if center:
                np.subtract(values, mean, out=values if divide else target)
            if divide:
                np.divide(values, std, out=target)

    def preprocess(self, images: ImageLike | Sequence[ImageLike]) -> np.ndarray:
        """Image(s) -> ``(N, 3, H, W)`` float32 batch.

        ``images`` is a path, an ``(H, W, C)`` array, or a list of either.
        Safe to call from several threads at once (no shared state).
        """
        if isinstance(images, (str, Path)) or (
            isinstance(images, np.ndarray) and images.ndim in (2, 3)
        ):
            images = [images]
        images = list(images)
        if not images:
            raise SpecError("preprocess() got no images")
        batch = np.empty((len(images), 3, *self.input_size), dtype=np.float32)
        for i, image in enumerate(images):
            self._preprocess_into(read_image(image), batch[i])
        return batch

    def postprocess(self, logits: Any, original_size: Sequence[int]) -> np.ndarray:
        """Logits -> label map(s) at the original image size.

        Args:
            logits: ``(N, C, H, W)`` or ``(C, H, W)`` torch tensor or array.
            original_size: ``(height, width)`` of the source image.

        Returns:
            ``(N, height, width)`` uint8 label maps (``(height, width)`` for a
            3-D input): arg-max over classes of the bilinearly resized logits,
            ties to the lowest class index and a NaN winning, as ``numpy.argmax``.
        """
        if hasattr(logits, "detach"):
            arr = logits.detach().float().cpu().numpy()
        else:
            arr = np.asarray(logits)
        single = arr.ndim == 3
        if single:
            arr = arr[None]
        if arr.ndim != 4:
            raise SpecError(f"logits must be (N, C, H, W) or (C, H, W), got shape {arr.shape}")
        out_hw = (int(original_size[0]), int(original_size[1]))
        out = np.empty((arr.shape[0], *out_hw), dtype=np.uint8)
        for sample, mask in zip(arr, out):
            for r0, r1, values in _resize_blocks(sample.transpose(1, 0, 2), out_hw):
                _argmax_channels(values, mask[r0:r1])
        return out[0] if single else out


def _argmax_channels(values: np.ndarray, out: np.ndarray) -> None:
    """``numpy.argmax`` over axis 1 of ``(rows, C, W)`` values into ``(rows, W)`` uint8."""
    if values.shape[1] != 2:
        out[...] = np.argmax(values, axis=1)
        return
    first, second = values[:, 0], values[:, 1]
    # Class 1 iff not (v0 >= v1) and v0 is not NaN: v1 > v0, or v1 NaN after a number.
    not_below = np.greater_equal(first, second)
    labels = out.view(np.bool_)
    np.equal(first, first, out=labels)
    np.greater(labels, not_below, out=labels)
