"""Soak: run the pipeline in-process for a while and record the memory (RSS) of every process it consists of.

    .venv/bin/python docs/bench/soak.py --minutes 8 --out docs/bench                  # the soak (soak.json, soak.png)
    .venv/bin/python docs/bench/soak.py --streams 4 --frames 60 --interval-s 1 \\
        --name perstream-4 --out /tmp/perstream --no-chart                           # a short finite run

``maskstream``'s own ``PipelineRunner`` (``actors/graph.py``) runs in this process on a generated config:
``--streams`` streams of generated scenes (``synthetic:seed=K&size=WxH&fps=F&frames=N``; ``--frames 0``:
endless), paced like cameras (``realtime: true``), the compact Mask R-CNN **with random weights** (untrained:
its detections are noise; score threshold 0 and a few detections per frame so that masks, tracking and the
sinks do work on every frame) at a small input size on the CPU, and the JSON Lines sink (plus the Redis
sink with ``--redis URL``). After ``--minutes`` the run is stopped with ``runner.request_stop()`` (a finite
run that ends earlier just ends).

A sampler thread records, every ``--interval-s`` seconds, the memory of every process of this run: the
driver (this process), each actor (pid and class from Ray's GCS actor table, ``ray._private.state.actors()``;
``ray.util.state`` needs the dashboard, which is off) and Ray's own processes (``gcs_server``, ``raylet``,
the agents, the log monitor, idle workers...), found as the descendants of this process in ``/proc`` (other
Ray instances on the machine are not counted). Per process: ``VmRSS``, ``RssAnon``, ``RssFile``, ``RssShmem``
(``/proc/<pid>/status``) and ``Pss`` / private (USS) from ``/proc/<pid>/smaps_rollup`` (RSS counts shared
library pages in every process that maps them; PSS splits them, so PSS sums to real memory). Each sample
also keeps the pipeline's counters (published, dropped, queue lengths) to show whether a queue grows.

Writes ``<out>/<name>.json`` (samples, config, command, machine) and ``<out>/<name>.png`` (RSS in MB over
minutes, one line per process kind). The same script runs the version before the actor redesign: run it
with that checkout first on ``PYTHONPATH`` (see docs/bench/soak.md); it only uses what both versions have.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
if importlib.util.find_spec("actors") is None:  # not installed and not on PYTHONPATH: this checkout
    sys.path.insert(0, str(REPO_ROOT))

# The issue's measurement before the redesign: gcs_server 57 -> 154 MB RSS over an 8-minute run.
ISSUE_GCS_BEFORE = {"start_mb": 57.0, "end_mb": 154.0, "minutes": 8.0}

MB = 1024 * 1024


# ---- processes --------------------------------------------------------------------------------------
def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return None


def children_map() -> dict[int, list[int]]:
    """ppid -> pids of every process visible in /proc."""
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _read(f"/proc/{entry}/stat")
        if stat is None:
            continue
        # pid (comm) state ppid ...: comm may contain spaces and parentheses; split after the last ')'.
        rest = stat[stat.rfind(")") + 2 :].split()
        out.setdefault(int(rest[1]), []).append(int(entry))
    return out


def descendants(root: int) -> list[int]:
    tree = children_map()
    seen: list[int] = []
    todo = list(tree.get(root, []))
    while todo:
        pid = todo.pop()
        seen.append(pid)
        todo.extend(tree.get(pid, []))
    return sorted(seen)


def cmdline(pid: int) -> str:
    raw = _read(f"/proc/{pid}/cmdline")
    return "" if raw is None else raw.replace("\x00", " ").strip()


def memory(pid: int) -> dict[str, float] | None:
    """MB: rss (VmRSS), rss_anon, rss_file, rss_shmem, pss, uss (private clean + dirty); None if gone."""
    status = _read(f"/proc/{pid}/status")
    if status is None:
        return None
    fields = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
            fields[key] = int(value.split()[0]) / 1024.0  # kB -> MB
    if "VmRSS" not in fields:  # a zombie or a kernel thread
        return None
    out = {"rss": fields["VmRSS"], "rss_anon": fields.get("RssAnon", 0.0), "rss_file": fields.get("RssFile", 0.0),
           "rss_shmem": fields.get("RssShmem", 0.0)}
    rollup = _read(f"/proc/{pid}/smaps_rollup")
    if rollup:
        kb = {}
        for line in rollup.splitlines()[1:]:
            key, _, value = line.partition(":")
            parts = value.split()
            if parts and parts[0].isdigit():
                kb[key] = int(parts[0])
        out["pss"] = kb.get("Pss", 0) / 1024.0
        out["uss"] = (kb.get("Private_Clean", 0) + kb.get("Private_Dirty", 0)) / 1024.0
    return {k: round(v, 2) for k, v in out.items()}


def ray_kind(args: str) -> str:
    """The kind of one of Ray's own processes, from its command line."""
    first = args.split(" ", 1)[0]
    if first.endswith("/gcs_server"):
        return "gcs_server"
    if first.endswith("/raylet"):
        return "raylet"
    if args.startswith("ray::"):
        title = first[len("ray::"):]
        return {"IDLE": "idle_worker", "DashboardAgent": "dashboard_agent",
                "RuntimeEnvAgent": "runtime_env_agent"}.get(title, f"ray::{title}")
    for needle, kind in (("dashboard/dashboard.py", "dashboard"), ("dashboard/agent.py", "dashboard_agent"),
                         ("runtime_env/agent/main.py", "runtime_env_agent"), ("log_monitor.py", "log_monitor"),
                         ("autoscaler/_private/monitor.py", "autoscaler_monitor"),
                         ("workers/default_worker.py", "idle_worker"), ("workers/setup_worker.py", "idle_worker")):
        if needle in args:
            return kind
    return os.path.basename(first) or "?"


