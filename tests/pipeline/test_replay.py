"""The source's replay window: frames kept until acknowledged, cumulative acks, resend lists."""

from __future__ import annotations

import pytest

from pipeline.errors import ConfigError
from pipeline.replay import ReplayError, ReplayWindow


def test_frames_wait_until_a_cumulative_ack_releases_them() -> None:
    window: ReplayWindow[str] = ReplayWindow(capacity=3)
    for seq in range(3):
        window.add(seq, f"f{seq}")
    assert window.full
    with pytest.raises(ReplayError, match="window full"):
        window.add(3, "f3")
    assert window.ack(2) == 2  # 0 and 1 are out
    assert [u.seq for u in window.unacked()] == [2] and window.acked == 2
    assert window.ack(1) == 0 and window.acked == 2  # a late, older ack changes nothing
    window.add(3, "f3")
    assert [(u.seq, u.item) for u in window.unacked()] == [(2, "f2"), (3, "f3")]


def test_numbering_is_gap_free_from_the_given_start() -> None:
    window: ReplayWindow[int] = ReplayWindow(capacity=4, next_seq=10)
    with pytest.raises(ReplayError, match="seq 11 is not the next one \\(10\\)"):
        window.add(11, 11)
    window.add(10, 10)
    assert window.next_seq == 11
    assert window.ack(100) == 1 and window.acked == 11  # never beyond what was sent
    assert window.clear() == 0


@pytest.mark.parametrize("capacity", [0, -1, 1.5, True])
def test_capacity_must_be_a_positive_integer(capacity: object) -> None:
    with pytest.raises(ConfigError, match="capacity must be an integer >= 1"):
        ReplayWindow(capacity=capacity)  # type: ignore[arg-type]
