"""StreamOutput, list in / list out: reorder, repeats dropped, epochs, status order, checkpoint and resume.

The sink is the real JSON Lines sink writing into a temporary folder; what it wrote is read back.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from pathlib import Path

from pipeline.client import read_jsonl
from pipeline.messages import FrameMessage, StreamEnd, StreamInfo, StreamStatus
from pipeline.output import TRACK_ID_BLOCK, Delivered, OutputCheckpoint, StreamOutput
from pipeline.sinks.jsonl_sink import JsonlSink
from pipeline.tracking import ByteTracker
from tests.pipeline.sinks.factories import instance, result

INFO = StreamInfo(stream_id="cam", width=64, height=48, fps=10.0, total_frames=None, live=False)


def frame(seq: int, *, epoch: int = 0, x: int = 4) -> Delivered:
    r = result("cam", seq, 48, 64, (instance(48, 64, (x + seq, 10, x + seq + 12, 30), track_id=None),))
    return Delivered(dataclasses.replace(r, meta=dataclasses.replace(r.meta, seq=seq, epoch=epoch)))


def output(tmp_path: Path, checkpoint: OutputCheckpoint | None = None,
           on_reserve: Callable[[OutputCheckpoint], None] | None = None) -> StreamOutput:
    tracker = ByteTracker(high_score_threshold=0.5, low_score_threshold=0.1, new_track_score_threshold=0.5)
    return StreamOutput("cam", {"jsonl": JsonlSink("cam", directory=tmp_path)}, tracker, max_pending=16,
                        checkpoint=checkpoint, on_reserve=on_reserve)


def frames_written(tmp_path: Path) -> list[FrameMessage]:
    return [m for m in read_jsonl(tmp_path / "cam.jsonl") if isinstance(m, FrameMessage)]


def test_shuffled_results_with_repeats_are_published_once_in_order(tmp_path: Path) -> None:
    out = output(tmp_path)
    assert out.attach(INFO).epoch == 0
    items = [frame(s) for s in range(12)]
    items += [frame(s) for s in (3, 7, 0)]  # resent after a downstream restart
    random.Random(5).shuffle(items)
    published = sum(out.push([item]) for item in items)
    out.finish(StreamEnd(stream_id="cam", frames=12))
    assert published == 12 and out.repeats == 3 and out.ended
    messages = list(read_jsonl(tmp_path / "cam.jsonl"))
    assert [m.seq for m in messages[:-1]] == list(range(12))
    assert isinstance(messages[-1], StreamEnd) and messages[-1].frames == 12


def test_results_of_an_older_source_incarnation_are_dropped(tmp_path: Path) -> None:
    out = output(tmp_path)
    out.attach(INFO)
    assert out.push([frame(0), frame(2)]) == 1  # 2 waits for 1
    again = out.attach(INFO)  # the source restarted: what waited is forgotten, numbering goes on
    assert (again.epoch, again.next_seq) == (1, 1)
    assert out.push([frame(1, epoch=0), frame(2, epoch=0)]) == 0 and out.stale == 2
    assert out.push([frame(2, epoch=1), frame(1, epoch=1)]) == 2
    assert [m.seq for m in frames_written(tmp_path)] == [0, 1, 2]


def test_status_events_are_written_before_their_frame(tmp_path: Path) -> None:
    out = output(tmp_path)
    out.attach(INFO)
    out.push([frame(0)])
    out.status(StreamStatus(stream_id="cam", state="reconnecting", at=1.0, seq=3, attempt=1))
    out.status(StreamStatus(stream_id="cam", state="restarted", at=2.0, actor="dispatcher"))  # now
    out.push([frame(2), frame(3), frame(1)])
    out.finish(StreamEnd(stream_id="cam", frames=4))
    kinds = [(type(m).__name__, getattr(m, "seq", None), getattr(m, "state", None))
             for m in read_jsonl(tmp_path / "cam.jsonl")]
    assert kinds == [
        ("FrameMessage", 0, None),
        ("StreamStatus", 1, "restarted"),
        ("FrameMessage", 1, None),
        ("FrameMessage", 2, None),
        ("StreamStatus", 3, "reconnecting"),
        ("FrameMessage", 3, None),
        ("StreamEnd", None, None),
    ]
    assert out.checkpoint.statuses == {"restarted": 1, "reconnecting": 1}


def test_a_rebuilt_output_resumes_without_repeats_or_reused_track_ids(tmp_path: Path) -> None:
    first = output(tmp_path)
    first.attach(INFO)
    first.push([frame(s) for s in range(5)])
    saved = first.checkpoint
    first_ids = {i.track_id for m in frames_written(tmp_path) for i in m.instances}
    assert saved.next_seq == 5 and saved.next_track_id > max(first_ids)
    # The actor died after writing frame 5 but before saving its checkpoint: frame 5 is in the file.
    first.push([frame(5)])
    del first  # no close: a killed process does not close its files

    second = output(tmp_path, checkpoint=OutputCheckpoint.from_bytes(saved.to_bytes()))
    attached = second.attach(INFO)
    assert attached.resumed and attached.next_seq == 5 and attached.epoch == saved.epoch + 1
    second.push([frame(s, epoch=attached.epoch) for s in (7, 5, 6)])
    second.finish(StreamEnd(stream_id="cam", frames=8))
    written = frames_written(tmp_path)
    assert [m.seq for m in written] == list(range(8))
    later_ids = {i.track_id for m in written[6:] for i in m.instances}
    assert later_ids and min(later_ids) >= saved.next_track_id


def test_abort_writes_the_end_with_the_error_after_what_was_published(tmp_path: Path) -> None:
    out = output(tmp_path)
    out.attach(INFO)
    out.push([frame(0), frame(1), frame(3)])
    out.abort("source of stream 'cam' died and cannot be restarted", decoded=4)
    messages = list(read_jsonl(tmp_path / "cam.jsonl"))
    end = messages[-1]
    assert isinstance(end, StreamEnd) and end.frames == 2 and "cannot be restarted" in (end.error or "")
    assert out.push([frame(2)]) == 0  # nothing after the end


def test_a_stream_that_never_opened_gets_just_its_end_line(tmp_path: Path) -> None:
    (tmp_path / "cam.jsonl").write_text('{"type": "frame", "from": "a previous run"}\n')
    out = output(tmp_path)
    out.finish(StreamEnd(stream_id="cam", frames=0, error="stream 'cam' (x.mp4): file does not exist"))
    messages = list(read_jsonl(tmp_path / "cam.jsonl"))
    assert len(messages) == 1 and isinstance(messages[0], StreamEnd) and messages[0].error


def test_track_ids_are_reserved_before_any_sink_sees_them(tmp_path: Path) -> None:
    saved: list[OutputCheckpoint] = []
    out = output(tmp_path, on_reserve=saved.append)
    out.attach(INFO)
    out.push([frame(0)])
    # reserved with the new ids, before frame 0 was counted as published
    assert len(saved) == 1 and saved[0].next_seq == 0 and saved[0].next_track_id == 2 + TRACK_ID_BLOCK
    out.push([frame(1)])  # the same track goes on: no new id, nothing to reserve
    assert len(saved) == 1
    # an output rebuilt from the reservation (the crash came between the write and the checkpoint)
    rebuilt = output(tmp_path, checkpoint=saved[0])
    rebuilt.attach(INFO)
    rebuilt.push([frame(0, epoch=1), frame(1, epoch=1), frame(2, epoch=1, x=40)])
    ids = [i.track_id for m in frames_written(tmp_path) for i in m.instances]
    assert ids[:2] == [1, 1] and min(ids[2:]) >= 2


def test_an_abort_after_a_resume_counts_the_frames_a_sink_already_holds(tmp_path: Path) -> None:
    first = output(tmp_path)
    first.attach(INFO)
    first.push([frame(s) for s in range(3)])
    saved = first.checkpoint
    first.push([frame(3)])  # written, then the process died before its checkpoint
    del first
    rebuilt = output(tmp_path, checkpoint=saved)
    rebuilt.abort("output of stream 'cam' died and cannot be restarted", info=INFO)
    messages = list(read_jsonl(tmp_path / "cam.jsonl"))
    frames = [m for m in messages if isinstance(m, FrameMessage)]
    assert [m.seq for m in frames] == [0, 1, 2, 3]
    assert isinstance(messages[-1], StreamEnd) and messages[-1].frames == len(frames)


def test_track_ids_are_reserved_a_block_at_a_time_and_the_checkpoint_covers_the_block(tmp_path: Path) -> None:
    saved: list[OutputCheckpoint] = []
    out = output(tmp_path, on_reserve=saved.append)
    out.attach(INFO)
    for seq, x in enumerate((2, 26, 50)):  # a new object away from the others in every frame: a new track each time
        out.push([frame(seq, x=x - seq)])
    tracker = out.tracker
    assert tracker is not None and tracker.next_track_id == 4 and len(saved) == 1  # ids 1-3: all within the first block
    assert out.checkpoint.next_track_id == saved[0].next_track_id == 2 + TRACK_ID_BLOCK
    tracker.next_track_id = saved[0].next_track_id + 5  # past the block: the next new id reserves another
    out.push([frame(3, x=-3)])  # at x 0, away from the last two tracks
    assert len(saved) == 2 and saved[1].next_track_id == tracker.next_track_id + TRACK_ID_BLOCK
