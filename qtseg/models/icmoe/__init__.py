"""IC-MoE peer model; importing this package registers ``icmoe``."""

from qtseg.models.icmoe.model import ICMoE, ICMoEConfig, ICMoETrainOutput, build_icmoe
from qtseg.models.icmoe.sam_weights import (
    SamCheckpointError,
    SamLoadReport,
    load_sam_checkpoint,
    load_sam_weights,
)
from qtseg.models.icmoe.sgcl import SgCLProjections, icmoe_loss, sgcl_loss, sgcl_terms

__all__ = [
    "ICMoE",
    "ICMoEConfig",
    "ICMoETrainOutput",
    "SamCheckpointError",
    "SamLoadReport",
    "SgCLProjections",
    "build_icmoe",
    "icmoe_loss",
    "load_sam_checkpoint",
    "load_sam_weights",
    "sgcl_loss",
    "sgcl_terms",
]
