"""Fault benchmark: inject each fault the actor layer must survive once, and measure what it cost.

    .venv/bin/python docs/bench/faults.py --out docs/bench                # every scenario (faults.json, faults.md)
    .venv/bin/python docs/bench/faults.py --only baseline,kill-source --out /tmp/f   # some of them

One local Ray in this process (``ray.init(num_cpus=4, include_dashboard=False)``, as ``tests/conftest.py``)
runs ``maskstream``'s own ``PipelineRunner`` (``actors/graph.py``) once per scenario; a ``redis-server`` of
this script's own (a free port, append-only file, ``tests.actors.test_faults.RedisServer``) takes the Redis
sink with a history stream. File scenarios: 2 H.264 files of ``--frames`` frames at 320x240
(``tests.pipeline.sources.videos.write_video``), the compact Mask R-CNN with random weights at a small input
(the model config of ``tests/actors/test_chaos.py``), sinks JSON Lines + Redis history. The faults reuse the
tests' own tools:

- ``kill-source`` / ``kill-output`` / ``kill-dispatcher`` / ``kill-inference``: SIGKILL of that actor's worker
  process (pid from Ray's GCS actor table, ``tests.actors.test_chaos.actor_pid``) once stream ``a`` has
  published ``--kill-after`` frames (source and output: those of stream ``a``).
- ``redis-down``: the redis-server stopped for 5 s, then started again on the same port (its data kept).
- ``rtsp-restart``: a live GStreamer RTSP camera (``RestartableRtspServer``) killed 3 times, off 1 s each.
- ``udp-pause``: a live UDP MPEG-TS sender (``UdpCamera``) pauses 5 s, ``stall_timeout_s`` 2.
- ``node-removal``: ``tests/actors/cluster_run.py`` in a subprocess (a two-node ``ray.cluster_utils.Cluster``,
  the worker node holding the inference replica removed), its report JSON read back; run last, after this
  process's Ray is shut down.

Counting (per stream, from the raw JSON Lines file and the Redis history stream ``<channel>:history``):
published = distinct frame ``seq``; lost = a ``seq`` missing (file streams: of ``0..frames-1``; live streams:
of ``0..max seq``); duplicated = extra occurrences of a ``seq``. Live streams are not exactly once: frames the
camera sent while the connection was down are never decoded (``dropped``: the ``lost`` of the ``recovered``
status events, frames the source dropped under load, and ``frame`` index gaps).

Times (wall clock, ``time.time()``), from the moment of the fault (the SIGKILL, the redis-server stop, the
camera kill, the sender's pause):

- detect: the supervisor's or the stream's first sign after it: the driver's console line
  ``<actor>: not answering ...`` (the time it was written, recorded by a console file of this script),
  ``RunReport.restarts[].at``, or a status event's ``at`` (``restarted``, ``stalled``, ``reconnecting``,
  ``sink_unavailable``...), whichever is first.
- recover: when frames flow again. A thread tails the JSON Lines files and records when each line appeared
  (lines are written at publication). File scenarios: the first publication after the fault that ends the
  longest gap between consecutive publications of the stream (frames already past the dead actor may still
  be published just after the fault; the gap is the outage); for shared actors, the later of the two
  streams. Redis down: the same on the Redis history's ``published_at``. Live: the first frame published
  after the ``recovered`` event that follows each outage.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import ray  # noqa: E402
import redis  # noqa: E402
import yaml  # noqa: E402
from rich.console import Console  # noqa: E402

from actors.graph import PipelineRunner, RunReport  # noqa: E402
from pipeline.config import parse_config  # noqa: E402
from tests.actors.test_chaos import actor_pid  # noqa: E402
from tests.actors.test_faults import MODEL, RedisServer, frame_lines, wait_for  # noqa: E402
from tests.pipeline.sources.test_sources_reconnect import RestartableRtspServer, UdpCamera, free_port  # noqa: E402
from tests.pipeline.sources.test_sources_rtsp import write_camera_video  # noqa: E402
from tests.pipeline.sources.videos import write_video  # noqa: E402

FILE_SCENARIOS = ("baseline", "kill-source", "kill-output", "kill-dispatcher", "kill-inference", "redis-down")
LIVE_SCENARIOS = ("rtsp-restart", "udp-pause")
ALL_SCENARIOS = FILE_SCENARIOS + LIVE_SCENARIOS + ("node-removal",)
WIDTH, HEIGHT = 320, 240
REDIS_OUTAGE_S = 5.0
CAMERA_OFF_S = 1.0
CAMERA_RESTARTS = 3
UDP_PAUSE_S = 5.0
UDP_STALL_TIMEOUT_S = 2.0
# Frames published between two camera outages and after the last recovery, before the live run is stopped.
LIVE_FRAMES_BETWEEN = 25
# A scenario still running after this many seconds is stopped (and marked hung); the script exits if even that fails.
SCENARIO_TIMEOUT_S = 240.0
HARD_TIMEOUT_S = SCENARIO_TIMEOUT_S + 150.0


# ---- recording ----------------------------------------------------------------------------------------
class ConsoleLog:
    """The driver's console file: echoes to stderr and records each line with the time it was written."""

    def __init__(self) -> None:
        self.lines: list[tuple[float, str]] = []
        self._buf = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        sys.stderr.write(text)
        with self._lock:
            self._buf += text
            while "\n" in self._buf:
                line, self._buf = self._buf.split("\n", 1)
                self.lines.append((time.time(), line))
        return len(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return False


class Tail(threading.Thread):
    """Tails JSON Lines files; records (time seen, message) for each complete line as it appears.

    Only whole lines are consumed: a torn last line that a restarted output cuts is never read, and the
    lines it appends from there are."""

    def __init__(self, paths: dict[str, Path]) -> None:
        super().__init__(daemon=True)
        self.paths = paths
        self.seen: dict[str, list[tuple[float, dict[str, Any]]]] = {sid: [] for sid in paths}
        self._pos = dict.fromkeys(paths, 0)
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.poll()
            self._stop_event.wait(0.02)
        self.poll()

    def poll(self) -> None:
        for sid, path in self.paths.items():
            try:
                with open(path, "rb") as f:
                    f.seek(self._pos[sid])
                    data = f.read()
            except OSError:
                continue
            end = data.rfind(b"\n")
            if end < 0:
                continue
            now = time.time()
            for raw in data[: end + 1].splitlines():
                if raw.strip():
                    try:
                        self.seen[sid].append((now, json.loads(raw)))
                    except json.JSONDecodeError:
                        self.seen[sid].append((now, {"type": "unparsable"}))
            self._pos[sid] += end + 1

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for raw in path.read_text(errors="replace").splitlines():
        if raw.strip():
            try:
                out.append(json.loads(raw))
            except json.JSONDecodeError:
                out.append({"type": "unparsable", "text": raw[:200]})
    return out


def redis_history(url: str, channel: str) -> list[dict[str, Any]]:
    client = redis.Redis.from_url(url)
    try:
        return [json.loads(fields[b"json"]) for _, fields in client.xrange(f"{channel}:history")]
    finally:
        client.close()


def seq_counts(messages: list[dict[str, Any]], expected: int | None) -> dict[str, Any]:
    """Frame seqs of one stream's messages: distinct, missing (lost), repeated (duplicated)."""
    seqs = [int(m["seq"]) for m in messages if m.get("type") == "frame"]
    counts = Counter(seqs)
    top = expected if expected is not None else (max(seqs) + 1 if seqs else 0)
    missing = sorted(set(range(top)) - set(counts))
    repeated = sorted(s for s, c in counts.items() if c > 1)
    indexes = [int(m["frame"]) for m in messages if m.get("type") == "frame"]
    return {
        "lines": len(seqs),
        "published": len(counts),
        "lost": len(missing),
        "lost_seqs": missing[:50],
        "duplicated": sum(c - 1 for c in counts.values() if c > 1),
        "duplicated_seqs": repeated[:50],
        "in_order": seqs == sorted(seqs),
        "index_gaps": sum(max(0, b - a - 1) for a, b in zip(indexes, indexes[1:])),
        "index_repeats": sum(1 for a, b in zip(indexes, indexes[1:]) if b <= a),
        "end": next(({k: m.get(k) for k in ("frames", "decoded", "dropped", "error")}
                     for m in messages if m.get("type") == "end"), None),
        "statuses": [{k: m.get(k) for k in ("state", "at", "seq", "actor", "lost", "downtime_s", "attempt", "reason")}
                     for m in messages if m.get("type") == "status"],
    }


def stall_end(times: list[float], fault_at: float, window_s: float = 120.0) -> dict[str, Any] | None:
    """The publication after the fault that ends the longest gap between consecutive publications."""
    times = sorted(times)
    prev = None
    best: tuple[float, float] | None = None  # (gap, time)
    first_after = None
    for t in times:
        if t <= fault_at:
            prev = t
            continue
        if t > fault_at + window_s:
            break
        if first_after is None:
            first_after = t
        gap = t - (prev if prev is not None else fault_at)
        if best is None or gap > best[0]:
            best = (gap, t)
        prev = t
    if best is None:
        return None
    return {"recover_s": best[1] - fault_at, "stall_s": best[0],
            "first_publish_after_fault_s": (first_after or best[1]) - fault_at}


# ---- configs ----------------------------------------------------------------------------------------
def pipeline_raw(streams: list[dict[str, Any]], out: Path, redis_url: str | None, channel: str) -> dict[str, Any]:
    sinks: dict[str, Any] = {"jsonl": {"dir": str(out)}}
    if redis_url is not None:
        sinks["redis"] = {"url": redis_url, "channel": f"{channel}:{{stream}}", "history_maxlen": 10000}
    return {
        "streams": streams,
        "model": MODEL,
        "inference": {"replicas": 1, "num_gpus": 0, "num_cpus": 1, "max_batch_size": 4, "max_wait_ms": 50},
        "tracking": {"high_score_threshold": 0.0, "low_score_threshold": 0.0, "new_track_score_threshold": 0.0,
                     "duplicate_mask_iou_threshold": None},
        "backpressure": {"max_in_flight_per_stream": 8},
        "sinks": sinks,
        "supervision": {"max_restarts": 3, "probe_interval_s": 0.5},
        "run": {"status_interval_s": 5, "drain_timeout_s": 60, "progress": False},
    }


# ---- one pipeline run ---------------------------------------------------------------------------------
@dataclasses.dataclass
class Run:
    report: RunReport | None
    console: ConsoleLog
    tail: Tail
    faults: list[dict[str, Any]]
    hung: bool
    wall_s: float
    error: str | None = None


def run_pipeline(config: Any, jsonl: dict[str, Path], inject: Callable[[PipelineRunner, list[dict[str, Any]]], None],
                 timeout_s: float = SCENARIO_TIMEOUT_S) -> Run:
    console = ConsoleLog()
    runner = PipelineRunner(config, console=Console(file=console, width=160, force_terminal=False))  # type: ignore[arg-type]
    tail = Tail(jsonl)
    faults: list[dict[str, Any]] = []
    errors: list[str] = []
    done = threading.Event()
    hung = threading.Event()

    def injector() -> None:
        try:
            inject(runner, faults)
        except BaseException as exc:  # noqa: BLE001 - recorded in the results
            errors.append(f"fault injection failed: {type(exc).__name__}: {exc}")
            runner.request_stop()

    def watchdog() -> None:
        if not done.wait(timeout_s):
            hung.set()
            print(f"faults.py: scenario still running after {timeout_s:.0f} s: stopping it", file=sys.stderr, flush=True)
            runner.request_stop()
        if not done.wait(HARD_TIMEOUT_S - timeout_s):
            print("faults.py: the run did not return after the stop: exiting", file=sys.stderr, flush=True)
            os._exit(3)

    tail.start()
    threading.Thread(target=injector, daemon=True).start()
    threading.Thread(target=watchdog, daemon=True).start()
    started = time.monotonic()
    report = None
    try:
        report = runner.run()
    except BaseException as exc:  # noqa: BLE001 - recorded in the results
        errors.append(f"run raised {type(exc).__name__}: {exc}")
    finally:
        done.set()
    wall = time.monotonic() - started
    time.sleep(0.3)
    tail.stop()
    return Run(report, console, tail, faults, hung.is_set(), wall, "; ".join(errors) or None)


def report_dict(report: RunReport | None) -> dict[str, Any] | None:
    if report is None:
        return None
    return {
        "exit_code": report.exit_code,
        "wall_s": report.wall_s,
        "summaries": [dataclasses.asdict(s) for s in report.summaries],
        "restarts": [dataclasses.asdict(r) for r in report.restarts],
        "batching": dataclasses.asdict(report.batching) if report.batching else None,
    }


def console_signs(console: ConsoleLog, since: float) -> list[dict[str, Any]]:
    return [{"written_at": t, "line": line.strip()} for t, line in console.lines
            if t >= since and ("not answering" in line or "restarted:" in line or "cannot be restarted" in line)]


# ---- file scenarios -------------------------------------------------------------------------------------
def file_scenario(name: str, work: Path, videos: dict[str, Path], frames: int, server: RedisServer,
                  kill_after: int) -> dict[str, Any]:
    out = work / name
    channel = f"faults-{name}"
    config = parse_config(pipeline_raw([{"id": sid, "url": str(p)} for sid, p in videos.items()], out, server.url,
                                       channel))
    jsonl = {sid: out / f"{sid}.jsonl" for sid in videos}
    kind = name.removeprefix("kill-") if name.startswith("kill-") else None

    def inject(runner: PipelineRunner, faults: list[dict[str, Any]]) -> None:
        if name == "baseline":
            return
        if not wait_for(lambda: frame_lines(jsonl["a"]) >= kill_after, 180):
            raise RuntimeError(f"stream a did not reach {kill_after} frames")
        if kind is not None:
            pid = actor_pid(kind, "a")
            if pid is None or pid == os.getpid():
                raise RuntimeError(f"no live {kind} actor found")
            at = time.time()
            os.kill(pid, signal.SIGKILL)
            faults.append({"fault": f"SIGKILL {kind}", "pid": pid, "at": at,
                           "published_a": frame_lines(jsonl["a"]), "published_b": frame_lines(jsonl["b"])})
        else:  # redis-down
            at = time.time()
            server.stop()
            fault = {"fault": f"redis-server stopped {REDIS_OUTAGE_S:.0f} s", "at": at,
                     "published_a": frame_lines(jsonl["a"]), "published_b": frame_lines(jsonl["b"])}
            faults.append(fault)
            time.sleep(REDIS_OUTAGE_S)
            fault["jsonl_frames_during_outage"] = (frame_lines(jsonl["a"]) + frame_lines(jsonl["b"])
                                                   - fault["published_a"] - fault["published_b"])
            server.start()
            fault["restarted_at"] = time.time()

    run = run_pipeline(config, jsonl, inject)
    result: dict[str, Any] = {"scenario": name, "kind": "file", "frames_per_stream": frames, "wall_s": run.wall_s,
                              "hung": run.hung, "error": run.error, "faults": run.faults,
                              "report": report_dict(run.report), "streams": {}}
    if name == "redis-down" and server.proc is not None and server.proc.poll() is not None:
        server.start()  # the injection failed between stop and start
    fault_at = run.faults[0]["at"] if run.faults else None
    affected = ["a"] if kind in ("source", "output") else list(videos)
    for sid in videos:
        lines = read_lines(jsonl[sid])
        history = redis_history(server.url, f"{channel}:{sid}")
        entry = {"jsonl": seq_counts(lines, frames), "redis": seq_counts(history, frames)}
        seen = [(t, m) for t, m in run.tail.seen[sid] if m.get("type") == "frame"]
        if fault_at is not None:
            entry["recover_jsonl"] = stall_end([t for t, _ in seen], fault_at)
            entry["recover_redis"] = stall_end([float(m["published_at"]) for m in history
                                                if m.get("type") == "frame" and m.get("published_at")], fault_at)
            entry["first_status_after_fault"] = next(
                (s for s in entry["jsonl"]["statuses"] if s["at"] is not None and s["at"] >= fault_at - 0.001), None)
        result["streams"][sid] = entry
    if fault_at is not None:
        signs: dict[str, float] = {}
        lines_seen = console_signs(run.console, fault_at)
        result["console"] = lines_seen
        answering = [c["written_at"] for c in lines_seen if "not answering" in c["line"]]
        if answering:
            signs["console_not_answering"] = answering[0]
        restarts = [r for r in (run.report.restarts if run.report else []) if r.at >= fault_at - 1.0]
        if restarts:
            signs["restart_record_at"] = min(r.at for r in restarts)
        statuses = [result["streams"][sid].get("first_status_after_fault") for sid in videos]
        statuses = [s for s in statuses if s]
        if statuses:
            signs["status_event_at"] = min(s["at"] for s in statuses)
        result["detect_signs_s"] = {k: v - fault_at for k, v in signs.items()}
        result["detect_s"] = min(result["detect_signs_s"].values()) if signs else None
        key = "recover_redis" if name == "redis-down" else "recover_jsonl"
        recov = [result["streams"][sid][key] for sid in affected if result["streams"][sid].get(key)]
        result["recover_s"] = max(r["recover_s"] for r in recov) if len(recov) == len(affected) else None
        result["recover_basis"] = ("Redis history published_at" if name == "redis-down" else "JSON Lines tail") + \
            f", streams {','.join(affected)}"
    return result


# ---- live scenarios -------------------------------------------------------------------------------------
def live_scenario(name: str, work: Path, server: RedisServer) -> dict[str, Any]:
    out = work / name
    channel = f"faults-{name}"
    jsonl = {"cam": out / "cam.jsonl"}
    camera: Any
    if name == "rtsp-restart":
        video = write_camera_video(work / "camera.mp4", 750)  # 30 s: longer than any connection lasts
        camera = RestartableRtspServer(video, free_port(), work)
        camera.start()
        stream = {"id": "cam", "url": camera.url, "open_timeout_s": 3, "read_timeout_s": 2, "stall_timeout_s": 2,
                  "reconnect": {"initial_s": 0.2, "max_s": 1.0}}
    else:
        camera = UdpCamera(free_port(socket.SOCK_DGRAM)).start()
        stream = {"id": "cam", "url": camera.url, "open_timeout_s": 3, "read_timeout_s": 4,
                  "stall_timeout_s": UDP_STALL_TIMEOUT_S, "reconnect": {"initial_s": 0.2, "max_s": 1.0}}
    config = parse_config(pipeline_raw([stream], out, server.url, channel))

    def recovered_count() -> int:
        return sum(1 for line in jsonl["cam"].open() if '"state":"recovered"' in line) if jsonl["cam"].exists() else 0

    def inject(runner: PipelineRunner, faults: list[dict[str, Any]]) -> None:
        try:
            if not wait_for(lambda: frame_lines(jsonl["cam"]) >= 30, 120):
                raise RuntimeError("the camera stream did not reach 30 frames")
            if name == "rtsp-restart":
                for i in range(CAMERA_RESTARTS):
                    seen = frame_lines(jsonl["cam"])
                    if i:
                        wait_for(lambda s=seen: frame_lines(jsonl["cam"]) >= s + LIVE_FRAMES_BETWEEN, 30)
                    fault = {"fault": f"RTSP camera killed, off {CAMERA_OFF_S:.0f} s", "at": time.time(),
                             "published": frame_lines(jsonl["cam"])}
                    camera.kill()
                    faults.append(fault)
                    time.sleep(CAMERA_OFF_S)
                    camera.start()
                    fault["restarted_at"] = time.time()
                    wait_for(lambda n=i + 1: recovered_count() >= n, 30)
            else:
                fault = {"fault": f"UDP sender paused {UDP_PAUSE_S:.0f} s", "at": time.time(),
                         "published": frame_lines(jsonl["cam"])}
                camera.pause(UDP_PAUSE_S)
                faults.append(fault)
                wait_for(lambda: recovered_count() >= 1, 30)
            seen = frame_lines(jsonl["cam"])
            wait_for(lambda: frame_lines(jsonl["cam"]) >= seen + LIVE_FRAMES_BETWEEN, 30)
        finally:
            runner.request_stop()

    try:
        run = run_pipeline(config, jsonl, inject, timeout_s=150)
    finally:
        if name == "rtsp-restart":
            camera.shutdown()
        else:
            camera.stop()
    lines = read_lines(jsonl["cam"])
    history = redis_history(server.url, f"{channel}:cam")
    entry = {"jsonl": seq_counts(lines, None), "redis": seq_counts(history, None)}
    result: dict[str, Any] = {"scenario": name, "kind": "live", "wall_s": run.wall_s, "hung": run.hung,
                              "error": run.error, "faults": run.faults, "report": report_dict(run.report),
                              "streams": {"cam": entry}}
    # Per outage: the first status after the fault; the first frame published after the `recovered` that follows.
    seen = run.tail.seen["cam"]
    outages = []
    for i, fault in enumerate(run.faults):
        until = run.faults[i + 1]["at"] if i + 1 < len(run.faults) else float("inf")
        statuses = [s for s in entry["jsonl"]["statuses"] if s["at"] is not None and fault["at"] <= s["at"] < until]
        first = statuses[0] if statuses else None
        recovered = next((s for s in statuses if s["state"] == "recovered"), None)
        recover_at = None
        recover_seq = None
        if recovered is not None:
            after = False
            for t, m in seen:
                if m.get("type") == "status" and m.get("state") == "recovered" and m.get("at") == recovered["at"]:
                    after = True
                elif after and m.get("type") == "frame":
                    recover_at, recover_seq = t, m["seq"]
                    break
        redis_pub = next((float(m["published_at"]) for m in history
                          if m.get("type") == "frame" and m.get("seq") == recover_seq and m.get("published_at")), None)
        outages.append({
            "fault_at": fault["at"],
            "detect_s": (first["at"] - fault["at"]) if first else None,
            "detect_state": first["state"] if first else None,
            "states": [s["state"] for s in statuses],
            "recovered": recovered,
            "recover_s": (recover_at - fault["at"]) if recover_at else None,
            "recover_redis_s": (redis_pub - fault["at"]) if redis_pub else None,
            "first_seq_after_recovery": recover_seq,
            "dropped_outage": recovered.get("lost") if recovered else None,
        })
    result["outages"] = outages
    result["dropped"] = {
        "outage_lost": sum(o["dropped_outage"] or 0 for o in outages),
        "source_dropped_under_load": sum(s["dropped"] for s in result["report"]["summaries"]) if run.report else None,
        "index_gaps": entry["jsonl"]["index_gaps"],
    }
    return result


# ---- node removal (a subprocess: a second Ray cannot live in this process) ----------------------------------
def node_scenario(work: Path, videos: dict[str, Path], frames: int, server: RedisServer, kill_after: int,
                  timeout_s: float) -> dict[str, Any]:
    out = work / "node-removal"
    out.mkdir(parents=True, exist_ok=True)
    channel = "faults-node-removal"
    raw = pipeline_raw([{"id": sid, "url": str(p)} for sid, p in videos.items()], out, server.url, channel)
    config_path = out / "cluster.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    report_path = out / "report.json"
    log_path = out / "cluster_run.log"
    command = [sys.executable, str(REPO / "tests" / "actors" / "cluster_run.py"), str(config_path), str(report_path),
               "--kill-after", str(kill_after)]
    started = time.monotonic()
    with open(log_path, "w") as log:
        try:
            proc = subprocess.run(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, timeout=timeout_s)
            rc: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            rc = None
    wall = time.monotonic() - started
    log_text = log_path.read_text(errors="replace")
    result: dict[str, Any] = {"scenario": "node-removal", "kind": "file", "frames_per_stream": frames, "wall_s": wall,
                              "hung": rc is None, "returncode": rc, "command": shlex.join(command), "streams": {},
                              "error": None if rc == 0 and report_path.exists() else
                              f"cluster_run.py exit {rc}; log tail: {log_text[-1500:]}"}
    if not report_path.exists():
        return result
    report = json.loads(report_path.read_text())
    result["report"] = report
    removed_at = float(report["removed"]["at"])
    result["faults"] = [{"fault": "worker node removed (cluster.remove_node, not graceful)", "at": removed_at,
                         "published_a": report["removed"]["at_frames"]}]
    for sid in videos:
        lines = read_lines(out / f"{sid}.jsonl")
        history = redis_history(server.url, f"{channel}:{sid}")
        entry = {"jsonl": seq_counts(lines, frames), "redis": seq_counts(history, frames)}
        entry["recover_redis"] = stall_end([float(m["published_at"]) for m in history
                                            if m.get("type") == "frame" and m.get("published_at")], removed_at)
        entry["first_status_after_fault"] = next(
            (s for s in entry["jsonl"]["statuses"] if s["at"] is not None and s["at"] >= removed_at - 0.001), None)
        result["streams"][sid] = entry
    day = datetime.fromtimestamp(removed_at)
    stamps = []
    for line in log_text.splitlines():
        if "not answering" in line:
            try:
                clock = datetime.strptime(line.strip()[:8], "%H:%M:%S").time()
                stamps.append((datetime.combine(day.date(), clock).timestamp(), line.strip()))
            except ValueError:
                continue
    result["console"] = [{"stamp_at": t, "line": line} for t, line in stamps]
    signs: dict[str, float] = {}
    after = [t for t, _ in stamps if t >= removed_at - 1.0]  # HH:MM:SS: the line came within 1 s after its stamp
    if after:
        result["console_not_answering_stamp_s"] = after[0] - removed_at  # a cross-check only: not in detect_s
    restarts = [r["at"] for r in report["restarts"] if r["at"] >= removed_at - 1.0]
    if restarts:
        signs["restart_record_at"] = min(restarts)
    statuses = [e["first_status_after_fault"] for e in result["streams"].values() if e["first_status_after_fault"]]
    if statuses:
        signs["status_event_at"] = min(s["at"] for s in statuses)
    result["detect_signs_s"] = {k: v - removed_at for k, v in signs.items()}
    result["detect_s"] = min(result["detect_signs_s"].values()) if signs else None
    recov = [e["recover_redis"] for e in result["streams"].values() if e.get("recover_redis")]
    result["recover_s"] = max(r["recover_s"] for r in recov) if len(recov) == len(videos) else None
    result["recover_basis"] = "Redis history published_at (the subprocess's JSON Lines are not tailed), streams a,b"
    return result


# ---- output -------------------------------------------------------------------------------------------
def machine_facts() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    import torch

    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.strip()
    return {"cpus": os.cpu_count(), "cpu": cpu, "mem_total_mb": mem_kb // 1024, "kernel": platform.release(),
            "python": platform.python_version(), "ray": ray.__version__, "torch": torch.__version__,
            "redis": redis_version, "loadavg_start": os.getloadavg()}


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table_row(r: dict[str, Any]) -> str:
    name = r["scenario"]
    streams = r.get("streams", {})
    if not streams:
        return f"| {name} | – | – | – | – | – | – | did not run: {r.get('error') or r.get('skipped')} |"
    summaries = (r.get("report") or {}).get("summaries") or []
    decoded = sum(s["decoded"] for s in summaries) if summaries else None
    j = [e["jsonl"] for e in streams.values()]
    rd = [e["redis"] for e in streams.values()]
    published = f"{sum(x['published'] for x in j)} / {sum(x['published'] for x in rd)}"
    lost = f"{sum(x['lost'] for x in j)} / {sum(x['lost'] for x in rd)}"
    dup = f"{sum(x['duplicated'] for x in j)} / {sum(x['duplicated'] for x in rd)}"
    notes = []
    if r["kind"] == "live":
        detect = " / ".join(fmt(o["detect_s"]) for o in r["outages"]) or "–"
        recover = " / ".join(fmt(o["recover_s"]) for o in r["outages"]) or "–"
        d = r["dropped"]
        notes.append(f"{len(r['outages'])} outage(s), first signs {', '.join(str(o['detect_state']) for o in r['outages'])}; "
                     f"dropped (not lost: never decoded, or dropped by the live queue): {d['outage_lost']} during the outages "
                     f"(`recovered`.lost), {d['source_dropped_under_load']} by the source under load (`dropped`), "
                     f"published `frame` index gaps {d['index_gaps']}")
    else:
        detect, recover = fmt(r.get("detect_s")), fmt(r.get("recover_s"))
        if r.get("faults"):
            f = r["faults"][0]
            notes.append(f"fault after {f.get('published_a')} frames of a")
        if r.get("detect_signs_s"):
            notes.append("signs: " + ", ".join(f"{k} {v:.2f}" for k, v in r["detect_signs_s"].items()))
        if r.get("console_not_answering_stamp_s") is not None:
            notes.append(f"console `not answering` stamp (HH:MM:SS, 1 s) {r['console_not_answering_stamp_s']:.2f}")
        key = "recover_redis" if r["scenario"] in ("redis-down", "node-removal") else "recover_jsonl"
        stalls = {sid: e[key] for sid, e in streams.items() if e.get(key)}
        if stalls:
            notes.append("longest publication gap " + ", ".join(f"{sid} {s['stall_s']:.2f}" for sid, s in stalls.items())
                         + " s")
        restarts = (r.get("report") or {}).get("restarts") or []
        if restarts:
            notes.append("restarts: " + ", ".join(f"{x['actor']} lost {x['lost']}" for x in restarts))
        if r["scenario"] == "redis-down" and r.get("faults"):
            notes.append(f"JSON Lines frames during the outage: {r['faults'][0].get('jsonl_frames_during_outage')}")
    for x in j:
        if not x["in_order"]:
            notes.append("JSON Lines seqs out of order")
    ends = [x["end"] for x in j]
    if any(e is None or e.get("error") for e in ends):
        notes.append("end messages: " + "; ".join(str(e) for e in ends))
    exit_code = (r.get("report") or {}).get("exit_code")
    if exit_code not in (0, None):
        notes.append(f"exit code {exit_code}")
    if r.get("hung"):
        notes.append("HUNG (stopped by the watchdog)")
    if r.get("error"):
        notes.append(f"error: {r['error'][:300]}")
    return (f"| {name} | {fmt(decoded)} | {published} | {lost} | {dup} | {detect} | {recover} | "
            f"{'; '.join(notes)} |")


def write_outputs(out: Path, results: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "faults.json").write_text(json.dumps({**meta, "scenarios": results}, indent=1, default=str) + "\n")
    m = meta["machine"]
    lines = [
        "# Fault benchmark",
        "",
        f"Command: `{meta['command']}` (run {meta['started']}, {meta['wall_s']:.0f} s in all).",
        "",
        f"Machine: {m['cpus']} CPUs ({m['cpu']}), {m['mem_total_mb']} MB, Linux {m['kernel']}, Python {m['python']}, "
        f"Ray {m['ray']}, torch {m['torch']}, {m['redis']}; load average {m['loadavg_start'][0]:.2f} at start "
        f"(over the last minute: what else ran just before).",
        "",
        f"Pipeline: one local Ray (`num_cpus=4`), streams `a` and `b`: H.264 files of {meta['frames']} frames at "
        f"{WIDTH}x{HEIGHT}; compact Mask R-CNN, random weights, input 96-128 px, CPU, 1 replica, batches up to 4; "
        "sinks JSON Lines + Redis with history (redis-server of the script's own, append-only). Faults at "
        f"{meta['kill_after']} published frames of stream `a`. Live: one camera stream `cam` (128x64, 25 fps).",
        "",
        "Columns: published, lost and duplicated are *JSON Lines / Redis history*, summed over the streams "
        "(lost: a `seq` missing; duplicated: a `seq` more than once). decoded: the sources' count "
        "(`RunReport` summaries; a restarted file source counts the frames it skipped as decoded). detect s: "
        "fault to the first sign (console `not answering` line, `RunReport.restarts[].at`, or a status event's "
        "`at`). recover s: fault to the first publication that ends the longest publication gap after it "
        "(JSON Lines lines timed by a tailing thread; Redis down and node removal: Redis `published_at`); "
        "for shared actors, the later stream. Live rows: one value per outage; recover = first frame published "
        "after that outage's `recovered` event.",
        "",
        "| fault | decoded | published | lost | duplicated | detect s | recover s | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [table_row(r) for r in results]
    bad = [r["scenario"] for r in results if r.get("hung") or r.get("error") or not r.get("streams")
           or (r.get("report") or {}).get("exit_code") not in (0, None)
           or any(e[k]["lost"] or e[k]["duplicated"] for e in r["streams"].values() for k in ("jsonl", "redis"))]
    lines += ["", "Scenarios with a lost or duplicated frame, an error, a failed exit or a hang: "
              + (", ".join(bad) if bad else "none") + "."]
    lines += ["", "Raw numbers (per stream, per outage, every status event, console lines): `faults.json`.", ""]
    (out / "faults.md").write_text("\n".join(lines))


# ---- main ---------------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--kill-after", type=int, default=30)
    parser.add_argument("--only", default=",".join(ALL_SCENARIOS), help="comma-separated scenario names")
    args = parser.parse_args()
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(ALL_SCENARIOS))
    if unknown:
        parser.error(f"unknown scenarios {unknown}; known: {', '.join(ALL_SCENARIOS)}")
    started = time.monotonic()
    meta: dict[str, Any] = {
        "command": ".venv/bin/python " + shlex.join([os.path.relpath(__file__, REPO), *sys.argv[1:]]),
        "started": datetime.now().isoformat(timespec="seconds"), "frames": args.frames,
        "kill_after": args.kill_after, "machine": machine_facts(), "wall_s": 0.0,
    }
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="faults-") as tmp:
        work = Path(tmp)
        server = RedisServer(work)
        server.start()
        try:
            videos = {sid: write_video(work / f"{sid}.mp4", num_frames=args.frames, width=WIDTH, height=HEIGHT, fps=25)
                      for sid in ("a", "b")}
            in_process = [s for s in chosen if s != "node-removal"]
            if in_process:
                ray.init(num_cpus=4, include_dashboard=False, log_to_driver=True, configure_logging=False,
                         runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
                try:
                    for name in in_process:
                        print(f"\n==== faults.py: {name} ====", file=sys.stderr, flush=True)
                        if name in FILE_SCENARIOS:
                            result = file_scenario(name, work, videos, args.frames, server, args.kill_after)
                        else:
                            try:
                                result = live_scenario(name, work, server)
                            except RuntimeError as exc:  # e.g. GStreamer's RTSP server cannot start
                                result = {"scenario": name, "kind": "live", "error": str(exc), "streams": {}}
                        results.append(result)
                        meta["wall_s"] = time.monotonic() - started
                        write_outputs(args.out, results, meta)
                finally:
                    ray.shutdown()
            if "node-removal" in chosen:
                print("\n==== faults.py: node-removal (tests/actors/cluster_run.py) ====", file=sys.stderr, flush=True)
                results.append(node_scenario(work, videos, args.frames, server, args.kill_after, timeout_s=400))
        finally:
            server.stop()
    meta["wall_s"] = time.monotonic() - started
    meta["machine"]["loadavg_end"] = os.getloadavg()
    write_outputs(args.out, results, meta)
    print((args.out / "faults.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
