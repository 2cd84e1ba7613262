"""The output actor's class, in-process on the session's local Ray: its checkpoint thread."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

import actors.output as output_module
from actors.names import RunNames, kv_get
from actors.output import OutputWorker
from pipeline.config import SinksConfig, TrackingConfig
from pipeline.messages import FrameResult, StreamInfo
from pipeline.output import OutputCheckpoint
from tests.pipeline.sinks.factories import result

INFO = StreamInfo(stream_id="cam", width=64, height=48, fps=25.0, total_frames=None, live=False)


def wait_until(condition, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def frame(seq: int, epoch: int) -> FrameResult:
    r = result("cam", seq, 48, 64, ())
    return dataclasses.replace(r, meta=dataclasses.replace(r.meta, epoch=epoch))


def worker(tmp_path: Path, run_id: str) -> OutputWorker:
    return OutputWorker("cam", SinksConfig(jsonl={"dir": str(tmp_path)}), TrackingConfig(enabled=False),
                        max_pending=8, names=RunNames(run_id))


def test_published_frames_are_acknowledged_only_once_a_saved_checkpoint_covers_them(
        ray_session: None, tmp_path: Path) -> None:
    out = worker(tmp_path, "ckpt-covers")
    attached, _ = out.attach(INFO)
    assert out.push([frame(s, attached.epoch) for s in range(3)]) == 3
    assert wait_until(lambda: out.probe().next_seq == 3)
    saved = OutputCheckpoint.from_bytes(kv_get(RunNames("ckpt-covers").checkpoint_key("cam")))
    assert saved.next_seq == 3 and saved.published == 3
    out.close()


def test_a_failed_save_is_tried_again_and_nothing_is_acknowledged_meanwhile(
        ray_session: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = worker(tmp_path, "ckpt-retry")
    attached, _ = out.attach(INFO)
    real_put, failures = output_module.kv_put, []

    def flaky_put(key: bytes, value: bytes) -> None:
        if len(failures) < 2:
            failures.append(key)
            raise ConnectionError("GCS unavailable")
        real_put(key, value)

    monkeypatch.setattr(output_module, "kv_put", flaky_put)
    assert out.push([frame(s, attached.epoch) for s in range(2)]) == 2
    assert wait_until(lambda: len(failures) == 2)
    assert out.probe().next_seq == 0  # published, but no saved checkpoint covers it yet
    assert wait_until(lambda: out.probe().next_seq == 2)  # the thread lived on and saved it
    out.close()
