"""``maskstream bench-pipeline``: the real actor graph run on N H.264 files, the model replaced by fixed detections.

For each frame size and stream count: first the host's limit (:func:`pipeline.benchmark.decode.decode_alone`:
the same N files decoded by N processes), then the whole graph (``PipelineRunner``: sources, dispatcher,
inference actors holding :class:`pipeline.engine.fixed.FixedDetectionsEngine`, output actors tracking and
publishing to JSON Lines, and Redis / annotated video when asked) on the same files and cores. While the
graph streams, a sampler reads every actor's CPU time from ``/proc`` (which actor saturates first).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from rich.console import Console

from actors.graph import PipelineRunner, RunHooks
from pipeline.benchmark.decode import decode_alone
from pipeline.benchmark.report import ActorCpu, BenchSettings, CaseResult, GraphResult
from pipeline.benchmark.videos import bench_video
from pipeline.config import PipelineConfig, parse_config
from pipeline.naming import BENCHMARK_ARCH
from pipeline.scenes import CLASS_NAMES

_SAMPLE_INTERVAL_S = 0.25  # often enough to see every actor between the go and the drain
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def run_bench(settings: BenchSettings, *, console: Console, log: Any = print) -> list[CaseResult]:
    """Every (size, streams) case of ``settings``, in one local Ray started here."""
    videos = {size: bench_video(settings.videos_dir, *size, settings.frames) for size in settings.sizes}
    cases: list[CaseResult] = []
    ray.init(address="local", num_cpus=settings.num_cpus, include_dashboard=False, configure_logging=False,
             log_to_driver=True, namespace="maskstream-bench")
    try:
        for size, video in videos.items():
            for streams in settings.streams:
                label = f"{size[0]}x{size[1]}, {streams} stream{'s' if streams != 1 else ''}"
                log(f"{label}: decoding alone ({streams} process{'es' if streams != 1 else ''}) ...")
                decode = decode_alone([video] * streams, transfer=settings.transfer)
                log(f"{label}: decoding alone {decode.fps:.1f} frames/s; the graph (model not run) ...")
                with tempfile.TemporaryDirectory(prefix="maskstream-bench-") as out:
                    config = bench_config(settings, video, streams, Path(out))
                    graph = run_graph(config, console=console)
                log(f"{label}: the graph {graph.fps:.1f} frames/s ({graph.fps / decode.fps:.0%} of decoding alone)")
                cases.append(CaseResult(width=size[0], height=size[1], streams=streams, decode=decode, graph=graph))
    finally:
        ray.shutdown()
    return cases


def bench_config(settings: BenchSettings, video: Path, streams: int, out_dir: Path) -> PipelineConfig:
    """N file streams of ``video``, the benchmark engine, the shipped inference and tracking defaults."""
    sinks: dict[str, Any] = {"jsonl": {"dir": str(out_dir)}}
    if settings.redis_url:
        sinks["redis"] = {"url": settings.redis_url, "channel": f"maskstream-bench-{os.getpid()}:{{stream}}"}
    if settings.video_sink:
        sinks["video"] = {"dir": str(out_dir)}
    raw = {
        "streams": [{"id": f"s{i}", "url": str(video)} for i in range(streams)],
        "model": {"arch": BENCHMARK_ARCH, "weights": None, "class_names": list(CLASS_NAMES),
                  "max_detections": settings.instances, "device": "cpu"},
        "inference": {"replicas": settings.replicas, "num_gpus": 0, "num_cpus": 1,
                      "max_batch_size": settings.max_batch_size, "transfer_format": settings.transfer},
        "sinks": sinks,
        "run": {"progress": False, "status_interval_s": 3600},
    }
    return parse_config(raw, source="bench-pipeline", allow_benchmark_engine=True)


def run_graph(config: PipelineConfig, *, console: Console) -> GraphResult:
    """Run ``config`` to its end and measure it (Ray must be initialised: this run does not start or stop it)."""
    sampler = CpuSampler()
    hooks = RunHooks(started=sampler.start, drained=sampler.stop)
    report = PipelineRunner(config, console=console, hooks=hooks).run()
    published = sum(s.published for s in report.summaries)
    batching = report.batching
    errors = [f"{s.stream_id}: {s.error}" for s in report.summaries if s.error]
    return GraphResult(
        frames=published,
        seconds=report.wall_s,
        cost_ms=dict(report.cost_ms),
        submits=batching.submits if batching else 0,
        submitted_frames=batching.submitted_frames if batching else 0,
        batches=batching.batches if batching else 0,
        mean_batch_size=batching.mean_batch_size if batching else 0.0,
        actors=sampler.result(),
        errors=errors,
    )


@dataclass
class _Seen:
    label: str
    first_cpu_s: float
    first_at: float
    last_cpu_s: float
    last_at: float


class CpuSampler:
    """Each actor's (and the driver's) CPU seconds between ``start()`` and ``stop()``, read from ``/proc``."""

    def __init__(self) -> None:
        self._seen: dict[int, _Seen] = {}
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-cpu-sampler", daemon=True)
        self._window_s = 0.0
        self._started_at = 0.0

    def start(self) -> None:
        self._started_at = time.monotonic()
        self._sample()
        self._thread.start()

    def stop(self) -> None:
        self._halt.set()
        self._thread.join(timeout=5)
        self._sample()
        self._window_s = time.monotonic() - self._started_at

    def result(self) -> list[ActorCpu]:
        rows = [ActorCpu(label=s.label, pid=pid, cpu_s=s.last_cpu_s - s.first_cpu_s, seconds=s.last_at - s.first_at)
                for pid, s in self._seen.items()]
        return sorted(rows, key=lambda r: -r.busy)

    def _loop(self) -> None:
        while not self._halt.wait(_SAMPLE_INTERVAL_S):
            self._sample()

    def _sample(self) -> None:
        labels = {os.getpid(): "driver"}
        for info in ray._private.state.actors().values():
            if info.get("State") == "ALIVE" and info.get("Pid"):
                labels[int(info["Pid"])] = _actor_label(info.get("ActorClassName") or "?", info.get("Name") or "")
        now = time.monotonic()
        for pid, label in labels.items():
            cpu = _cpu_seconds(pid)
            if cpu is None:
                continue
            seen = self._seen.get(pid)
            if seen is None:
                self._seen[pid] = _Seen(label, cpu, now, cpu, now)
            else:
                seen.last_cpu_s, seen.last_at = cpu, now


def _actor_label(cls: str, name: str) -> str:
    """``SourceWorker s0`` for a per-stream actor named ``maskstream:<run>:source:s0``, else the class."""
    parts = name.split(":")
    return f"{cls} {parts[3]}" if len(parts) == 4 else cls


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` (its threads included), or ``None`` when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S  # utime, stime: fields 14 and 15 of stat
