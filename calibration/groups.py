"""Layer groups for the sensitivity search, derived from node names.

Exported graphs name nodes by module path (``/model/encoder/stem/stem.0/conv/Conv``),
and OpenVINO keeps those names, so a block of the network is a name prefix.
Groups start at ``/model/<part>/<child>`` and are split one level deeper while
they hold more than ``max_nodes`` quantizable nodes; nodes that sit directly
at a split level (``/model/decoder/MatMul``, the final dot product) form their
own group. The first convolution is added as its own group (a usual suspect).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from qtseg.calibration.guard import LayerGroup


def _path(name: str) -> tuple[str, ...]:
    """Module path of a node name (without the op part)."""
    return tuple(p for p in name.strip("/").split("/")[:-1] if p)


def _subtree(prefix: tuple[str, ...]) -> str:
    return "^/" + re.escape("/".join(prefix)) + "/"


def _direct(prefix: tuple[str, ...]) -> str:
    head = "^/" + re.escape("/".join(prefix)) + "/" if prefix else "^/"
    return head + "[^/]+$"


def layer_groups(
    node_names: Sequence[str],
    *,
    max_nodes: int = 120,
    start_depth: int = 3,
    first_conv: str | None = None,
) -> list[LayerGroup]:
    """Groups covering ``node_names`` (pass only the quantizable nodes).

    Args:
        node_names: names of quantizable nodes, in graph order.
        max_nodes: split groups larger than this.
        start_depth: path depth of the first level (3: ``model/encoder/stem``).
        first_conv: name of the first convolution, added as a group of its own.
    """
    paths = {n: _path(n) for n in node_names}
    groups: list[LayerGroup] = []

    def visit(prefix: tuple[str, ...], members: list[str]) -> None:
        depth = len(prefix)
        direct = [n for n in members if len(paths[n]) <= depth]
        deeper = [n for n in members if len(paths[n]) > depth]
        if depth >= start_depth and (len(members) <= max_nodes or not deeper):
            groups.append(LayerGroup("/".join(prefix), _subtree(prefix)))
            return
        if direct:
            label = "/".join(prefix) + "/*" if prefix else "*"
            groups.append(LayerGroup(label, _direct(prefix)))
        children: dict[str, list[str]] = {}
        for n in deeper:
            children.setdefault(paths[n][depth], []).append(n)
        for child, names in children.items():
            visit(prefix + (child,), names)

    visit((), list(node_names))
    if first_conv:
        groups.insert(0, LayerGroup("first-conv", "^" + re.escape(first_conv) + "($|/)"))
    return groups