def actor_table() -> dict[int, dict[str, Any]]:
    """pid -> {class, name, state} of every live actor (Ray's GCS actor table)."""
    import ray._private.state

    out = {}
    for info in ray._private.state.actors().values():
        if info.get("State") != "ALIVE" or not info.get("Pid"):
            continue
        out[int(info["Pid"])] = {"class": info.get("ActorClassName"), "name": info.get("Name") or "",
                                 "state": info.get("State")}
    return out


def stream_of(actor_name: str) -> str | None:
    """The stream of a per-stream actor named ``maskstream:<run>:<kind>:<stream>`` (the redesigned version)."""
    parts = actor_name.split(":")
    return parts[3] if len(parts) == 4 and parts[2] in ("source", "output") else None


ACTOR_CLASSES = ("SourceWorker", "OutputWorker", "Dispatcher", "InferenceWorker",  # the redesigned version
                 "TrackerWorker", "SinkWorker")  # and the version before it


def starting_actor(args: str) -> tuple[str, str | None] | None:
    """(class, stream) of a worker whose process title names a maskstream actor class, e.g.
    ``ray::maskstream:<run>:source:cam0:SourceWorker.__init__`` (an actor still in its constructor)."""
    if not args.startswith("ray::"):
        return None
    title = args.split(" ", 1)[0][len("ray::"):]
    head, _, method = title.rpartition(":") if ":" in title else ("", "", title)
    cls = method.split(".", 1)[0]
    if cls not in ACTOR_CLASSES:
        return None
    return cls, stream_of(head)


def sample_processes(actors: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    me = os.getpid()
    for pid in [me, *descendants(me)]:
        mem = memory(pid)
        if mem is None:
            continue
        args = cmdline(pid)
        actor = actors.get(pid)
        if pid == me:
            kind, label = "driver", "driver"
        elif actor is not None:
            kind = actor["class"]
            sid = stream_of(actor["name"])
            label = f"{kind}:{sid}" if sid else kind
        elif (started := starting_actor(args)) is not None:  # in __init__: not ALIVE in the table yet
            kind, sid = started
            label = f"{kind}:{sid}" if sid else kind
        else:
            kind = ray_kind(args)
            label = kind
        rows.append({"pid": pid, "kind": kind, "label": label, "maskstream_actor": actor is not None,
                     "args": args[:160], **mem})
    # Several processes under one label (the unnamed per-stream actors of the old version, idle workers): by pid.
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["label"]] = counts.get(row["label"], 0) + 1
    for row in rows:
        if counts[row["label"]] > 1:
            row["label"] = f"{row['label']}#{row['pid']}"
    return rows


# ---- the pipeline's own counters (both versions) ------------------------------------------------------
def _plain(stats: Any) -> dict[str, Any]:
    if stats is None:
        return {}
    if dataclasses.is_dataclass(stats):
        stats = dataclasses.asdict(stats)
    return dict(stats) if isinstance(stats, dict) else {}


