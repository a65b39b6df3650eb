"""HRMedSeg peer model; importing this package registers ``hrmedseg``."""

from qtseg.models.hrmedseg.model import HRMedSeg, HRMedSegConfig, build_hrmedseg

__all__ = ["HRMedSeg", "HRMedSegConfig", "build_hrmedseg"]
