"""How every program of the project reaches the bus: mode, endpoints, no multicast.

Zenoh's own defaults listen on every interface and send multicast scouting packets.
This is the one definition of the settings our programs put on top of a Zenoh config
(recorder and brain nodes alike); each bus module applies them with
``zenoh.Config.insert_json5`` and turns Zenoh's errors into its own. No zenoh import.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Literal, get_args

#: Zenoh session modes our programs accept.
Mode = Literal["peer", "client", "router"]
MODES: tuple[str, ...] = get_args(Mode)


def zenoh_settings(
    *,
    mode: str | None,
    connect: Sequence[str] | None,
    listen: Sequence[str] | None,
    shared_memory: bool | None = None,
) -> list[tuple[str, str]]:
    """``(path, json5 value)`` pairs to insert into a Zenoh config, in order.

    ``None`` leaves the config's value (a config file's, or Zenoh's default) as it is.
    Multicast scouting is always turned off: peers are reached through explicit
    endpoints only. Timestamping is always on (``frame_zenoh_time``). ``shared_memory``
    sets Zenoh's shared-memory transport (the recorder turns it off: see
    ``docs/deployment.md``, "Shared memory").
    """
    if mode is not None and mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    entries = []
    if mode is not None:
        entries.append(("mode", json.dumps(mode)))
    if connect is not None:
        entries.append(("connect/endpoints", json.dumps(list(connect))))
    if listen is not None:
        entries.append(("listen/endpoints", json.dumps(list(listen))))
    entries.append(("scouting/multicast/enabled", "false"))
    # Every sample is stamped by the first session on its way that has a hybrid logical
    # clock: ours all have one, so a node's samples carry its own clock's time.
    entries.append(("timestamping/enabled", "true"))
    if shared_memory is not None:
        entries.append(("transport/shared_memory/enabled", json.dumps(shared_memory)))
    return entries
