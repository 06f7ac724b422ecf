"""Control-state statistics: dwell times, transitions, task-active ratio.

Every function here takes the same ``states`` and ``node_id`` arguments:

states : sequence of mapping
    Control states of one node, sorted by ``time_ms``: records with at least
    ``node_id``, ``time_ms`` and the field that is grouped or counted (``key``;
    ``active_task`` for :func:`task_active_ratio`).
node_id : str, optional
    Use only the states of this node. Without it, states of several nodes are an
    error.

Each raises ``ValueError`` for states of several nodes without ``node_id``, or for
states not sorted by time.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any


def _states_of_one_node(
    states: Sequence[Mapping[str, Any]], node_id: str | None
) -> list[Mapping[str, Any]]:
    if node_id is not None:
        selected = [s for s in states if s["node_id"] == node_id]
    else:
        nodes = {s["node_id"] for s in states}
        if len(nodes) > 1:
            raise ValueError(
                f"states of several nodes ({sorted(map(str, nodes))}); pass node_id to pick one"
            )
        selected = list(states)
    times = [float(s["time_ms"]) for s in selected]
    if any(b < a for a, b in itertools.pairwise(times)):
        raise ValueError("states are not sorted by time_ms")
    return selected


def control_dwell_times(
    states: Sequence[Mapping[str, Any]],
    t_stop_ms: float,
    key: str = "status",
    node_id: str | None = None,
) -> dict[str | None, float]:
    """Total time in ms spent in each value of ``key`` (by default each status).

    Parameters
    ----------
    states : sequence of mapping
        Control states of one node sorted by ``time_ms`` (see the module docstring).
    t_stop_ms : float
        End of the observation; the last state lasts until then.
    key : str, optional
        The field to group by, e.g. ``"status"`` or ``"active_task"`` (whose ``None``
        is a key of its own). Default ``"status"``.
    node_id : str, optional
        Use only the states of this node (see the module docstring).

    Returns
    -------
    dict
        Value -> ms. State ``k`` lasts from its ``time_ms`` to the next state's
        ``time_ms`` (the last one to ``t_stop_ms``), clipped at ``t_stop_ms``; time
        before the first state is not counted. Every value seen is a key, possibly
        with 0.0 (states at or after ``t_stop_ms``). Empty for no states.

    Raises
    ------
    ValueError
        States of several nodes without ``node_id``, or states not sorted by time.
    """
    selected = _states_of_one_node(states, node_id)
    dwell: dict[str | None, float] = {}
    for k, state in enumerate(selected):
        start = float(state["time_ms"])
        end = float(selected[k + 1]["time_ms"]) if k + 1 < len(selected) else t_stop_ms
        value = state[key]
        dwell[value] = dwell.get(value, 0.0) + max(0.0, min(end, t_stop_ms) - start)
    return dwell


def control_transitions(
    states: Sequence[Mapping[str, Any]],
    key: str = "status",
    node_id: str | None = None,
) -> dict[tuple[str | None, str | None], int]:
    """Number of changes of ``key`` from one value to another, ``(a, b) -> count``.

    Parameters
    ----------
    states : sequence of mapping
        Control states of one node sorted by ``time_ms`` (see the module docstring).
    key : str, optional
        The field whose changes are counted. Default ``"status"``.
    node_id : str, optional
        Use only the states of this node (see the module docstring).

    Returns
    -------
    dict
        ``(previous value, new value) -> count`` over consecutive states; a state
        repeating the previous value is not a transition.
    """
    selected = _states_of_one_node(states, node_id)
    transitions: dict[tuple[str | None, str | None], int] = {}
    for prev, cur in itertools.pairwise(selected):
        a, b = prev[key], cur[key]
        if a != b:
            transitions[(a, b)] = transitions.get((a, b), 0) + 1
    return transitions


def task_active_ratio(
    states: Sequence[Mapping[str, Any]], t_stop_ms: float, node_id: str | None = None
) -> float:
    """Fraction of the time with an active task (``active_task`` not None).

    Parameters
    ----------
    states : sequence of mapping
        Control states of one node sorted by ``time_ms`` (see the module docstring).
    t_stop_ms : float
        End of the observation.
    node_id : str, optional
        Use only the states of this node (see the module docstring).

    Returns
    -------
    float
        Time with ``active_task is not None`` over the time from the first state to
        ``t_stop_ms`` (dwell times as :func:`control_dwell_times`); ``nan`` when that
        time is zero or there are no states.
    """
    dwell = control_dwell_times(states, t_stop_ms, key="active_task", node_id=node_id)
    total = sum(dwell.values())
    if total <= 0:
        return math.nan
    return sum(v for task, v in dwell.items() if task is not None) / total
