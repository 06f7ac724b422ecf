"""Per-node metadata (``/metadata/nodes/<node_id>``): module type, dt, incarnations seen.

Attributes cannot be written in SWMR mode, so changes are collected here and written in
the writer's next window. Repeating what is known costs a comparison: a node whose
incarnation changes on every message costs constant work per message, and at most
:data:`~recorderd.session.layout.MAX_NODE_INCARNATIONS` incarnations are listed (the
others are counted in ``incarnations_total``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from recorderd.session import layout as L


@dataclass
class _Node:
    attrs: dict[str, Any]
    incarnations: set[int] = field(default_factory=set)
    last: int | None = None  # the last incarnation noted


class NodeMetadata:
    """What the session knows of each node, and what is still to be written."""

    def __init__(self) -> None:
        self._nodes: dict[str, _Node] = {}
        self._pending: set[str] = set()

    @property
    def pending(self) -> bool:
        """Whether some node attribute waits for the next window."""
        return bool(self._pending)

    def note(
        self,
        root: h5py.File,
        node_id: str,
        *,
        module_type: str | None = None,
        incarnation: int | None = None,
        dt_ms: float | None = None,
    ) -> None:
        """Remember a node's module type, dt or incarnation (``root``: to load what it has)."""
        node = self._nodes.get(node_id)
        if node is None:
            nodes = root[L.METADATA][L.NODES]
            attrs = dict(nodes[node_id].attrs) if node_id in nodes else {}
            seen = np.asarray(attrs.get(L.ATTR_INCARNATIONS, np.zeros(0, np.uint64)))
            node = self._nodes[node_id] = _Node(attrs, {int(x) for x in seen})
        attrs = node.attrs
        changed = False
        if module_type is not None and attrs.get(L.ATTR_MODULE_TYPE) != module_type:
            attrs[L.ATTR_MODULE_TYPE] = module_type
            changed = True
        if dt_ms is not None and attrs.get(L.ATTR_DT_MS) != dt_ms:
            attrs[L.ATTR_DT_MS] = dt_ms
            changed = True
        if incarnation is not None and incarnation != node.last:
            node.last = incarnation
            if incarnation not in node.incarnations:
                total = int(attrs.get(L.ATTR_INCARNATIONS_TOTAL, len(node.incarnations)))
                attrs[L.ATTR_INCARNATIONS_TOTAL] = total + 1
                if len(node.incarnations) < L.MAX_NODE_INCARNATIONS:
                    node.incarnations.add(incarnation)
                    attrs[L.ATTR_INCARNATIONS] = None  # rebuilt from the set when written
                changed = True
        if changed:
            self._pending.add(node_id)

    def apply(self, root: h5py.File) -> None:
        """Write the pending attributes (inside a window without SWMR)."""
        nodes = root[L.METADATA][L.NODES]
        for node_id in sorted(self._pending):
            node = self._nodes[node_id]
            group = nodes.require_group(node_id)
            for key, value in node.attrs.items():
                if key == L.ATTR_INCARNATIONS:
                    value = np.fromiter(
                        sorted(node.incarnations), np.uint64, len(node.incarnations)
                    )
                group.attrs[key] = value
        self._pending.clear()
