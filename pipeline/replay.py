"""The source's side of exactly-once delivery: frames kept until the stream's output acknowledges them.

A source sends each frame downstream (dispatcher, inference, output) and keeps it in a
:class:`ReplayWindow` until the output says it was published (a cumulative acknowledgement:
"every ``seq`` below N is out"). When a downstream actor dies, whatever it held is lost; the
source learns of it (the actor's incarnation changed) and sends again every frame still in the
window. The output drops what it already published, so each frame is published exactly once.

The window is also the stream's backpressure: at most ``capacity`` frames are between the source
and publication (``backpressure.max_in_flight_per_stream``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

from pipeline.errors import ConfigError, MaskstreamError

T = TypeVar("T")


class ReplayError(MaskstreamError):
    """A frame cannot enter the window: it is full, or its ``seq`` is not the next one."""


@dataclass(frozen=True)
class Unacked(Generic[T]):
    """One frame still waiting for publication: its ``seq`` and whatever the source resends (meta, reference)."""

    seq: int
    item: T


class ReplayWindow(Generic[T]):
    """Frames sent and not yet acknowledged, in ``seq`` order, at most ``capacity`` of them.

    ``add`` takes consecutive ``seq`` numbers; ``ack(next_seq)`` releases every frame below
    ``next_seq`` (acknowledgements are cumulative, so a lost or repeated one is harmless);
    ``unacked()`` lists what must be sent again after a downstream failure.
    """

    def __init__(self, *, capacity: int, next_seq: int = 0) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ConfigError(f"ReplayWindow: capacity must be an integer >= 1, got {capacity!r}")
        self.capacity = capacity
        self._items: OrderedDict[int, T] = OrderedDict()
        self._next_seq = next_seq  # the seq the next add() must carry
        self._acked = next_seq  # every seq below is acknowledged

    def __len__(self) -> int:
        return len(self._items)

    @property
    def full(self) -> bool:
        return len(self._items) >= self.capacity

    @property
    def next_seq(self) -> int:
        """The ``seq`` of the next frame to add."""
        return self._next_seq

    @property
    def acked(self) -> int:
        """Every ``seq`` below this one is acknowledged as published."""
        return self._acked

    def add(self, seq: int, item: T) -> None:
        """Keep ``item`` (frame number ``seq``) until it is acknowledged."""
        if self.full:
            raise ReplayError(f"window full: {len(self._items)} frames wait for acknowledgement (capacity {self.capacity})")
        if seq != self._next_seq:
            raise ReplayError(f"seq {seq} is not the next one ({self._next_seq})")
        self._items[seq] = item
        self._next_seq = seq + 1

    def ack(self, next_seq: int) -> int:
        """Every ``seq`` below ``next_seq`` is published: forget those frames; returns how many were released."""
        released = 0
        while self._items:
            seq = next(iter(self._items))
            if seq >= next_seq:
                break
            self._items.popitem(last=False)
            released += 1
        self._acked = max(self._acked, min(next_seq, self._next_seq))
        return released

    def unacked(self) -> list[Unacked[T]]:
        """The frames to send again, oldest first."""
        return [Unacked(seq, item) for seq, item in self._items.items()]

    def clear(self) -> int:
        """Forget every frame (they cannot be sent again, e.g. their pixels are gone); returns how many."""
        count = len(self._items)
        self._items.clear()
        return count
