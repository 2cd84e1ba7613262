"""The rules for the strings a config names things with: stream ids, stream urls, model weights.

Each rule is defined here once and used by everything that needs it (the config, the sources, the
sinks, the model loader, the preflight), so that what the config accepts is exactly what runs.
Standard library only: every process imports it, including the per-stream actors and a bare GPU machine.
"""

from __future__ import annotations

import re
import reprlib
from urllib.parse import unquote

# ---------------------------------------------------------------------------------------- stream ids

STREAM_ID_MAX_LEN = 64
"""A stream id names a Redis channel and output files (``out/<id>.mp4``): short enough for both."""

_STREAM_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{STREAM_ID_MAX_LEN - 1}}}")

STREAM_ID_RULE = (
    f"1-{STREAM_ID_MAX_LEN} letters, digits, '_', '.' or '-', starting with a letter or digit "
    "(it names files and channels)"
)
"""What a valid stream id is, in words, for error messages."""


def is_valid_stream_id(stream_id: object) -> bool:
    """Whether ``stream_id`` is a safe file and channel name (see :data:`STREAM_ID_RULE`).

    The whole string must match (a trailing newline does not pass): no path separators, no
    leading dot (no hidden files, no ``.`` / ``..``), no spaces, no ``:``.
    """
    return isinstance(stream_id, str) and _STREAM_ID.fullmatch(stream_id) is not None


# ---------------------------------------------------------------------------------------- stream urls

SYNTHETIC_PREFIX = "synthetic:"
"""URLs starting with this are served by ``SyntheticSource`` (see ``pipeline.scenes``)."""

LIVE_SCHEMES: frozenset[str] = frozenset(
    {"rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "rtp", "srt", "tcp"}
)
"""URL schemes of network streams: live, naturally paced by the sender, no known length."""

FILE_SCHEMES: frozenset[str] = frozenset({"file"})
"""URL schemes of local files (a plain path has no scheme at all)."""

SUPPORTED_SCHEMES: frozenset[str] = LIVE_SCHEMES | FILE_SCHEMES | {"synthetic"}
"""Every scheme a stream url may have; any other ``scheme://`` is refused when the config is read."""

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


def url_scheme(url: str) -> str | None:
    """The lower-case scheme of ``scheme://...`` (``"synthetic"`` for ``synthetic:...``); ``None`` for a plain path."""
    if url.startswith(SYNTHETIC_PREFIX):
        return "synthetic"
    match = _SCHEME_RE.match(url)
    return match.group(1).lower() if match else None


def supported_schemes_text() -> str:
    """The supported schemes in words, for error messages."""
    return ", ".join(f"{s}:" if s == "synthetic" else f"{s}://" for s in sorted(SUPPORTED_SCHEMES)) + ", or a file path"


def local_path(url: str) -> str | None:
    """The file a stream url reads, as written (maybe relative); ``None`` for a network or synthetic url.

    A plain path is itself. ``file://`` is followed by a path, percent-decoded as in any URL:
    ``file:///videos/a%20b.mp4`` is ``/videos/a b.mp4``, and ``file://clips/a.mp4`` is the relative
    path ``clips/a.mp4`` (resolved like a plain relative path, against the config file's folder).
    """
    scheme = url_scheme(url)
    if scheme is None:
        return url
    if scheme in FILE_SCHEMES:
        return unquote(url.split("://", 1)[1])
    return None


# ---------------------------------------------------------------------------------------- model weights

_TORCHVISION_WEIGHTS_NAME = re.compile(r"([A-Za-z0-9_]+\.)?[A-Z][A-Z0-9_]*")


def is_random_weights(spec: str | None) -> bool:
    """Whether ``model.weights`` asks for random weights: ``None`` or ``none``/``null``/``random``/empty."""
    return spec is None or spec.strip().lower() in ("none", "null", "random", "")


def weights_is_path(spec: str | None) -> bool:
    """Whether ``model.weights`` names a checkpoint file (rather than torchvision weights or random weights).

    A path is anything with a ``/`` (or the platform's separator), ending in ``.pt``/``.pth``, or not
    shaped like a torchvision weights name (``DEFAULT``, ``COCO_V1``, ``MaskRCNN_ResNet50_FPN_Weights.COCO_V1``).
    Decided on the string alone, never on what exists on disk, so that the driver (which resolves
    relative paths and checks the file before anything starts) and the inference actors agree.
    """
    if is_random_weights(spec):
        return False
    text = str(spec).strip()
    if "/" in text or "\\" in text or text.endswith((".pt", ".pth")) or text.startswith("~"):
        return True
    return not (text == "DEFAULT" or _TORCHVISION_WEIGHTS_NAME.fullmatch(text) is not None)


# ---------------------------------------------------------------------------------------- values in errors


def show_value(value: object, max_chars: int = 80) -> str:
    """``repr(value)`` cut to about ``max_chars`` characters (nested containers cut to a few items).

    What an error message shows of a user-given value: a value from a config file can be megabytes
    long, and an error must name it, not reproduce it.
    """
    short = reprlib.Repr()  # set attribute by attribute: keyword arguments only exist from Python 3.12 on
    short.maxlevel, short.maxdict, short.maxlist, short.maxtuple, short.maxset = 2, 4, 6, 6, 6
    short.maxstring = short.maxother = max_chars
    short.maxlong = max(max_chars // 2, 20)
    return short.repr(value)


# ---------------------------------------------------------------------------------------- model archs

BENCHMARK_ARCH = "benchmark_fixed"
"""``model.arch`` of the benchmark-only engine (``pipeline.engine.fixed``): fixed detections, no model run.
Only ``maskstream bench-pipeline`` may configure it; ``maskstream run`` refuses it (``pipeline.config``)."""
