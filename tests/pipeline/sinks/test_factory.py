from __future__ import annotations

import pytest

from pipeline.config import SinksConfig
from pipeline.sinks.factory import sinks_need_frames


@pytest.mark.parametrize(("sections", "expected"), [
    ({"jsonl": {"dir": "out"}}, False),
    ({"redis": {"url": "redis://127.0.0.1:6379/0"}, "jsonl": {"dir": "out"}}, False),
    ({"jsonl": {"dir": "out"}, "video": {"dir": "out"}}, True),
    ({"video": {"dir": "out"}}, True),
])
def test_only_a_sink_that_draws_on_the_pixels_needs_the_frames(sections: dict, expected: bool):
    assert sinks_need_frames(SinksConfig(**sections)) is expected
