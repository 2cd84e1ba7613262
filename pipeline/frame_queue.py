"""The bounded queue between a source's decoder thread and its sender.

A file source uses ``drop_oldest=False``: ``put`` waits for room, so the decoder slows
down to the pipeline's pace and no frame is lost. A live source uses ``drop_oldest=True``:
``put`` never waits; when full, the oldest waiting frame is dropped and counted, so a
camera is read at its own pace and latency stays bounded when the pool is behind.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Generic, TypeVar

from pipeline.errors import ConfigError

T = TypeVar("T")


class QueueClosed(Exception):
    """Raised by ``put`` after ``close``; ``get`` returns ``None`` instead once drained."""


class FrameQueue(Generic[T]):
    def __init__(self, *, capacity: int, drop_oldest: bool) -> None:
        if capacity < 1:
            raise ConfigError(f"queue capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.drop_oldest = drop_oldest
        self.dropped = 0
        self._items: deque[T] = deque()
        self._closed = False
        self._cond = threading.Condition()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def put(self, item: T, timeout_s: float | None = None) -> bool:
        """Add an item. Returns False if it timed out waiting for room (never with ``drop_oldest``)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            if self._closed:
                raise QueueClosed("the queue is closed")
            if self.drop_oldest:
                if len(self._items) >= self.capacity:
                    self._items.popleft()
                    self.dropped += 1
            else:
                while len(self._items) >= self.capacity and not self._closed:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._cond.wait(remaining)
                if self._closed:
                    raise QueueClosed("the queue is closed")
            self._items.append(item)
            self._cond.notify_all()
            return True

    def get(self, timeout_s: float | None = None) -> T | None:
        """Next item; ``None`` when closed and drained, or when ``timeout_s`` passed with nothing."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while not self._items:
                if self._closed:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """No more puts; waiting getters drain what is left then get ``None``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
