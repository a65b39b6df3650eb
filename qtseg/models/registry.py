"""A plain registry of model builders: ``create("qtseg-v2", num_classes=2)``.

Each model family registers one builder together with its frozen config
dataclass. ``create`` builds the config from keyword arguments (unknown keys
are rejected by the dataclass) and hands it to the builder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch.nn as nn


class UnknownModelError(KeyError):
    """Raised for a model name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0])


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its config dataclass and builder."""

    name: str
    config_cls: type
    builder: Callable[[Any], nn.Module]
    description: str


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, config_cls: type, description: str = "") -> Callable:
    """Decorator registering ``builder(config) -> nn.Module`` under ``name``."""

    def wrap(builder: Callable[[Any], nn.Module]) -> Callable[[Any], nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelEntry(name, config_cls, builder, description)
        return builder

    return wrap


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_REGISTRY)


def get_entry(name: str) -> ModelEntry:
    """Registry entry for ``name``; raises :class:`UnknownModelError` with the valid names."""
    if name not in _REGISTRY:
        raise UnknownModelError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    return _REGISTRY[name]


def make_config(name: str, **cfg: Any) -> Any:
    """Build the config dataclass of ``name`` from keyword arguments."""
    entry = get_entry(name)
    valid = {f.name for f in fields(entry.config_cls)}
    unknown = sorted(set(cfg) - valid)
    if unknown:
        raise TypeError(
            f"{name}: unknown config keys {', '.join(unknown)}; valid: {', '.join(sorted(valid))}"
        )
    return entry.config_cls(**cfg)


def create(name: str = "qtseg-v2", **cfg: Any) -> nn.Module:
    """Build model ``name`` with config overrides ``cfg``.

    The returned module has ``model_name`` and ``config`` attributes so that a
    checkpoint can record how to rebuild it.
    """
    config = make_config(name, **cfg)
    model = get_entry(name).builder(config)
    model.model_name = name
    model.config = config
    return model


def size_pair(value: int | Sequence[int], *, name: str = "img_size") -> tuple[int, int]:
    """A config size as ``(height, width)`` ints; an int means a square.

    Raises:
        ValueError: ``value`` is neither an int nor two values.
    """
    size = (value, value) if isinstance(value, int) else tuple(value)
    if len(size) != 2:
        raise ValueError(f"{name} must be an int or (height, width), got {value!r}")
    return int(size[0]), int(size[1])


def config_dict(model: nn.Module) -> dict[str, Any]:
    """The JSON-ready config of a model built by :func:`create`."""
    data = asdict(model.config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}
