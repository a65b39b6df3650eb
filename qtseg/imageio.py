"""Image and mask reading with one clear error per kind of bad input.

Every image enters qtseg as an ``(H, W, 3)`` uint8 RGB array. Grayscale is
replicated to three channels, alpha is dropped (not composited), and 16-bit
images are scaled to 8 bits by dividing by the type's maximum. EXIF
orientation is *not* applied: the pixels are used as stored, exactly as the
C++ reader does, so Python and C++ see the same array.

Decompression bombs: a file whose header declares more than
:func:`max_pixels` pixels (default :data:`DEFAULT_MAX_PIXELS`, 100,000,000,
the same limit as the C++ reader; ``QTSEG_MAX_PIXELS`` or a ``max_pixels``
argument raises it) is refused with an :class:`ImageReadError` before any
pixel is decoded. A limit above Pillow's own ``Image.MAX_IMAGE_PIXELS``
raises Pillow's process-wide limit to it (never lowers it), so that qtseg's
limit is the one that applies.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

ImageLike = str | Path | np.ndarray

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class ImageReadError(ValueError):
    """An image or mask file that cannot be decoded or has an unusable layout."""


DEFAULT_MAX_PIXELS = 100_000_000
MAX_PIXELS_ENV = "QTSEG_MAX_PIXELS"


def max_pixels(override: int | None = None) -> int:
    """The pixel limit in force: ``override``, else ``$QTSEG_MAX_PIXELS``, else the default.

    Raises:
        ImageReadError: a limit that is not a positive integer.
    """
    value: object = override if override is not None else os.environ.get(MAX_PIXELS_ENV)
    if value is None:
        return DEFAULT_MAX_PIXELS
    try:
        limit = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        limit = 0
    if limit < 1 or isinstance(value, bool):
        where = "max_pixels" if override is not None else MAX_PIXELS_ENV
        raise ImageReadError(f"{where} must be a positive integer number of pixels, got {value!r}")
    return limit


def _bomb(path: Path, width: int, height: int, limit: int) -> ImageReadError:
    return ImageReadError(
        f"{path}: {width}x{height} = {width * height:,} pixels is above the limit of {limit:,} "
        f"(possible decompression bomb; raise it with --max-pixels or {MAX_PIXELS_ENV})"
    )


def _decode(path: Path, limit: int | None = None) -> Image.Image:
    if not path.is_file():
        raise ImageReadError(f"image not found: {path}")
    limit = max_pixels(limit)
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < limit:
        Image.MAX_IMAGE_PIXELS = limit  # qtseg's limit governs (module docstring)
    try:
        img = Image.open(path)  # reads the header only
    except Image.DecompressionBombError as exc:  # above twice Pillow's limit: refused in open()
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1)):,} pixels" if found else f"more than {2 * limit:,} pixels"
        raise ImageReadError(f"{path}: {size} is above the limit of {limit:,} (possible "
                             f"decompression bomb; raise it with --max-pixels or {MAX_PIXELS_ENV})"
                             ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"cannot decode image {path}: {exc}") from None
    width, height = img.size
    if width * height > limit:
        img.close()
        raise _bomb(path, width, height, limit)
    try:
        img.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"cannot decode image {path}: {exc}") from None
    return img


def to_rgb_uint8(array: np.ndarray, source: str = "array") -> np.ndarray:
    """Convert an image array to ``(H, W, 3)`` uint8 RGB.

    Accepts ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` and ``(H, W, 4)`` arrays
    of uint8, uint16 or float in [0, 1].
    """
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise ImageReadError(
            f"{source}: expected an HxW, HxWx1, HxWx3 or HxWx4 image, got shape {arr.shape}"
        )
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageReadError(f"{source}: empty image of shape {arr.shape}")
    if arr.dtype == np.uint16:
        arr = (arr.astype(np.float32) * (255.0 / 65535.0) + 0.5).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ImageReadError(f"{source}: image contains NaN or Inf")
        arr = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise ImageReadError(f"{source}: unsupported image dtype {arr.dtype}")
    channels = arr.shape[2]
    if channels == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif channels == 2:  # gray + alpha
        arr = np.repeat(arr[:, :, :1], 3, axis=2)
    elif channels == 4:
        arr = arr[:, :, :3]
    return np.ascontiguousarray(arr)


def read_image(image: ImageLike, *, max_pixels: int | None = None) -> np.ndarray:
    """Read a path (or pass through an array) as ``(H, W, 3)`` uint8 RGB.

    Args:
        image: a file path or an image array.
        max_pixels: refuse a file of more pixels (default: :func:`max_pixels`).

    Raises:
        ImageReadError: missing, undecodable, above the pixel limit, unusable layout.
    """
    if isinstance(image, np.ndarray):
        return to_rgb_uint8(image)
    path = Path(image)
    img = _decode(path, max_pixels)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.uint32)
        arr = (arr.astype(np.float32) * (255.0 / 65535.0) + 0.5).clip(0, 255).astype(np.uint8)
        return to_rgb_uint8(arr, str(path))
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode not in ("L", "LA", "RGB", "RGBA"):
        img = img.convert("RGB")
    return to_rgb_uint8(np.asarray(img), str(path))


def read_mask(path: ImageLike, num_classes: int = 2, *, max_pixels: int | None = None) -> np.ndarray:
    """Read a ground-truth mask as an ``(H, W)`` uint8 label map.

    Binary tasks (``num_classes == 2``): foreground is gray value > 127, which
    handles PNG 0/255 masks, JPEG masks with compression noise and 0/1 label
    maps stored as 0/255 alike; a mask whose maximum is 1 is read as a 0/1
    label map. Multi-class tasks: the (first channel) values are class ids
    and must be < ``num_classes``. ``max_pixels`` as for :func:`read_image`.
    """
    if isinstance(path, np.ndarray):
        arr = np.asarray(path)
        source = "mask array"
    else:
        img = _decode(Path(path), max_pixels)
        arr = np.asarray(img.convert("L") if img.mode not in ("L", "I;16", "I") else img)
        source = str(path)
    if arr.ndim == 3:
        arr = arr[:, :, 0]
    if arr.ndim != 2:
        raise ImageReadError(f"{source}: mask must be 2-D (or HxWxC), got shape {arr.shape}")
    if num_classes == 2:
        if arr.max(initial=0) <= 1:
            return (arr > 0).astype(np.uint8)
        return (arr > 127).astype(np.uint8)
    if arr.max(initial=0) >= num_classes:
        raise ImageReadError(
            f"{source}: label {int(arr.max())} out of range for num_classes={num_classes}"
        )
    return arr.astype(np.uint8)
