"""Streaming histograms for the entropy and percentile methods.

ONNX Runtime's histogram collector takes its first histogram of |x| with
automatic edges and then only appends bins of the same width. Two things go
wrong on real graphs: a tensor whose values are all (near) zero -- e.g. a
branch gated by a zero-initialised scale -- or whose values are nearly equal
leaves numpy unable to make finite bins and calibration aborts; and a tensor
whose first chunk is tiny grows millions of bins when larger values arrive.
This collector anchors |x| histograms at 0 and coarsens them (merging
neighbouring bins) whenever they would grow past a bound. It only replaces
the collecting step; thresholds are computed by ONNX Runtime's own code.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qtseg.calibration.methods import CalibrationMethod

TINY = 1e-30


def _extend(hist: np.ndarray, width: float, top: float, limit: int) -> tuple[np.ndarray, float]:
    """Histogram on ``[0, n*width)`` grown to cover ``top``; coarsened to <= ``limit`` bins."""
    needed = int(np.ceil(top / width)) if top > 0 else len(hist)
    if needed > limit:
        factor = int(np.ceil(needed / (limit // 2)))
        pad = (-len(hist)) % factor
        hist = np.pad(hist, (0, pad)).reshape(-1, factor).sum(axis=1)
        width *= factor
        needed = int(np.ceil(top / width))
    if needed > len(hist):
        hist = np.pad(hist, (0, needed - len(hist)))
    return hist, width


def bounded_collector(method: CalibrationMethod, options: dict[str, Any]) -> Any:
    """An ``onnxruntime`` ``HistogramCollector`` with robust |x| collection; ``None`` for min-max."""
    if method.name == "minmax":
        return None
    from onnxruntime.quantization.calibrate import HistogramCollector

    num_bins = int(options.get("num_bins", 2048))

    class BoundedCollector(HistogramCollector):
        """|x| histograms anchored at 0, at most ``4 * num_bins`` bins."""

        def collect_absolute_value(self, name_to_arr: dict[str, Any]) -> None:
            for name, arrays in name_to_arr.items():
                data = np.asarray(arrays, dtype=np.float32).ravel()
                if data.size == 0:
                    continue
                lo, hi = np.float32(np.nanmin(data)), np.float32(np.nanmax(data))
                mags = np.abs(data)
                top = float(np.nanmax(mags))
                if name not in self.histogram_dict:
                    width = max(top, TINY) / num_bins
                    hist = np.zeros(num_bins, dtype=np.int64)
                else:
                    hist, edges, old_lo, old_hi = self.histogram_dict[name]
                    width = float(edges[1] - edges[0])
                    lo, hi = min(lo, old_lo), max(hi, old_hi)
                hist, width = _extend(hist, width, top, 4 * num_bins)
                # bins as a count + range: numpy's fast uniform path (edge arrays use a binary search)
                counts, edges = np.histogram(mags, bins=len(hist), range=(0.0, len(hist) * width))
                self.histogram_dict[name] = (hist + counts, edges.astype(np.float32), lo, hi)

        def collect_value(self, name_to_arr: dict[str, Any]) -> None:
            fixed = {}
            for name, arrays in name_to_arr.items():
                data = np.asarray(arrays, dtype=np.float32)
                if data.size and not float(np.nanmax(np.abs(data))) > TINY:
                    data = np.zeros_like(data)
                fixed[name] = data
            super().collect_value(fixed)

    return BoundedCollector(
        method="entropy" if method.name == "entropy" else "percentile",
        symmetric=bool(options.get("symmetric", True)),
        num_bins=num_bins,
        num_quantized_bins=int(options.get("num_quantized_bins", 128)),
        percentile=float(options.get("percentile", 99.999)),
        scenario="same",
    )
