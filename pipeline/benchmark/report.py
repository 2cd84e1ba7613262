"""The pipeline bench's settings and results, and how they are shown: a table, ``bench.json`` and ``bench.png``."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.benchmark.decode import DecodeResult

SCHEMA_VERSION = 1

MODEL_NOT_RUN = (
    "THE MODEL WAS NOT RUN: the inference actors returned a fixed set of detections (benchmark engine, "
    "model.arch benchmark_fixed); these figures are the actor graph's own ceiling, not maskstream's speed "
    "with a model"
)
"""Printed above the table and stored in the JSON: nobody may mistake these figures for model throughput."""

TARGET_RATIO = 0.8
"""The issue's target: the graph moves at least 80% of the frames decoding alone does, on the same cores."""


@dataclass(frozen=True)
class BenchSettings:
    """What ``maskstream bench-pipeline`` runs: every ``sizes`` x ``streams`` case on ``frames``-frame files."""

    sizes: list[tuple[int, int]]
    streams: list[int]
    frames: int
    instances: int = 15  # detections per frame (the engine bench's realistic case)
    replicas: int = 1
    max_batch_size: int = 8
    transfer: str = "yuv420"
    redis_url: str | None = None
    video_sink: bool = False
    num_cpus: int | None = None
    videos_dir: Path = field(default_factory=lambda: Path(".bench-videos"))


@dataclass(frozen=True)
class ActorCpu:
    """CPU seconds one process used while the graph streamed; ``busy``: the share of one core."""

    label: str
    pid: int
    cpu_s: float
    seconds: float

    @property
    def busy(self) -> float:
        return self.cpu_s / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class GraphResult:
    """The graph's run: frames published over ``seconds`` (from the sources' go to the last end message)."""

    frames: int
    seconds: float
    cost_ms: dict[str, float]  # per published frame, summed over all actors (RunReport.cost_ms)
    submits: int  # dispatcher submit calls
    submitted_frames: int  # frames those calls carried
    batches: int  # inference calls
    mean_batch_size: float
    actors: list[ActorCpu]
    errors: list[str]

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def dispatcher_calls_per_s(self) -> float:
        return (self.submits + self.batches) / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class CaseResult:
    width: int
    height: int
    streams: int
    decode: DecodeResult
    graph: GraphResult

    @property
    def ratio(self) -> float:
        return self.graph.fps / self.decode.fps if self.decode.fps > 0 else 0.0


def report_dict(settings: BenchSettings, cases: list[CaseResult], command: str) -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION,
        "model_not_run": MODEL_NOT_RUN,
        "command": command,
        "environment": _environment(),
        "settings": {**asdict(settings), "videos_dir": str(settings.videos_dir)},
        "target_ratio": TARGET_RATIO,
        "cases": [_case_dict(c) for c in cases],
    }


def _case_dict(case: CaseResult) -> dict[str, Any]:
    g = case.graph
    return {
        "size": f"{case.width}x{case.height}",
        "streams": case.streams,
        "decode_alone": {"processes": case.decode.processes, "frames": case.decode.frames,
                         "seconds": case.decode.seconds, "fps": case.decode.fps},
        "graph": {"frames": g.frames, "seconds": g.seconds, "fps": g.fps, "cost_ms": g.cost_ms,
                  "submits": g.submits, "submitted_frames": g.submitted_frames, "batches": g.batches, "mean_batch_size": g.mean_batch_size,
                  "dispatcher_calls_per_s": g.dispatcher_calls_per_s, "errors": g.errors,
                  "actors": [{**asdict(a), "busy": a.busy} for a in g.actors]},
        "ratio": case.ratio,
        "meets_target": case.ratio >= TARGET_RATIO,
    }


def _environment() -> dict[str, Any]:
    import os

    import av
    import ray

    return {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
            "ray": ray.__version__, "av": av.__version__, "ffmpeg": ".".join(map(str, av.ffmpeg_version_info))
            if hasattr(av, "ffmpeg_version_info") else None}


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    """One row per case: size, streams, decode alone, graph, ratio, dispatcher calls/s, cost, busiest actor."""
    rows = []
    for c in report["cases"]:
        g = c["graph"]
        costs = ", ".join(f"{k} {v:.2f}" for k, v in sorted(g["cost_ms"].items(), key=lambda kv: -kv[1]) if v >= 0.01)
        busiest = next((a for a in g["actors"] if a["label"] != "driver"), None)
        rows.append([
            c["size"], str(c["streams"]), f"{c['decode_alone']['fps']:.1f}", f"{g['fps']:.1f}", f"{c['ratio']:.0%}",
            f"{g['dispatcher_calls_per_s']:.0f}", f"{g['mean_batch_size']:.1f}", costs,
            f"{busiest['label']} {busiest['busy']:.0%}" if busiest else "-",
        ])
    return rows


TABLE_COLUMNS = ("size", "streams", "decode alone fps", "graph fps", "graph / decode", "dispatcher calls/s",
                 "batch", "cost ms/frame (all actors)", "busiest actor (share of a core)")


def write_json(report: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")
    return path


def write_chart(report: dict[str, Any], path: Path) -> bool:
    """``bench.png``: frames/s of decoding alone and of the graph per case, the 80% target marked.
    ``False`` when matplotlib is not installed."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return False
    cases = report["cases"]
    labels = [f"{c['size']}\n{c['streams']} stream{'s' if c['streams'] != 1 else ''}" for c in cases]
    fig = Figure(figsize=(max(6.0, 1.6 * len(cases) + 2), 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    xs = range(len(cases))
    decode = [c["decode_alone"]["fps"] for c in cases]
    graph = [c["graph"]["fps"] for c in cases]
    ax.bar([x - 0.2 for x in xs], decode, 0.4, label="decoding alone (N processes)", color="#9aa5b1")
    ax.bar([x + 0.2 for x in xs], graph, 0.4, label="the actor graph (model not run)", color="#1f77b4")
    for x, d, g in zip(xs, decode, graph):
        ax.plot([x - 0.4, x + 0.4], [TARGET_RATIO * d] * 2, color="red", lw=1)
        ax.annotate(f"{g / d:.0%}" if d else "-", (x + 0.2, g), textcoords="offset points", xytext=(0, 3),
                    ha="center", fontsize=8)
    ax.plot([], [], color="red", lw=1, label=f"target: {TARGET_RATIO:.0%} of decoding alone")
    ax.set_xticks(list(xs), labels)
    ax.set_ylabel("frames/s (all streams)")
    env = report["environment"]
    ax.set_title(f"maskstream bench-pipeline: MODEL NOT RUN ({env['cpus']} CPUs)", fontsize=10)
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return True
