"""Calibration methods: how activation ranges are read off the calibration tensors.

- ``minmax``: the full observed range (no clipping; one outlier widens the step).
- ``entropy``: the clipping threshold that minimises the KL divergence between
  the FP32 histogram and its INT8 version.
- ``percentile``: clip at the given percentile of |x| (default 99.99).

ONNX Runtime implements all three. NNCF (OpenVINO) has no KL method; its
closest estimators are used and the manifest records the mapping
(:meth:`CalibrationMethod.nncf_estimator`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

METHODS = ("minmax", "entropy", "percentile")
# Chosen by measurement on the bundled checkpoint (docs/calibration.md, "Choosing the method").
DEFAULT_METHOD = "percentile"
DEFAULT_PERCENTILE = 99.99


@dataclass(frozen=True)
class CalibrationMethod:
    """One calibration method and its parameter.

    Attributes:
        name: ``minmax``, ``entropy`` or ``percentile``.
        percentile: percentile of |x| kept unclipped (``percentile`` only).
    """

    name: str = DEFAULT_METHOD
    percentile: float = DEFAULT_PERCENTILE

    def __post_init__(self) -> None:
        if self.name not in METHODS:
            raise ValueError(f"unknown calibration method {self.name!r}; choose one of {', '.join(METHODS)}")
        if not 50.0 < self.percentile <= 100.0:
            raise ValueError(f"percentile must be in (50, 100], got {self.percentile}")

    @classmethod
    def parse(cls, text: str) -> CalibrationMethod:
        """``"minmax"``, ``"entropy"``, ``"percentile"`` or ``"percentile:99.9"``."""
        name, _, value = text.strip().lower().partition(":")
        if value and name != "percentile":
            raise ValueError(f"only 'percentile' takes a value, got {text!r}")
        try:
            return cls(name, float(value)) if value else cls(name)
        except ValueError as exc:
            if "could not convert" in str(exc):
                raise ValueError(f"bad percentile in {text!r}") from None
            raise

    @property
    def label(self) -> str:
        """``"percentile:99.99"`` or the bare name."""
        return f"percentile:{self.percentile:g}" if self.name == "percentile" else self.name

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        data = asdict(self)
        if self.name != "percentile":
            data.pop("percentile")
        return data

    def ort(self) -> tuple[Any, dict[str, Any]]:
        """``(onnxruntime CalibrationMethod, calibrator extra options)``."""
        from onnxruntime.quantization import CalibrationMethod as OrtMethod

        if self.name == "minmax":
            return OrtMethod.MinMax, {"symmetric": True}
        if self.name == "entropy":
            return OrtMethod.Entropy, {"symmetric": True, "num_bins": 512, "num_quantized_bins": 128}
        return OrtMethod.Percentile, {"symmetric": True, "num_bins": 2048, "percentile": self.percentile}

    def nncf_estimator(self) -> tuple[Any, str]:
        """``(nncf RangeEstimatorParameters for activations, description)``."""
        from nncf.quantization.range_estimator import (
            AggregatorType,
            RangeEstimatorParameters,
            RangeEstimatorParametersSet,
            StatisticsCollectorParameters,
            StatisticsType,
        )

        if self.name == "minmax":
            return RangeEstimatorParametersSet.MINMAX, "nncf MINMAX (global min/max)"
        if self.name == "percentile":
            q = 1.0 - self.percentile / 100.0
            params = RangeEstimatorParameters(
                min=StatisticsCollectorParameters(
                    statistics_type=StatisticsType.QUANTILE, aggregator_type=AggregatorType.MEAN, quantile_outlier_prob=q
                ),
                max=StatisticsCollectorParameters(
                    statistics_type=StatisticsType.QUANTILE, aggregator_type=AggregatorType.MEAN, quantile_outlier_prob=q
                ),
            )
            return params, f"nncf MEAN_QUANTILE (mean over images of the {self.percentile:g}th percentile)"
        # NNCF has no KL-divergence estimator; its histogram estimator is the nearest (MSE-optimal clip).
        return RangeEstimatorParametersSet.HISTOGRAM, "nncf HISTOGRAM (no KL method in NNCF; nearest equivalent)"
