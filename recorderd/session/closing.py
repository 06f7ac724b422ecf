"""A base for objects used as ``with X(...) as x:`` that call ``close()`` on exit."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class ClosesOnExit:
    """``__enter__`` returns the object; ``__exit__`` calls :meth:`close`."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
