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
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from qtseg.imageio import ImageLike, read_image

SCHEMA = "qtseg.preprocess/1"
PREPROCESS_FILENAME = "preprocess.json"


class SpecError(ValueError):
    """A preprocessing spec that is malformed or does not match its use."""


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


def resize_bilinear(array: np.ndarray, out_hw: Sequence[int]) -> np.ndarray:
    """Bilinear resize of an ``(H, W, C)`` or ``(H, W)`` array to float32.

    Interpolates along x first, then y, each as ``a * (1 - w) + b * w`` in
    float32 -- the exact order the C++ code uses.
    """
    squeeze = array.ndim == 2
    src = array[:, :, None] if squeeze else array
    src = src.astype(np.float32, copy=False)
    out_h, out_w = int(out_hw[0]), int(out_hw[1])
    y0, y1, wy = _axis_weights(src.shape[0], out_h)
    x0, x1, wx = _axis_weights(src.shape[1], out_w)
    wx1 = wx[None, :, None]
    wx0 = np.float32(1.0) - wx1
    top_rows = src[y0]
    bottom_rows = src[y1]
    top = top_rows[:, x0] * wx0 + top_rows[:, x1] * wx1
    bottom = bottom_rows[:, x0] * wx0 + bottom_rows[:, x1] * wx1
    wy1 = wy[:, None, None]
    wy0 = np.float32(1.0) - wy1
    out = top * wy0 + bottom * wy1
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
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
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
    def from_dict(cls, data: dict[str, Any]) -> "PreprocessSpec":
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
        from qtseg.atomic import atomic_write_text

        path = Path(directory_or_file)
        if path.suffix != ".json":
            path = path / PREPROCESS_FILENAME
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory_or_file: str | Path) -> "PreprocessSpec":
        """Read ``preprocess.json`` from a directory or a direct file path."""
        path = Path(directory_or_file)
        if path.is_dir():
            path = path / PREPROCESS_FILENAME
        if not path.is_file():
            raise SpecError(f"preprocess spec not found: {path}")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except json.JSONDecodeError as exc:
            raise SpecError(f"malformed preprocess spec {path}: {exc}") from None

    # -- the transform -------------------------------------------------------
    def preprocess_one(self, image: ImageLike) -> np.ndarray:
        """One image (path or array) -> ``(3, H, W)`` float32 tensor data."""
        rgb = read_image(image)
        resized = resize_bilinear(rgb, self.input_size)  # (H, W, 3) float32
        if self.channel_order == "BGR":
            resized = resized[:, :, ::-1]
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        x = (resized / np.float32(self.scale) - mean) / std
        return np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)

    def preprocess(self, images: ImageLike | Sequence[ImageLike]) -> np.ndarray:
        """Image(s) -> ``(N, 3, H, W)`` float32 batch.

        ``images`` is a path, an ``(H, W, C)`` array, or a list of either.
        """
        if isinstance(images, (str, Path)) or (
            isinstance(images, np.ndarray) and images.ndim in (2, 3)
        ):
            images = [images]
        batch = [self.preprocess_one(im) for im in images]
        if not batch:
            raise SpecError("preprocess() got no images")
        return np.stack(batch, axis=0)

    def postprocess(self, logits: Any, original_size: Sequence[int]) -> np.ndarray:
        """Logits -> label map(s) at the original image size.

        Args:
            logits: ``(N, C, H, W)`` or ``(C, H, W)`` torch tensor or array.
            original_size: ``(height, width)`` of the source image.

        Returns:
            ``(N, height, width)`` uint8 label maps (``(height, width)`` for a
            3-D input): arg-max over classes of the bilinearly resized logits.
        """
        arr = logits.detach().float().cpu().numpy() if hasattr(logits, "detach") else np.asarray(logits)
        single = arr.ndim == 3
        if single:
            arr = arr[None]
        if arr.ndim != 4:
            raise SpecError(f"logits must be (N, C, H, W) or (C, H, W), got shape {arr.shape}")
        out_hw = (int(original_size[0]), int(original_size[1]))
        masks = []
        for sample in arr.astype(np.float32, copy=False):
            resized = resize_bilinear(sample.transpose(1, 2, 0), out_hw)  # (h, w, C)
            masks.append(np.argmax(resized, axis=2).astype(np.uint8))
        out = np.stack(masks, axis=0)
        return out[0] if single else out
