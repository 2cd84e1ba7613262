"""Bad files through the whole product (``maskstream run``) over a previous run's complete-looking outputs.

One good file and three bad ones from the source corpus (``tests/pipeline/sources/test_sources_corpus.py``):
a YUV4MPEG file whose header has no frame size (fails at open; FFmpeg alone says "Device or resource
busy"), an MP4 truncated mid-stream, and a text file named ``.mp4``. Before the run, ``out/`` holds,
for every stream, what a previous complete run left: ``<stream>.jsonl`` with frame lines and an end
line without error, ``<stream>.mp4`` and a numbered segment ``<stream>+1.mp4``. After the run, no
output may still look like that previous run's.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from pipeline.client import read_jsonl
from pipeline.messages import FrameMessage, FrameMeta, FrameResult, StreamEnd, StreamInfo
from pipeline.sinks.jsonl_sink import JsonlSink
from pipeline.sinks.video_sink import segment_paths
from tests.pipeline.sources import videos
from tests.test_end_to_end import run_cli, write_config

WIDTH, HEIGHT, FPS = 160, 120, 25
GOOD_FRAMES = 8
TRUNCATED_FRAMES = 20  # before the cut
PREVIOUS_FRAMES = 40  # in the previous run's outputs: more than any stream of this run has
OPEN_FAILS = ("badheader", "notmedia")
BAD = (*OPEN_FAILS, "truncated")
RUN_DEADLINE_S = 400


def write_inputs(tmp_path: Path) -> dict[str, Path]:
    inputs = tmp_path / "in"
    inputs.mkdir()
    good = videos.write_video(inputs / "good.mp4", width=WIDTH, height=HEIGHT, fps=FPS, num_frames=GOOD_FRAMES)
    badheader = inputs / "badheader.y4m"
    badheader.write_bytes(b"YUV4MPEG2 W0 H0 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + bytes(256))
    notmedia = inputs / "notes.mp4"
    notmedia.write_text("this is not a video\n" * 50)
    full = videos.write_video(
        inputs / "full.mp4", width=WIDTH, height=HEIGHT, fps=FPS, num_frames=TRUNCATED_FRAMES, noisy=True,
        options={"movflags": "faststart"},  # index first: the frames before the cut can be read
    )
    truncated = videos.truncate(full, 0.6, inputs / "truncated.mp4")
    return {"good": good, "badheader": badheader, "notmedia": notmedia, "truncated": truncated}


def write_previous_run(out: Path, stream_ids: list[str], tmp_path: Path) -> None:
    """What a previous complete run left for each stream: JSON Lines with an end line, an MP4, a numbered segment."""
    previous_mp4 = videos.write_video(
        tmp_path / "previous.mp4", width=WIDTH, height=HEIGHT, fps=FPS, num_frames=PREVIOUS_FRAMES
    )
    for sid in stream_ids:
        sink = JsonlSink(sid, directory=out)
        info = StreamInfo(stream_id=sid, width=WIDTH, height=HEIGHT, fps=FPS, total_frames=PREVIOUS_FRAMES, live=False)
        sink.start(info)
        for n in range(PREVIOUS_FRAMES):
            meta = FrameMeta(stream_id=sid, index=n, seq=n, pts_s=n / FPS, captured_at=time.time(), width=WIDTH, height=HEIGHT)
            sink.write(FrameResult(meta=meta))
        sink.end(StreamEnd(stream_id=sid, frames=PREVIOUS_FRAMES, decoded=PREVIOUS_FRAMES))
        shutil.copyfile(previous_mp4, out / f"{sid}.mp4")
        shutil.copyfile(previous_mp4, out / f"{sid}+1.mp4")
    for sid in stream_ids:  # the stage is set as described
        lines = list(read_jsonl(out / f"{sid}.jsonl"))
        assert isinstance(lines[-1], StreamEnd) and lines[-1].error is None and len(lines) == PREVIOUS_FRAMES + 1
        assert [p.name for p in segment_paths(out, sid)] == [f"{sid}.mp4", f"{sid}+1.mp4"]


def test_bad_files_replace_a_previous_runs_outputs_and_end_with_their_error(tmp_path: Path, redis_url: str) -> None:
    inputs = write_inputs(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    write_previous_run(out, list(inputs), tmp_path)
    config = write_config(tmp_path, [{"id": sid, "url": str(path)} for sid, path in inputs.items()], redis_url)

    started = time.monotonic()
    result = run_cli(config, timeout_s=RUN_DEADLINE_S)
    elapsed_s = time.monotonic() - started
    err = result.stderr
    assert result.returncode == 1, err[-4000:]

    # the good stream is complete: every frame in order, its end line without error, one MP4 of every frame
    good = list(read_jsonl(out / "good.jsonl"))
    assert isinstance(good[-1], StreamEnd) and good[-1].error is None and good[-1].frames == GOOD_FRAMES, good[-1:]
    good_frames = [m for m in good if isinstance(m, FrameMessage)]
    assert [m.index for m in good_frames] == list(range(GOOD_FRAMES))
    assert [p.name for p in segment_paths(out, "good")] == ["good.mp4"]
    assert videos.count_frames(out / "good.mp4") == (GOOD_FRAMES, WIDTH, HEIGHT)

    # every bad stream: its own JSON Lines, ending with an end message whose error names it; named on the console
    ends: dict[str, StreamEnd] = {}
    for sid in BAD:
        lines = list(read_jsonl(out / f"{sid}.jsonl"))
        end = lines[-1]
        assert isinstance(end, StreamEnd) and end.stream_id == sid, f"{sid}: {lines[-1:]}"
        assert end.error and f"'{sid}'" in end.error, f"{sid}: {end}"
        assert sum(isinstance(m, StreamEnd) for m in lines) == 1, f"{sid}: more than one end line"
        ends[sid] = end
        assert sid in err, f"{sid} is not named on the console:\n{err[-4000:]}"

    # failed at open: nothing of the previous run left, no frame line, no video (nor numbered segment)
    for sid in OPEN_FAILS:
        lines = list(read_jsonl(out / f"{sid}.jsonl"))
        assert not any(isinstance(m, FrameMessage) for m in lines), f"{sid}: frame lines left: {len(lines)}"
        assert ends[sid].frames == 0
        assert segment_paths(out, sid) == [], f"{sid}: video files left: {segment_paths(out, sid)}"
    assert "not a media file" in ends["notmedia"].error
    assert "corrupt YUV4MPEG file" in ends["badheader"].error and "no valid frame size" in ends["badheader"].error

    # truncated mid-stream: the good prefix, in order, then the end line with the error; its video has those frames
    lines = list(read_jsonl(out / "truncated.jsonl"))
    frames = [m for m in lines if isinstance(m, FrameMessage)]
    assert 0 < len(frames) < TRUNCATED_FRAMES
    assert [m.index for m in frames] == list(range(len(frames)))
    assert [m.seq for m in frames] == list(range(len(frames)))
    assert ends["truncated"].frames == len(frames)
    assert "truncated" in ends["truncated"].error
    assert [p.name for p in segment_paths(out, "truncated")] == ["truncated.mp4"]
    assert videos.count_frames(out / "truncated.mp4") == (len(frames), WIDTH, HEIGHT)

    print(f"maskstream run took {elapsed_s:.1f} s")
    print("\n".join(line for line in err.splitlines() if any(f"'{sid}'" in line for sid in BAD)))
