"""The sink protocol and the helpers every sink shares.

A sink receives one stream's results, in frame order, from the one Ray actor that owns
the stream's output: ``start(info)`` once (or ``resume(info)`` when that actor was restarted
after a crash), ``write(result, image)`` per frame and ``status(event)`` per status event, in
order, ``end(end)`` after the last frame, and ``close()`` always (also after errors, also
without ``end``). ``end`` may come without ``start``/``resume`` when the stream failed before
it opened: the sink then writes just the end message and leaves no previous run's output
looking valid. Sinks are not thread-safe; the owning actor calls them from one thread.

Every failure is raised as ``SinkError`` whose message names the sink, the stream and
the cause.
"""

from __future__ import annotations

import json
from typing import Protocol, runtime_checkable

import numpy as np

from pipeline.errors import SinkError
from pipeline.messages import FrameResult, StreamEnd, StreamInfo, StreamStatus
from pipeline.naming import STREAM_ID_MAX_LEN, STREAM_ID_RULE, is_valid_stream_id, show_value

@runtime_checkable
class Sink(Protocol):
    """One stream's output. Each implementation documents its delivery guarantee in its docstring."""

    needs_image: bool
    """True when ``write`` needs the frame's pixels; False when it ignores them (pass ``None``)."""

    def start(self, info: StreamInfo) -> None:
        """Open the output for the stream ``info`` describes."""

    def resume(self, info: StreamInfo) -> int | None:
        """Open the output again after the owning actor died, keeping what is already written.

        Returns the first ``seq`` this sink still needs (the owner skips lower ones, so nothing is
        written twice), or ``None`` when the sink cannot know (pub/sub without history, video):
        such a sink takes every frame from the owner's own resume point.
        """

    def write(self, result: FrameResult, image: np.ndarray | None) -> None:
        """Write one frame's result; called in frame order. ``image`` is ``uint8 (H, W, 3)`` RGB or ``None``."""

    def status(self, event: StreamStatus) -> None:
        """Write one status event, in order with the frames (a sink without a place for it ignores it)."""

    def end(self, end: StreamEnd) -> None:
        """Write the end of the stream (after the last frame) and finish the output."""

    def close(self) -> None:
        """Release everything; idempotent; leaves files complete even when ``end`` was never called."""


def check_stream_id(stream_id: str, sink: str) -> str:
    """Return ``stream_id`` if it is safe as a file name, else raise ``SinkError``.

    Ids are refused rather than sanitised: sanitising could map two streams onto one file. The rule is
    :func:`pipeline.naming.is_valid_stream_id`, the one the config applies to ``streams[].id``.
    """
    if not is_valid_stream_id(stream_id):
        raise SinkError(
            f"{sink} for stream {show_value(stream_id, max_chars=2 * STREAM_ID_MAX_LEN + 8)}: the stream id is "
            f"not a safe file name (use {STREAM_ID_RULE})"
        )
    return stream_id


def sink_error(sink: str, stream_id: str, what: str, cause: BaseException | str) -> SinkError:
    """A ``SinkError`` naming the sink, the stream, what failed and the cause."""
    if isinstance(cause, BaseException):
        cause_text = f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
    else:
        cause_text = cause
    return SinkError(f"{sink} for stream {stream_id!r}: {what}: {cause_text}")


def dumps_message(message: dict, sink: str, stream_id: str) -> str:
    """Serialise one message as compact, strict JSON (no NaN/Infinity, which other clients cannot parse)."""
    try:
        return json.dumps(message, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise sink_error(sink, stream_id, f"message for frame {message.get('frame')!r} is not valid JSON", exc) from exc
