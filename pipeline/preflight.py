"""Checks of a loaded config against this machine, before Ray or any model starts.

``load_config`` checks what a config *says*; :func:`preflight` checks what it *names*: that every
local file exists and can be read (stream files, the model checkpoint), that the output folders can
be written, that ``synthetic:`` urls parse, and that a local Ray can hold the streams in memory.
Without it each of these failed only once Ray and the model had started, about a minute later.

Every problem found is listed in one :class:`~pipeline.errors.ConfigError`, each line naming the
YAML path, e.g.::

    pipeline.yaml: 2 problems found before starting
      streams[1].url: file does not exist: /videos/cam2.mp4
      model.weights: is a folder, not a file: /models
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.config import PipelineConfig
from pipeline.errors import ConfigError
from pipeline.naming import SYNTHETIC_PREFIX, local_path, weights_is_path

PER_STREAM_MEMORY_MB = 360
"""Resident memory (MB) of one stream's actors together: its source and its output, one process each.
Measured (docs/bench/soak.md, 320x240 streams): 185 + 171 MB RSS, about 200 MB of it the stream's own
(the rest shared library pages); the marginal cost of a stream was 376 MB RSS. Larger frames add their
decoded frames and buffers. Used only to refuse what a local Ray surely cannot hold (the model replicas
and Ray's own processes come on top), so it errs low rather than high."""

_MB = 1024 * 1024


def preflight(config: PipelineConfig, *, source: str = "config", total_memory_bytes: int | None = None) -> None:
    """Raise ``ConfigError`` listing every problem :func:`preflight_problems` finds; return when there is none.

    ``source`` names the config in the message (its file). ``total_memory_bytes``: the memory a local Ray
    may use; ``None`` measures this machine's (:func:`machine_memory_bytes`).
    """
    problems = preflight_problems(config, total_memory_bytes=total_memory_bytes)
    if problems:
        count = len(problems)
        header = f"{source}: {count} problem{'s' if count != 1 else ''} found before starting"
        raise ConfigError(header + "".join(f"\n  {p}" for p in problems))


def preflight_problems(config: PipelineConfig, *, total_memory_bytes: int | None = None) -> list[str]:
    """Every problem of ``config`` on this machine, one line each starting with its YAML path; empty when none."""
    problems: list[str] = []
    for i, stream in enumerate(config.streams):
        problem = _stream_url_problem(stream.url)
        if problem is not None:
            problems.append(f"streams[{i}].url: {problem}")
    if weights_is_path(config.model.weights):
        problem = _file_problem(Path(str(config.model.weights)))
        if problem is not None:
            hint = "" if Path(str(config.model.weights)).exists() else (
                " (a checkpoint written by `maskstream train`; torchvision weights are named like DEFAULT or "
                "COCO_V1; none: random weights)"
            )
            problems.append(f"model.weights: {problem}{hint}")
    for name, sink in (("video", config.sinks.video), ("jsonl", config.sinks.jsonl)):
        if sink is not None:
            problem = _folder_problem(Path(sink.dir))
            if problem is not None:
                problems.append(f"sinks.{name}.dir: {problem}")
    if config.ray.address is None:
        memory = machine_memory_bytes() if total_memory_bytes is None else total_memory_bytes
        problem = memory_problem(len(config.streams), memory)
        if problem is not None:
            problems.append(f"streams: {problem}")
    return problems


def memory_problem(stream_count: int, total_memory_bytes: int | None) -> str | None:
    """Why a local Ray with ``total_memory_bytes`` cannot run ``stream_count`` streams; ``None`` when it may (or memory is unknown)."""
    if total_memory_bytes is None:
        return None
    needed_mb = stream_count * PER_STREAM_MEMORY_MB
    total_mb = total_memory_bytes // _MB
    if needed_mb <= total_mb:
        return None
    fits = max(total_mb // PER_STREAM_MEMORY_MB, 0)
    return (
        f"{stream_count} streams need about {needed_mb / 1024:.1f} GiB (an estimated {PER_STREAM_MEMORY_MB} MB per "
        f"stream for its source and output actors), more than this machine's {total_mb / 1024:.1f} GiB of "
        f"memory for a local Ray (ray.address: null); run at most {fits} streams here, or join a Ray cluster "
        "with ray.address (e.g. auto, or ray://head:10001)"
    )


def machine_memory_bytes() -> int | None:
    """This machine's memory in bytes (physical, or the cgroup's limit when lower); ``None`` when unknown."""
    physical = _sysconf_memory() or _meminfo_memory()
    limit = _cgroup_memory_limit()
    if physical is None:
        return limit
    return min(physical, limit) if limit is not None else physical


def _sysconf_memory() -> int | None:
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * page_size if pages > 0 and page_size > 0 else None


def _meminfo_memory() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii", errors="replace") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024  # the file says kB and means KiB
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_memory_limit() -> int | None:
    """The cgroup v2 memory limit of this process (a container's), or ``None`` when there is none."""
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None  # "max": no limit


def _stream_url_problem(url: str) -> str | None:
    path = local_path(url)
    if path is not None:
        return _file_problem(Path(path))
    if url.startswith(SYNTHETIC_PREFIX):
        from pipeline.scenes.config import SceneConfig  # imported here: only synthetic urls need it

        try:
            SceneConfig.from_url(url)
        except ConfigError as exc:
            return str(exc)
    return None  # a network stream: whether it answers is the source's to find out, with its timeouts


def _file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as a file, or ``None``."""
    if not path.exists():
        return f"file does not exist: {path}"
    if path.is_dir():
        return f"is a folder, not a file: {path}"
    try:
        # Opened without blocking (a named pipe would wait for a writer) and closed at once: the
        # permission checks are the system's own (ACLs, root), not a guess from the mode bits.
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc}): {path}"
    return None


def _folder_problem(folder: Path) -> str | None:
    """Why files cannot be written in ``folder`` (created when missing), or ``None``."""
    if folder.exists() and not folder.is_dir():
        return f"is a file, not a folder: {folder}"
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"cannot be created: {existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot write in {existing} (permission denied)"
    return None
