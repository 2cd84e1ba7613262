"""Write one stream's results as JSON Lines: ``<directory>/<stream_id>.jsonl``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO

import numpy as np

from pipeline.errors import SinkError
from pipeline.messages import FrameMessage, FrameResult, MessageError, StreamEnd, StreamInfo, StreamStatus, parse_message
from pipeline.sinks.base import check_stream_id, dumps_message, sink_error

# Bytes read at a time when ``resume`` scans a file backwards for its last newline and last frame line:
# the scan reads only the file's tail, also when a long live stream left gigabytes of lines.
_TAIL_CHUNK = 64 * 1024


class JsonlSink:
    """One JSON message per line: the frame and status messages in order, then the end message.

    The lines are the dicts ``FrameResult.to_json()`` / ``StreamStatus.to_json()`` /
    ``StreamEnd.to_json()`` produce, i.e. exactly what ``RedisSink`` publishes minus
    ``published_at``; ``client.read_jsonl`` reads them back.

    Delivery guarantee: every line is written whole and flushed to the operating system
    before ``write``/``status``/``end`` returns, so a crash of the process (or of its Ray actor)
    loses nothing already written; the file then simply lacks its end message (and may end in
    a torn line: the one being written). With ``fsync=True`` each line is also fsync-ed, which
    survives a crash of the machine (power loss) at the cost of one disk sync per frame.

    Runs and restarts:

    - ``start`` (a new run) creates ``directory`` if needed and truncates an existing file of the
      same stream (one file per run).
    - ``resume`` (the owning actor was restarted) keeps the file: it cuts a torn last line (the
      bytes after the last ``'\\n'``), appends from there, and returns the ``seq`` after the last
      frame line (0 when the file is missing, which it creates, or holds no frame line), so every
      frame is in the file exactly once. If the file already ends with an end message (the
      previous process died after finishing the stream), the sink resumes *ended*: ``resume``
      still returns the ``seq`` after the last frame line, ``end`` is a no-op (the end line is
      not written twice), ``write`` raises ``SinkError`` ("the stream already ended") and
      ``status`` events are dropped (nothing may follow the end line). A complete line that is
      not a valid message is refused with ``SinkError``: appending to a file of unknown content
      could hide the damage.
    - ``end`` without ``start``/``resume`` (the stream failed before it opened) truncates any
      previous run's file and writes just the end line.

    Stream ids that are not safe file names are refused with ``SinkError`` (see
    ``base.check_stream_id``), never sanitised. ``lines`` counts the lines this object wrote
    (not the lines ``resume`` kept); ``ended`` is True once the file holds its end line.
    """

    needs_image = False

    def __init__(self, stream_id: str, *, directory: Path, fsync: bool = False) -> None:
        self.stream_id = check_stream_id(stream_id, "JsonlSink")
        self.path = Path(directory) / f"{stream_id}.jsonl"
        self.fsync = fsync
        self.lines = 0
        self._file: IO[str] | None = None
        self._ended = False
        self._closed = False

    @property
    def ended(self) -> bool:
        """True once the file holds the end message (written by ``end``, or found by ``resume``)."""
        return self._ended

    def start(self, info: StreamInfo) -> None:
        """Open the file for a new run, truncating a previous run's. Idempotent while open."""
        if self._closed:
            raise self._error("cannot start", "the sink is closed")
        if self._file is not None:
            return
        self._open("w")

    def resume(self, info: StreamInfo) -> int:
        """Open the existing file for append after cutting a torn last line; return the ``seq`` of its
        last frame line + 1 (0 when it has none or is missing; a missing file is created). See the
        class docstring for a file that already ends with an end message."""
        if self._closed:
            raise self._error("cannot resume", "the sink is closed")
        if self._file is not None:
            raise self._error("cannot resume", f"{self.path} is already open")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # "a+b": creates a missing file, never truncates; reads and truncation work at any position.
            with open(self.path, "a+b") as f:
                next_seq, ended = self._recover(f)
                if self.fsync:
                    os.fsync(f.fileno())
        except OSError as exc:
            raise self._error(f"cannot resume {self.path}", exc) from exc
        self._open("a")
        self._ended = ended
        return next_seq

    def write(self, result: FrameResult, image: np.ndarray | None = None) -> None:
        """Append the frame's message (``image`` is ignored: pass ``None``)."""
        if self._ended:
            raise self._error(f"cannot write frame {result.meta.index}", "the stream already ended")
        self._write_line(dumps_message(result.to_json(), "JsonlSink", self.stream_id), f"frame {result.meta.index}")

    def status(self, event: StreamStatus) -> None:
        """Append the status event's message; dropped once the stream ended (the end line is the last)."""
        if self._ended:
            return
        self._write_line(dumps_message(event.to_json(), "JsonlSink", self.stream_id), f"status {event.state!r}")

    def end(self, end: StreamEnd) -> None:
        """Append the end message and close. Without ``start``/``resume``: replace any previous run's
        file with one holding just the end line. A no-op once the stream ended."""
        if self._ended:
            return
        if self._file is None and not self._closed:
            self._open("w")
        self._write_line(dumps_message(end.to_json(), "JsonlSink", self.stream_id), "end message")
        self._ended = True
        self.close()

    def close(self) -> None:
        """Close the file (idempotent); every line written is already on the operating system's side."""
        if self._closed:
            return
        self._closed = True
        f, self._file = self._file, None
        if f is not None:
            try:
                f.close()
            except OSError as exc:
                raise self._error(f"cannot close {self.path}", exc) from exc

    def _open(self, mode: str) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # newline="\n": identical files on every platform; utf-8: class names may be non-ASCII.
            self._file = open(self.path, mode, encoding="utf-8", newline="\n")
        except OSError as exc:
            raise self._error(f"cannot open {self.path}", exc) from exc

    def _recover(self, f: BinaryIO) -> tuple[int, bool]:
        """Cut ``f`` after its last newline; return (``seq`` after the last frame line or 0, ends with an end line)."""
        size = f.seek(0, os.SEEK_END)
        keep = _after_last_newline(f, size)
        if keep < size:
            f.truncate(keep)
        ended = False
        for number, line in enumerate(_lines_backwards(f, keep)):
            message = self._parse(line)
            if number == 0 and isinstance(message, StreamEnd):
                ended = True
            if isinstance(message, FrameMessage):
                return message.seq + 1, ended
        return 0, ended

    def _parse(self, line: bytes) -> FrameMessage | StreamEnd | StreamStatus:
        try:
            return parse_message(json.loads(line.decode("utf-8")))
        except (UnicodeDecodeError, ValueError, MessageError) as exc:
            raise self._error(f"cannot resume {self.path}: a line is not a valid message ({line[:80]!r})", exc) from exc

    def _write_line(self, line: str, what: str) -> None:
        if self._file is None:
            if self._closed:
                raise self._error(f"cannot write {what}", "the sink is closed")
            raise self._error(f"cannot write {what}", "start() was not called")
        try:
            # One write call per complete line, then flush: a crash never leaves a torn line behind
            # a flushed one (at most the line being written is partial).
            self._file.write(line + "\n")
            self._file.flush()
            if self.fsync:
                os.fsync(self._file.fileno())
        except OSError as exc:
            raise self._error(f"cannot write {what} to {self.path}", exc) from exc
        self.lines += 1

    def _error(self, what: str, cause: BaseException | str) -> SinkError:
        return sink_error("JsonlSink", self.stream_id, what, cause)


def _after_last_newline(f: BinaryIO, size: int) -> int:
    """The offset just after the last ``b"\\n"`` among ``f``'s first ``size`` bytes (0 when there is none)."""
    end = size
    while end > 0:
        start = max(0, end - _TAIL_CHUNK)
        f.seek(start)
        found = f.read(end - start).rfind(b"\n")
        if found >= 0:
            return start + found + 1
        end = start
    return 0


def _lines_backwards(f: BinaryIO, size: int) -> Iterator[bytes]:
    """The non-blank lines of ``f``'s first ``size`` bytes (which end with ``b"\\n"`` or are empty), last first."""
    end = size - 1 if size > 0 else 0  # drop the final newline: every piece split off below is a whole line
    rest = b""
    while end > 0:
        start = max(0, end - _TAIL_CHUNK)
        f.seek(start)
        pieces = (f.read(end - start) + rest).split(b"\n")
        end = start
        rest = pieces[0]  # may continue in the chunk before
        for line in reversed(pieces[1:]):
            if line.strip():
                yield line
    if rest.strip():
        yield rest
