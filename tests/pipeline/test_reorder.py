"""ReorderBuffer: any arrival order in, strict gap-free seq order out."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import ConfigError, MaskstreamError
from pipeline.reorder import ReorderBuffer, ReorderError


@pytest.mark.parametrize("seed", range(5))
def test_shuffled_input_is_released_in_order(seed):
    rng = np.random.default_rng(seed)
    n = 200
    # Bounded disorder, like parallel replicas: each item lands at most 8 places from home.
    order = np.argsort(np.arange(n) + rng.uniform(0, 8, n))
    buf: ReorderBuffer[str] = ReorderBuffer(max_pending=8)
    released: list[str] = []
    for seq in order:
        out = buf.push(int(seq), f"frame-{seq}")
        released.extend(out)
        assert buf.pending <= 8
        assert buf.next_seq == len(released)
    assert released == [f"frame-{i}" for i in range(n)]
    assert buf.pending == 0 and buf.next_seq == n


def test_release_is_gap_free_and_returns_runs():
    buf: ReorderBuffer[int] = ReorderBuffer(max_pending=10, first_seq=5)
    assert buf.push(7, 70) == []
    assert buf.push(6, 60) == []
    assert buf.pending == 2 and buf.next_seq == 5
    assert buf.push(5, 50) == [50, 60, 70]
    assert buf.push(9, 90) == []
    assert buf.push(8, 80) == [80, 90]
    assert buf.next_seq == 10 and buf.pending == 0
    assert buf.push(np.int64(10), 100) == [100]  # numpy integers are accepted


def test_duplicate_and_already_released_seq_raise_naming_seq_and_next_seq():
    buf: ReorderBuffer[str] = ReorderBuffer(max_pending=4)
    buf.push(0, "a")
    buf.push(2, "c")
    with pytest.raises(ReorderError, match=r"seq 0 was already released \(next_seq is 1\)"):
        buf.push(0, "again")
    with pytest.raises(ReorderError, match=r"seq 2 is a duplicate.*next_seq is 1"):
        buf.push(2, "again")
    assert issubclass(ReorderError, MaskstreamError)
    assert buf.push(1, "b") == ["b", "c"]  # the failed pushes changed nothing
    with pytest.raises(ReorderError, match=r"seq 2 was already released \(next_seq is 3\)"):
        buf.push(2, "late")


def test_overflow_raises_and_leaves_the_buffer_unchanged():
    buf: ReorderBuffer[int] = ReorderBuffer(max_pending=3)
    for seq in (1, 2, 3):
        assert buf.push(seq, seq) == []
    with pytest.raises(ReorderError, match=r"seq 4 would make 4 items wait for seq 0 \(max_pending is 3\)"):
        buf.push(4, 4)
    assert buf.pending == 3
    assert buf.push(0, 0) == [0, 1, 2, 3]  # the awaited seq is always accepted, even when full


def test_max_pending_zero_accepts_only_in_order_input():
    buf: ReorderBuffer[int] = ReorderBuffer(max_pending=0)
    assert buf.push(0, 0) == [0]
    with pytest.raises(ReorderError, match="max_pending is 0"):
        buf.push(2, 2)
    assert buf.push(1, 1) == [1]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"max_pending": -1}, r"max_pending must be an integer >= 0, got -1"),
        ({"max_pending": 2.0}, r"max_pending must be an integer >= 0, got 2\.0"),
        ({"max_pending": 4, "first_seq": -3}, r"first_seq must be an integer >= 0, got -3"),
    ],
)
def test_constructor_validation(kwargs, expected):
    with pytest.raises(ConfigError, match=expected):
        ReorderBuffer(**kwargs)


def test_non_integer_seq_raises():
    with pytest.raises(ReorderError, match="seq must be an integer, got 1.5"):
        ReorderBuffer(max_pending=2).push(1.5, "x")  # type: ignore[arg-type]