_KEEP = ("decoded", "submitted", "resent", "dropped", "unacked", "published", "failed_frames", "pending",
         "repeats", "fps", "latency_p50_ms", "latency_p99_ms", "ended", "waiting", "in_flight_batches", "batches",
         "submits", "mean_batch_size", "undelivered")


def pipeline_counters(runner: Any) -> dict[str, Any]:
    """Per stream: the source's and the output's (old: sink's) counters; the dispatcher's queue."""
    out: dict[str, Any] = {"streams": {}}
    supervisor = getattr(runner, "supervisor", None)
    streams = supervisor.streams if supervisor is not None else getattr(runner, "streams", {})
    for sid, s in list(streams.items()):
        src = _plain(getattr(s, "source_stats", None))
        dst = _plain(getattr(s, "output_stats", None) or getattr(s, "sink_stats", None))
        row = {f"source.{k}": src[k] for k in _KEEP if k in src}
        row.update({f"output.{k}": dst[k] for k in _KEEP if k in dst})
        sinks = dst.get("sinks")
        if isinstance(sinks, dict):
            for name, value in sinks.items():
                if isinstance(value, dict):
                    row.update({f"sink.{name}.{k}": v for k, v in value.items() if isinstance(v, (int, float))})
        out["streams"][sid] = row
    disp = _plain(getattr(supervisor, "dispatcher_stats", None)) if supervisor is not None else {}
    out["dispatcher"] = {k: disp[k] for k in _KEEP if k in disp}
    return out


# ---- the run -------------------------------------------------------------------------------------------
def build_raw_config(args: argparse.Namespace, sink_dir: Path) -> dict[str, Any]:
    """A config both versions accept (the version before the redesign has no ``supervision`` section)."""
    width, height = args.size.split("x")
    streams = [
        {"id": f"cam{i}", "url": f"synthetic:seed={args.seed + i}&size={width}x{height}&fps={args.fps:g}"
                                 f"&frames={args.frames}",
         "realtime": True}
        for i in range(args.streams)
    ]
    sinks: dict[str, Any] = {"jsonl": {"dir": str(sink_dir)}}
    if args.redis:
        sinks["redis"] = {"url": args.redis, "channel": f"soak-{os.getpid()}:{{stream}}"}
    return {
        "streams": streams,
        "model": {"arch": "maskrcnn_compact", "weights": None, "class_names": ["background", "x"],
                  "score_threshold": 0.0, "max_detections": args.max_detections, "min_size": 96, "max_size": 128,
                  "device": "cpu"},
        "inference": {"replicas": 1, "num_gpus": 0, "num_cpus": 1, "max_batch_size": 4, "max_wait_ms": 50},
        "tracking": {"high_score_threshold": 0.0, "low_score_threshold": 0.0, "new_track_score_threshold": 0.0,
                     "duplicate_mask_iou_threshold": None},
        "sinks": sinks,
        "run": {"status_interval_s": 60, "drain_timeout_s": 120, "progress": False},
    }


def machine_facts() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    import ray

    def installed(name: str) -> str | None:
        try:
            return version(name)  # not imported: torch in the driver would add hundreds of MB to its RSS
        except PackageNotFoundError:
            return None

    cpu = "?"
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_total = next((int(line.split()[1]) // 1024 for line in (_read("/proc/meminfo") or "").splitlines()
                      if line.startswith("MemTotal")), None)
    return {"cpus": os.cpu_count(), "cpu": cpu, "mem_total_mb": mem_total, "kernel": platform.release(),
            "python": platform.python_version(), "ray": ray.__version__, "torch": installed("torch"),
            "torchvision": installed("torchvision"), "loadavg_at_start": (_read("/proc/loadavg") or "").split()[:3]}


def code_facts() -> dict[str, Any]:
    import actors

    root = Path(actors.__file__).resolve().parents[1]
    facts: dict[str, Any] = {"actors_package": str(Path(actors.__file__).resolve().parent)}
    try:
        facts["commit"] = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                         text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "actors", "pipeline"],
                               capture_output=True, text=True, timeout=10).stdout.split("\n")
        facts["uncommitted_changes"] = [line for line in dirty if line.strip()]
    except (OSError, subprocess.SubprocessError):
        pass
    return facts


