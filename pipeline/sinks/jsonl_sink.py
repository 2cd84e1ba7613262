"""Write one stream's results as JSON Lines: ``<directory>/<stream_id>.jsonl``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

import numpy as np

from pipeline.messages import FrameResult, StreamEnd, StreamInfo
from pipeline.sinks.base import check_stream_id, dumps_message, sink_error


class JsonlSink:
    """One JSON message per line: the frame messages in frame order, then the end message.

    The lines are the dicts ``FrameResult.to_json()`` / ``StreamEnd.to_json()`` produce,
    i.e. exactly what ``RedisSink`` publishes minus ``published_at``; ``client.read_jsonl``
    reads them back.

    Delivery guarantee: every line is written whole and flushed to the operating system
    before ``write``/``end`` returns, so a crash of the process (or of its Ray actor)
    loses nothing already written; the file then simply lacks its end message. With
    ``fsync=True`` each line is also fsync-ed, which survives a crash of the machine
    (power loss) at the cost of one disk sync per frame.

    ``start`` creates ``directory`` if needed and truncates an existing file of the same
    stream (one file per run). Stream ids that are not safe file names are refused with
    ``SinkError`` (see ``base.check_stream_id``), never sanitised. ``lines`` counts the
    lines written.
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

    def start(self, info: StreamInfo) -> None:
        if self._closed:
            raise self._error("cannot start", "the sink is closed")
        if self._file is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # newline="\n": identical files on every platform; utf-8: class names may be non-ASCII.
            self._file = open(self.path, "w", encoding="utf-8", newline="\n")
        except OSError as exc:
            raise self._error(f"cannot open {self.path}", exc) from exc

    def write(self, result: FrameResult, image: np.ndarray | None = None) -> None:
        if self._ended:
            raise self._error(f"cannot write frame {result.meta.index}", "the stream already ended")
        self._write_line(dumps_message(result.to_json(), "JsonlSink", self.stream_id), f"frame {result.meta.index}")

    def end(self, end: StreamEnd) -> None:
        if self._ended:
            return
        self._write_line(dumps_message(end.to_json(), "JsonlSink", self.stream_id), "end message")
        self._ended = True
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        f, self._file = self._file, None
        if f is not None:
            try:
                f.close()
            except OSError as exc:
                raise self._error(f"cannot close {self.path}", exc) from exc

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

    def _error(self, what: str, cause: BaseException | str):
        return sink_error("JsonlSink", self.stream_id, what, cause)
