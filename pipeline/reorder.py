"""Per-stream reorder buffer: results arrive in any order, leave strictly in ``seq`` order.

Parallel inference replicas finish frames out of order; the tracker and the sinks
need them in order. :class:`ReorderBuffer` holds early arrivals until every earlier
``seq`` has arrived, then releases the gap-free run. ``max_pending`` bounds memory: if
more items wait than that, a frame was lost upstream (it will never arrive and the
buffer would grow for ever), and the buffer raises instead.
"""

from __future__ import annotations

import numbers
from typing import Generic, TypeVar

from pipeline.errors import ConfigError, MaskstreamError

T = TypeVar("T")


class ReorderError(MaskstreamError):
    """An item cannot be accepted: duplicate or already-released ``seq``, or too many items waiting."""


class ReorderBuffer(Generic[T]):
    """Releases pushed items in ``seq`` order without gaps, starting at ``first_seq``.

    ``max_pending`` (integer ``>= 0``) is the most items that may wait for an earlier
    ``seq``; 0 accepts only in-order input.
    """

    def __init__(self, *, max_pending: int, first_seq: int = 0) -> None:
        if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 0:
            raise ConfigError(f"ReorderBuffer: max_pending must be an integer >= 0, got {max_pending!r}")
        if isinstance(first_seq, bool) or not isinstance(first_seq, int) or first_seq < 0:
            raise ConfigError(f"ReorderBuffer: first_seq must be an integer >= 0, got {first_seq!r}")
        self._max_pending = max_pending
        self._next_seq = first_seq
        self._pending: dict[int, T] = {}

    @property
    def next_seq(self) -> int:
        """The ``seq`` the buffer waits for (everything below it has been released)."""
        return self._next_seq

    @property
    def pending(self) -> int:
        """How many items wait for an earlier ``seq``."""
        return len(self._pending)

    def has(self, seq: int) -> bool:
        """Whether ``seq`` is waiting in the buffer."""
        return seq in self._pending

    def push(self, seq: int, item: T) -> list[T]:
        """Accept ``item`` numbered ``seq``; return the items now releasable, in ``seq`` order (maybe none).

        Raises :class:`ReorderError` (leaving the buffer unchanged) when ``seq`` was
        already released or is already waiting, or when accepting it would leave more
        than ``max_pending`` items waiting.
        """
        if isinstance(seq, bool) or not isinstance(seq, numbers.Integral):
            raise ReorderError(f"seq must be an integer, got {seq!r}")
        seq = int(seq)
        if seq < self._next_seq:
            raise ReorderError(f"seq {seq} was already released (next_seq is {self._next_seq})")
        if seq in self._pending:
            raise ReorderError(f"seq {seq} is a duplicate: it is already waiting (next_seq is {self._next_seq})")
        if seq != self._next_seq:
            if len(self._pending) >= self._max_pending:
                raise ReorderError(
                    f"seq {seq} would make {len(self._pending) + 1} items wait for seq {self._next_seq} "
                    f"(max_pending is {self._max_pending}): a frame was probably lost upstream"
                )
            self._pending[seq] = item
            return []
        released = [item]
        self._next_seq += 1
        while self._next_seq in self._pending:
            released.append(self._pending.pop(self._next_seq))
            self._next_seq += 1
        return released