def session_logs_mb() -> float | None:
    """Size of this Ray session's log folder (Ray's footprint on disk)."""
    try:
        import ray

        logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"
        return round(sum(p.stat().st_size for p in logs.rglob("*") if p.is_file()) / MB, 2)
    except Exception:  # noqa: BLE001 - advisory
        return None


class Sampler(threading.Thread):
    def __init__(self, runner: Any, interval_s: float, t0: float) -> None:
        super().__init__(name="soak-sampler", daemon=True)
        self.runner = runner
        self.interval_s = interval_s
        self.t0 = t0
        self.samples: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def take(self, note: str | None = None) -> None:
        with self._lock:
            try:
                actors = actor_table()
            except Exception as exc:  # noqa: BLE001 - Ray shutting down: sample what /proc shows
                actors = {}
                self.errors.append(f"actor table: {type(exc).__name__}: {exc}")
            t = time.monotonic() - self.t0
            row = {"t_s": round(t, 2), "t_min": round(t / 60, 4), "time": time.time(),
                   "loadavg": (_read("/proc/loadavg") or "").split()[:3],
                   "processes": sample_processes(actors), "pipeline": pipeline_counters(self.runner),
                   "ray_logs_mb": session_logs_mb()}
            if note:
                row["note"] = note
            self.samples.append(row)

    def run(self) -> None:
        while not self._halt.is_set():
            self.take()
            self._halt.wait(self.interval_s)

    def halt(self) -> None:
        self._halt.set()


def run(args: argparse.Namespace) -> dict[str, Any]:
    import ray
    from rich.console import Console

    from actors.graph import PipelineRunner, connect_ray
    from pipeline.config import parse_config

    sink_dir = Path(tempfile.mkdtemp(prefix=f"soak-{args.name}-"))
    raw = build_raw_config(args, sink_dir)
    config = parse_config(raw, source="soak")
    machine = machine_facts()
    code = code_facts()
    console = Console(stderr=True, width=160)
    console.print(f"soak: {args.streams} streams, {args.minutes:g} min, sampling every {args.interval_s:g} s; "
                  f"code {code.get('actors_package')}; MODEL WITH RANDOM WEIGHTS", highlight=False)
    ray_started = time.monotonic()
    connect_ray(config)  # the runner then finds Ray up and leaves it to us; the same ray.init as `maskstream run`
    ray_start_s = time.monotonic() - ray_started
    runner = PipelineRunner(config, console=console)
    t0 = time.monotonic()
    sampler = Sampler(runner, args.interval_s, t0)
    report_box: dict[str, Any] = {}

    def drive() -> None:
        try:
            report_box["report"] = runner.run()
        except BaseException as exc:  # noqa: BLE001 - recorded in the JSON
            report_box["error"] = f"{type(exc).__name__}: {exc}"

    driver = threading.Thread(target=drive, name="soak-runner", daemon=True)
    sampler.start()
    driver.start()
    deadline = t0 + args.minutes * 60
    stopped_at = None
    while driver.is_alive():
        interrupted = False
        try:
            driver.join(timeout=0.5)
        except KeyboardInterrupt:  # Ctrl-C: stop now, like `maskstream run`
            interrupted = True
        if (interrupted or time.monotonic() >= deadline) and stopped_at is None:
            sampler.take(note="stop requested")
            stopped_at = time.monotonic() - t0
            console.print(f"soak: {time.monotonic() - t0:.0f} s: runner.request_stop()", highlight=False)
            runner.request_stop()
    sampler.halt()
    sampler.join(timeout=60)
    ended_s = time.monotonic() - t0
    report = report_box.get("report")
    ray.shutdown()

    published_files = {}
    for path in sorted(sink_dir.glob("*.jsonl")):
        lines = path.read_text().splitlines()
        published_files[path.name] = {"frame_lines": sum(1 for line in lines if '"type":"frame"' in line),
                                      "bytes": path.stat().st_size}
    if not args.keep_sink_output:
        shutil.rmtree(sink_dir, ignore_errors=True)
    summaries = [dataclasses.asdict(s) for s in report.summaries] if report is not None else []
    return {
        "schema": 1,
        "what": "RSS of every process of a maskstream run (driver, actors, Ray's own processes) over time",
        "model_note": "compact Mask R-CNN with RANDOM weights (model.weights: null): untrained, its detections are "
                      "noise; score_threshold 0 so every frame carries instances through tracking and the sinks. "
                      "This measures memory, not accuracy or speed.",
        "command": shlex.join([*(f"{k}={os.environ[k]}" for k in ("PYTHONPATH",) if k in os.environ),
                               sys.executable, *sys.argv]),
        "argv": sys.argv,
        "env": {k: os.environ[k] for k in ("PYTHONPATH", "RAY_task_events_max_num_task_in_gcs") if k in os.environ},
        "cwd": os.getcwd(),
        "args": vars(args),
        "config": raw,
        "code": code,
        "machine": machine,
        "ray_start_s": round(ray_start_s, 2),
        "stop_requested_at_s": None if stopped_at is None else round(stopped_at, 2),
        "ended_at_s": round(ended_s, 2),
        "run_error": report_box.get("error"),
        "summaries": summaries,
        "exit_code": None if report is None else report.exit_code,
        "jsonl_outputs": published_files,
        "sampler_errors": sampler.errors[:20],
        "issue_gcs_before": ISSUE_GCS_BEFORE,
        "samples": sampler.samples,
    }


