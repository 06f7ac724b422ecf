"""Safe names: node ids, layer and weight names, session names and key prefixes."""

from __future__ import annotations

import re

#: Node ids, layer and weight names: ASCII letters, digits, ``_`` and ``-``,
#: starting with a letter or digit, at most 64 characters. No ``.``, ``/`` or
#: anything else that could mean something in a path, a key expression or HDF5.
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"
_NAME_RE = re.compile(NAME_PATTERN)
#: Key prefixes: one or more safe names joined by ``/``.
_PREFIX_RE = re.compile(rf"{NAME_PATTERN}(/{NAME_PATTERN})*")


def is_safe_name(name: str) -> bool:
    """Whether ``name`` is a valid node id, layer name or weight name."""
    return _NAME_RE.fullmatch(name) is not None


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is safe, else raise ``ValueError`` naming the rule."""
    if not is_safe_name(name):
        raise ValueError(
            f"invalid {what} {name!r}: must match {NAME_PATTERN} "
            "(letters, digits, '_' and '-', at most 64 characters)"
        )
    return name


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is a valid key prefix, else raise ``ValueError``."""
    if _PREFIX_RE.fullmatch(prefix) is None:
        raise ValueError(f"invalid key prefix {prefix!r}: safe names joined by '/'")
    return prefix
