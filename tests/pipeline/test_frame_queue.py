from __future__ import annotations

import threading
import time

import pytest

from pipeline.frame_queue import FrameQueue, QueueClosed


def test_drop_oldest_keeps_newest_and_counts() -> None:
    q: FrameQueue[int] = FrameQueue(capacity=2, drop_oldest=True)
    for i in range(5):
        assert q.put(i)
    assert q.dropped == 3
    assert [q.get(timeout_s=0), q.get(timeout_s=0)] == [3, 4]
    assert q.get(timeout_s=0) is None


def test_blocking_put_waits_for_room_and_loses_nothing() -> None:
    q: FrameQueue[int] = FrameQueue(capacity=2, drop_oldest=False)
    assert q.put(0) and q.put(1)
    assert not q.put(2, timeout_s=0.05)  # full: times out instead of dropping
    received: list[int] = []

    def consume() -> None:
        while (item := q.get(timeout_s=5)) is not None:
            received.append(item)

    consumer = threading.Thread(target=consume)
    consumer.start()
    for i in range(2, 50):
        assert q.put(i, timeout_s=5)
    q.close()
    consumer.join(timeout=10)
    assert received == list(range(50))
    assert q.dropped == 0


def test_close_wakes_getter_and_refuses_puts() -> None:
    q: FrameQueue[int] = FrameQueue(capacity=1, drop_oldest=False)
    result: list[int | None] = []
    getter = threading.Thread(target=lambda: result.append(q.get()))
    getter.start()
    deadline = time.monotonic() + 5
    while getter.is_alive() and time.monotonic() < deadline:
        q.close()
        getter.join(timeout=0.05)
    assert result == [None]
    with pytest.raises(QueueClosed):
        q.put(1)