# ---- analysis -------------------------------------------------------------------------------------------
def series(result: dict[str, Any], metric: str = "rss") -> dict[str, list[tuple[float, float]]]:
    """label -> [(minute, MB)] (a label with several processes at one time, e.g. idle workers: their sum)."""
    out: dict[str, dict[float, float]] = {}
    for s in result["samples"]:
        for p in s["processes"]:
            out.setdefault(p["label"], {})
            out[p["label"]][s["t_min"]] = out[p["label"]].get(s["t_min"], 0.0) + p.get(metric, 0.0)
    return {label: sorted(points.items()) for label, points in out.items()}


def slope_mb_per_min(points: list[tuple[float, float]]) -> float | None:
    if len(points) < 2:
        return None
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    sxx = sum((t - mx) ** 2 for t, _ in points)
    return None if sxx == 0 else sum((t - mx) * (v - my) for t, v in points) / sxx


def soak_table(result: dict[str, Any], from_min: float = 1.0) -> list[dict[str, Any]]:
    """Per process label: RSS at the first sample at or after ``from_min``, at the last sample before the stop,
    and the least-squares slope over that span (MB/min)."""
    stop = result.get("stop_requested_at_s")
    stop_min = (stop / 60) if stop is not None else float("inf")
    rows = []
    for label, points in sorted(series(result).items()):
        span = [(t, v) for t, v in points if from_min <= t <= stop_min + 1e-9]
        if not span:
            continue
        rows.append({"process": label, "start_min": span[0][0], "start_mb": round(span[0][1], 1),
                     "end_min": span[-1][0], "end_mb": round(span[-1][1], 1),
                     "slope_mb_per_min": None if (s := slope_mb_per_min(span)) is None else round(s, 2),
                     "samples": len(span)})
    return rows


def per_stream_row(result: dict[str, Any]) -> dict[str, Any]:
    """For a short run: each process's peak while the streams ran, grouped by kind."""
    running = [s for s in result["samples"]
               if any(v.get("output.published", 0) > 0 for v in s["pipeline"]["streams"].values())] or result["samples"]
    peak: dict[int, dict[str, Any]] = {}
    for s in running:
        for p in s["processes"]:
            if p["pid"] not in peak or p["rss"] > peak[p["pid"]]["rss"]:
                peak[p["pid"]] = p
    kinds: dict[str, dict[str, float]] = {}
    for p in peak.values():
        k = kinds.setdefault(p["kind"], {"processes": 0, "rss_mb": 0.0, "pss_mb": 0.0, "uss_mb": 0.0})
        k["processes"] += 1
        k["rss_mb"] += p["rss"]
        k["pss_mb"] += p.get("pss", 0.0)
        k["uss_mb"] += p.get("uss", 0.0)
    return {"streams": result["args"]["streams"], "kinds": kinds,
            "total": {m: round(sum(k[m] for k in kinds.values()), 1) for m in ("processes", "rss_mb", "pss_mb",
                                                                                  "uss_mb")}}


