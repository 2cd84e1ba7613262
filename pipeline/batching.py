"""Cross-stream batching: pure logic, no Ray, no clock of its own (callers pass ``now_s``).

A batch is ready when it holds ``max_batch_size`` items, or when its oldest item has
waited ``max_wait_ms``, whichever comes first. Items leave in arrival order, or, given a
``key`` (the stream), in turns across keys of up to ``turn_size`` consecutive items each:
a stream that ran ahead does not fill every batch while the others wait.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from pipeline.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class _Waiting(Generic[T]):
    item: T
    arrived_s: float


class BatchAccumulator(Generic[T]):
    """Collects items from all streams and hands out batches.

    ``max_batch_size``: the largest batch (GPU memory and latency grow with it).
    ``max_wait_ms``: how long the oldest item may wait for company; 0 sends whatever
    is there at once (lowest latency, smallest batches).
    ``turn_size``: with a ``key``, the most consecutive items of one key a turn takes (the key with
    the oldest item goes first); 1 alternates item by item.
    """

    def __init__(self, *, max_batch_size: int, max_wait_ms: float, key: Callable[[T], Hashable] | None = None,
                 turn_size: int = 1) -> None:
        if max_batch_size < 1:
            raise ConfigError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_wait_ms < 0:
            raise ConfigError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        if turn_size < 1:
            raise ConfigError(f"turn_size must be >= 1, got {turn_size}")
        self.max_batch_size = max_batch_size
        self.turn_size = turn_size
        self.max_wait_s = max_wait_ms / 1000.0
        self._waiting: deque[_Waiting[T]] = deque()
        self._key = key

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, item: T, now_s: float) -> None:
        self._waiting.append(_Waiting(item, now_s))

    def ready(self, now_s: float) -> bool:
        """True when a batch should fire now."""
        if not self._waiting:
            return False
        return len(self._waiting) >= self.max_batch_size or now_s - self._waiting[0].arrived_s >= self.max_wait_s

    def seconds_until_ready(self, now_s: float) -> float | None:
        """0 when ready, the remaining wait of the oldest item otherwise, ``None`` when empty."""
        if not self._waiting:
            return None
        if self.ready(now_s):
            return 0.0
        return self._waiting[0].arrived_s + self.max_wait_s - now_s

    def take(self) -> list[T]:
        """Remove and return up to ``max_batch_size`` of the oldest items (possibly fewer, never zero when non-empty)."""
        count = min(self.max_batch_size, len(self._waiting))
        if self._key is None:
            return [self._waiting.popleft().item for _ in range(count)]
        queues: dict[Hashable, deque[_Waiting[T]]] = {}
        for waiting in self._waiting:  # per key, in arrival order; keys ordered by their oldest item
            queues.setdefault(self._key(waiting.item), deque()).append(waiting)
        taken: list[_Waiting[T]] = []
        while len(taken) < count:
            for queue in queues.values():
                for _ in range(min(self.turn_size, len(queue), count - len(taken))):
                    taken.append(queue.popleft())
        chosen = {id(w) for w in taken}
        self._waiting = deque(w for w in self._waiting if id(w) not in chosen)
        return [w.item for w in taken]

    def drain(self) -> list[T]:
        """Remove and return everything waiting (used at shutdown)."""
        items = [w.item for w in self._waiting]
        self._waiting.clear()
        return items
