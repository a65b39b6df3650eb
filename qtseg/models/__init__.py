"""Model registry and the model families qtseg ships.

``create(name, **cfg)`` builds a registered model; importing this package
registers every family listed below.
"""

# Each family module registers its models when imported.
from qtseg.models import hrmedseg as _hrmedseg  # noqa: F401
from qtseg.models import icmoe as _icmoe  # noqa: F401
from qtseg.models import qtseg_v1 as _qtseg_v1  # noqa: F401
from qtseg.models import qtseg_v2 as _qtseg_v2  # noqa: F401
from qtseg.models.registry import (
    UnknownModelError,
    config_dict,
    create,
    get_entry,
    list_models,
    make_config,
    register_model,
)

__all__ = [
    "UnknownModelError",
    "config_dict",
    "create",
    "get_entry",
    "list_models",
    "make_config",
    "register_model",
]