def chart(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = series(result)
    by_kind: dict[str, list[str]] = {}
    for s in result["samples"]:
        for p in s["processes"]:
            by_kind.setdefault(p["kind"], [])
            if p["label"] not in by_kind[p["kind"]]:
                by_kind[p["kind"]].append(p["label"])
    fig, (ax_ray, ax_ms, ax_delta) = plt.subplots(1, 3, figsize=(20, 6.5), sharex=True)
    palette = plt.get_cmap("tab10").colors
    # One colour and style per kind, the same in every panel; gcs_server (the issue's subject) in black.
    styles = {kind: (palette[i % 10], "-" if i < 10 else "--") for i, kind in
              enumerate(k for k in sorted(by_kind) if k != "gcs_server")}
    styles["gcs_server"] = ("black", "-")
    for kind, labels in sorted(by_kind.items()):
        # One line per kind: the mean of its processes at each sample (e.g. the sources of the N streams).
        times = sorted({t for label in labels for t, _ in data[label]})
        values = []
        for t in times:
            vals = [v for label in labels for tt, v in data[label] if tt == t]
            values.append(sum(vals) / len(vals))
        is_actor = any(p["maskstream_actor"] for s in result["samples"] for p in s["processes"] if p["kind"] == kind)
        ax = ax_ms if (is_actor or kind == "driver") else ax_ray
        name = kind if len(labels) == 1 else f"{kind} (mean of {len(labels)})"
        color, style = styles[kind]
        width = 2.4 if kind == "gcs_server" else 1.4
        ax.plot(times, values, label=name, color=color, ls=style, lw=width)
        after = [(t, v) for t, v in zip(times, values) if t >= 1.0]
        # Left out: the inference replica (its RSS swings by tens of MB with each batch's tensors) and idle workers.
        if len(after) >= 2 and kind not in ("idle_worker", "InferenceWorker"):
            ax_delta.plot([t for t, _ in after], [v - after[0][1] for _, v in after], color=color, ls=style,
                          label=name, lw=width)
    before = result["issue_gcs_before"]
    ax_ray.plot([0, before["minutes"]], [before["start_mb"], before["end_mb"]], "k:", lw=1.2,
                label=f"gcs_server before the redesign (issue: {before['start_mb']:.0f} -> {before['end_mb']:.0f} MB)")
    stop = result.get("stop_requested_at_s")
    ax_delta.plot([1, before["minutes"]], [0, (before["end_mb"] - before["start_mb"]) * (before["minutes"] - 1)
                                               / before["minutes"]], "k:", lw=1.2, label="gcs_server before (issue)")
    for ax, title in ((ax_ray, "Ray's own processes"), (ax_ms, "maskstream: driver and actors"),
                      (ax_delta, "change since minute 1 (without the inference replica)")):
        if stop is not None:
            ax.axvline(stop / 60, color="grey", lw=0.8, ls=":")
        ax.set_title(title)
        ax.set_xlabel("minutes since the pipeline started")
        ax.set_ylabel("RSS change (MB)" if ax is ax_delta else "RSS (MB)")
        if ax is not ax_delta:
            ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    ax_delta.set_ylim(-5, 20)
    args = result["args"]
    fig.suptitle(f"Soak: {args['streams']} streams {args['size']} @ {args['fps']:g} fps, {args['minutes']:g} min, "
                 f"compact Mask R-CNN with RANDOM weights on the CPU; {result['machine']['cpus']} cores, "
                 f"Ray {result['machine']['ray']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_tables(result: dict[str, Any]) -> None:
    print(f"\n{'process':34} {'start MB':>9} {'end MB':>8} {'slope MB/min':>13}  (from minute 1 to the stop)")
    for row in soak_table(result):
        slope = "-" if row["slope_mb_per_min"] is None else f"{row['slope_mb_per_min']:+.2f}"
        print(f"{row['process']:34} {row['start_mb']:9.1f} {row['end_mb']:8.1f} {slope:>13}")
    ps = per_stream_row(result)
    print(f"\npeak while streaming, by kind ({ps['streams']} streams):")
    for kind, k in sorted(ps["kinds"].items()):
        print(f"  {kind:28} {k['processes']:3d} proc  RSS {k['rss_mb']:8.1f}  PSS {k['pss_mb']:8.1f}  "
              f"USS {k['uss_mb']:8.1f}")
    print(f"  {'total':28} {ps['total']['processes']:3d} proc  RSS {ps['total']['rss_mb']:8.1f}  "
          f"PSS {ps['total']['pss_mb']:8.1f}  USS {ps['total']['uss_mb']:8.1f}")


PER_STREAM_KINDS = ("SourceWorker", "OutputWorker", "TrackerWorker", "SinkWorker")


def print_per_stream(paths: list[Path]) -> None:
    """Markdown tables from short runs of each version at two stream counts (e.g. 2 and 4).

    Per stream: the per-stream actors (kinds in :data:`PER_STREAM_KINDS`) of the larger run divided by its
    stream count; and the marginal cost of one more stream, (total at N2 - total at N1) / (N2 - N1), which
    also holds what the shared processes (driver, dispatcher, inference, Ray's own) take per stream."""
    runs = []
    for path in paths:
        result = json.loads(path.read_text())
        version = result["code"].get("commit", "?")[:7]
        runs.append((version, result["args"]["streams"], per_stream_row(result), path.name))
    metrics = ("processes", "rss_mb", "pss_mb", "uss_mb")
    print("| run | code | streams | processes | RSS MB | PSS MB | USS MB |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for version, n, row, name in runs:
        t = row["total"]
        print(f"| {name} | {version} | {n} | {t['processes']} | {t['rss_mb']:.0f} | {t['pss_mb']:.0f} | "
              f"{t['uss_mb']:.0f} |")
    print("\n| code | per-stream actors: processes per stream | RSS MB per stream | USS MB per stream "
          "| each (RSS / USS MB) | marginal stream: processes | RSS MB | PSS MB | USS MB |")
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|")
    by_version: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for version, n, row, _ in runs:
        by_version.setdefault(version, []).append((n, row))
    for version, items in by_version.items():
        items.sort(key=lambda item: item[0])
        (n1, a), (n2, b) = items[0], items[-1]
        own = {m: sum(b["kinds"][k][m] for k in PER_STREAM_KINDS if k in b["kinds"]) / n2 for m in metrics}
        each = "; ".join(f"{k} {b['kinds'][k]['rss_mb'] / b['kinds'][k]['processes']:.0f} / "
                         f"{b['kinds'][k]['uss_mb'] / b['kinds'][k]['processes']:.0f}"
                         for k in PER_STREAM_KINDS if k in b["kinds"])
        if n2 != n1:
            d = {m: (b["total"][m] - a["total"][m]) / (n2 - n1) for m in metrics}
            marginal = f"{d['processes']:.1f} | {d['rss_mb']:.0f} | {d['pss_mb']:.0f} | {d['uss_mb']:.0f}"
        else:
            marginal = "- | - | - | -"
        print(f"| {version} | {own['processes']:.1f} | {own['rss_mb']:.0f} | {own['uss_mb']:.0f} | {each} | "
              f"{marginal} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=2)
    parser.add_argument("--minutes", type=float, default=8.0, help="stop (request_stop) after this long")
    parser.add_argument("--interval-s", type=float, default=10.0, help="seconds between two samples")
    parser.add_argument("--out", type=Path, default=Path("docs/bench"))
    parser.add_argument("--name", default="soak", help="basename of the JSON and PNG written to --out")
    parser.add_argument("--redis", default=None, help="also publish to this Redis (e.g. redis://127.0.0.1:6379/0)")
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--frames", type=int, default=0, help="frames per stream; 0: endless (a live camera)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-detections", type=int, default=5)
    parser.add_argument("--no-chart", action="store_true")
    parser.add_argument("--keep-sink-output", action="store_true", help="keep the JSON Lines files (a temp folder)")
    parser.add_argument("--report", type=Path, default=None,
                        help="only print the tables of an existing JSON (and draw its PNG again next to it)")
    parser.add_argument("--per-stream", type=Path, nargs="+", default=None,
                        help="only print the per-stream tables of short runs (JSONs of one or two versions)")
    args = parser.parse_args(argv)
    if args.per_stream is not None:
        print_per_stream(args.per_stream)
        return 0
    if args.report is not None:  # tables of an existing run; its chart drawn again unless --no-chart
        result = json.loads(args.report.read_text())
        print_tables(result)
        if not args.no_chart:
            chart(result, args.report.with_suffix(".png"))
            print(f"wrote {args.report.with_suffix('.png')}")
        return 0
    result = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / f"{args.name}.json"
    json_path.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"wrote {json_path}")
    if not args.no_chart:
        chart(result, args.out / f"{args.name}.png")
        print(f"wrote {args.out / f'{args.name}.png'}")
    print_tables(result)
    return 0 if result["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
