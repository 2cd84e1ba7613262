from __future__ import annotations

import pytest

from pipeline.batching import BatchAccumulator
from pipeline.errors import ConfigError


def test_fires_at_max_batch_size_before_the_wait() -> None:
    acc: BatchAccumulator[int] = BatchAccumulator(max_batch_size=3, max_wait_ms=1000)
    for i in range(2):
        acc.add(i, now_s=0.0)
    assert not acc.ready(0.0)
    acc.add(2, now_s=0.0)
    assert acc.ready(0.0)
    assert acc.take() == [0, 1, 2]
    assert len(acc) == 0 and acc.seconds_until_ready(0.0) is None


def test_fires_after_max_wait_of_the_oldest() -> None:
    acc: BatchAccumulator[str] = BatchAccumulator(max_batch_size=8, max_wait_ms=20)
    acc.add("a", now_s=0.0)
    acc.add("b", now_s=0.015)
    assert not acc.ready(0.019)
    assert acc.seconds_until_ready(0.010) == pytest.approx(0.010)
    assert acc.ready(0.020)
    assert acc.take() == ["a", "b"]


def test_take_leaves_the_rest_in_order() -> None:
    acc: BatchAccumulator[int] = BatchAccumulator(max_batch_size=2, max_wait_ms=0)
    for i in range(5):
        acc.add(i, now_s=1.0)
    assert [acc.take(), acc.take(), acc.take()] == [[0, 1], [2, 3], [4]]


def test_zero_wait_fires_at_once() -> None:
    acc: BatchAccumulator[int] = BatchAccumulator(max_batch_size=4, max_wait_ms=0)
    acc.add(1, now_s=5.0)
    assert acc.ready(5.0)


def test_invalid_arguments() -> None:
    with pytest.raises(ConfigError, match="max_batch_size must be >= 1, got 0"):
        BatchAccumulator(max_batch_size=0, max_wait_ms=1)
    with pytest.raises(ConfigError, match="max_wait_ms must be >= 0, got -1"):
        BatchAccumulator(max_batch_size=1, max_wait_ms=-1)


def test_with_a_key_batches_take_turns_across_streams():
    acc = BatchAccumulator(max_batch_size=4, max_wait_ms=0, key=lambda item: item[0])
    for i in range(6):
        acc.add(("a", i), now_s=0.0)
    for i in range(3):
        acc.add(("b", i), now_s=1.0)
    assert acc.take() == [("a", 0), ("b", 0), ("a", 1), ("b", 1)]
    assert acc.take() == [("a", 2), ("b", 2), ("a", 3), ("a", 4)]
    assert acc.take() == [("a", 5)] and len(acc) == 0


def test_turns_take_up_to_turn_size_consecutive_items_of_a_key():
    acc = BatchAccumulator(max_batch_size=5, max_wait_ms=0, key=lambda item: item[0], turn_size=2)
    for i in range(3):
        acc.add(("a", i), now_s=0.0)
    for i in range(4):
        acc.add(("b", i), now_s=1.0)
    assert acc.take() == [("a", 0), ("a", 1), ("b", 0), ("b", 1), ("a", 2)]
    assert acc.take() == [("b", 2), ("b", 3)] and len(acc) == 0


def test_a_turn_size_below_one_is_refused_with_its_value():
    with pytest.raises(ConfigError, match="turn_size must be >= 1, got 0"):
        BatchAccumulator(max_batch_size=4, max_wait_ms=0, turn_size=0)
