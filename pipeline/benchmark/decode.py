"""The host's limit: the same files decoded by one process each, all at once, to the pixels a source hands on.

Each process opens its file as ``pipeline.sources.av_source`` does (FFmpeg's own threading, ``thread_type
AUTO``), waits at a barrier until every process is ready, then decodes every frame and converts it with
:func:`pipeline.frames.pixels_from_av` to the transfer form the pipeline uses (YUV 4:2:0 planes or RGB).
Frames per second = all frames / (last process's end - first process's start): start-up is not counted.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import dataclass
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from pipeline.errors import MaskstreamError

_READY_TIMEOUT_S = 60.0  # every process has opened its file by then, or the measurement is refused


@dataclass(frozen=True)
class DecodeResult:
    """Decoding alone: ``processes`` files decoded concurrently; ``frames`` in all over ``seconds``."""

    processes: int
    frames: int
    seconds: float
    transfer: str

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def decode_alone(paths: list[Path], *, transfer: str = "yuv420", timeout_s: float = 600.0) -> DecodeResult:
    """Decode ``paths`` (one process each, concurrently) and time it; raises ``MaskstreamError`` on a failure."""
    if not paths:
        raise MaskstreamError("decode_alone: no files")
    context = mp.get_context("spawn")  # no fork of a process that may hold Ray's or torch's threads
    barrier = context.Barrier(len(paths))
    results = context.Queue()
    workers = [context.Process(target=_decode_file, args=(str(p), transfer, barrier, results), daemon=True)
               for p in paths]
    for worker in workers:
        worker.start()
    try:
        reports = [results.get(timeout=timeout_s) for _ in workers]
    except Exception as exc:  # noqa: BLE001 - queue.Empty on a hung or dead decoder
        raise MaskstreamError(f"decode_alone: a decoding process did not report within {timeout_s:.0f} s") from exc
    finally:
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.kill()
    errors = [r["error"] for r in reports if r.get("error")]
    if errors:
        raise MaskstreamError(f"decode_alone: {errors[0]}")
    start = min(r["start"] for r in reports)
    end = max(r["end"] for r in reports)
    return DecodeResult(processes=len(paths), frames=sum(r["frames"] for r in reports), seconds=end - start,
                        transfer=transfer)


def _decode_file(path: str, transfer: str, barrier: Barrier, results: Any) -> None:
    import av

    from pipeline.frames import pixels_from_av

    try:
        container = av.open(path)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
    except Exception as exc:  # noqa: BLE001 - reported to the parent with the file's name
        barrier.abort()
        results.put({"error": f"{path}: could not open: {type(exc).__name__}: {exc}"})
        return
    try:
        barrier.wait(timeout=_READY_TIMEOUT_S)
        start, frames = time.perf_counter(), 0
        for frame in container.decode(stream):
            pixels_from_av(frame, transfer)  # type: ignore[arg-type]
            frames += 1
        results.put({"start": start, "end": time.perf_counter(), "frames": frames})
    except Exception as exc:  # noqa: BLE001 - reported to the parent with the file's name
        results.put({"error": f"{path}: {type(exc).__name__}: {exc}"})
    finally:
        container.close()
