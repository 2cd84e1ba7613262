"""The subscriber side: receive results from Redis pub/sub, or read them back from JSON Lines.

Pub/sub does not buffer: a ``Subscriber`` only receives messages published after it
subscribed. ``Subscriber(...)`` returns only once Redis confirmed every subscription,
so anything published after the constructor returned is received. Both readers yield
frames, status events (``StreamStatus``) and end messages in the order they were published.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import redis
from pycocotools import mask as mask_utils

from pipeline.errors import MaskstreamError
from pipeline.messages import FrameMessage, Instance, MessageError, StreamEnd, StreamStatus, parse_message
from pipeline.sinks.redis_sink import redact_url as _redact

log = logging.getLogger(__name__)

# Per stream, the subscriber remembers the seqs of this many frames below the highest seq it yielded
# (to drop repeats); older seqs count as yielded. A restarted output goes back far fewer frames than this.
REPEAT_WINDOW = 10_000


class SubscriberError(MaskstreamError):
    """The subscriber could not connect to Redis, subscribe, or lost its connection; names the url and channels."""


def decode_masks(instances: Sequence[Instance], height: int, width: int) -> np.ndarray:
    """Decode the instances' RLE masks into a bool ``(N, height, width)`` array (``(0, H, W)`` when none)."""
    if not instances:
        return np.zeros((0, height, width), dtype=bool)
    rles = []
    for i, inst in enumerate(instances):
        if (inst.mask.height, inst.mask.width) != (height, width):
            raise MessageError(
                f"mask {i} ({inst.class_name!r}) is {inst.mask.height}x{inst.mask.width}, the frame is {height}x{width}"
            )
        rles.append({"size": [height, width], "counts": inst.mask.counts.encode("ascii")})
    try:
        decoded = mask_utils.decode(rles)  # (H, W, N) uint8, Fortran order
    except Exception as exc:  # pycocotools raises plain exceptions on corrupt counts
        raise MessageError(f"masks could not be decoded: {exc}") from exc
    return np.ascontiguousarray(decoded.transpose(2, 0, 1)).astype(bool, copy=False)


@dataclass(frozen=True)
class ReceivedFrame:
    """A frame message as received by a ``Subscriber``, with the wall-clock time it arrived."""

    message: FrameMessage
    received_at: float

    @property
    def stream_id(self) -> str:
        return self.message.stream_id

    @property
    def index(self) -> int:
        return self.message.index

    @property
    def seq(self) -> int:
        return self.message.seq

    @property
    def instances(self) -> tuple[Instance, ...]:
        return self.message.instances

    @property
    def error(self) -> str | None:
        return self.message.error

    @property
    def latency_s(self) -> float:
        """End-to-end latency: from the frame's decoding (``captured_at``) to its arrival here."""
        return self.received_at - self.message.captured_at

    def masks(self) -> np.ndarray:
        """The instances' masks as bool ``(N, H, W)``, ``N = len(instances)`` (``(0, H, W)`` when none)."""
        return decode_masks(self.message.instances, self.message.height, self.message.width)


class Subscriber:
    """Subscribe to the result channels of ``streams`` and iterate over what arrives.

    Iteration yields ``ReceivedFrame``, ``StreamStatus`` and ``StreamEnd`` items in arrival
    order (per stream, the producer's order: status events where they happened between the
    frames) and stops when every subscribed stream has sent its end message, or when
    ``idle_timeout_s`` passes without any message (``None``: wait forever). Malformed messages
    (not JSON, not matching the schema, or for a stream not subscribed on that channel) are
    skipped, counted in ``malformed`` and logged with the channel and the reason; they never
    end the iteration. ``received`` counts the items yielded. A lost Redis connection raises
    ``SubscriberError``.

    Repeats: the Redis sink may publish a message twice (a retry after a timeout, an output
    that restarted). A frame whose ``(stream, seq)`` was already yielded is dropped and counted
    in ``repeats``, as is an end message of a stream that already ended with no frame since.
    A stream's memory of seqs is cleared by its end message, and by a frame with seq 0
    captured after the last frame yielded (a new run of the stream that began without an end
    message before it). Status events are never dropped (a repeated one is harmless).

    The constructor returns only after Redis confirmed every SUBSCRIBE (or raises
    ``SubscriberError`` after ``subscribe_timeout_s``): whatever is published after it
    returned is received.
    """

    def __init__(
        self,
        url: str,
        streams: Sequence[str],
        *,
        channel: str = "masks:{stream}",
        idle_timeout_s: float | None = None,
        subscribe_timeout_s: float = 5.0,
    ) -> None:
        if isinstance(streams, str):
            streams = [streams]
        self.streams: tuple[str, ...] = tuple(dict.fromkeys(streams))
        if not self.streams:
            raise SubscriberError("Subscriber: no streams to subscribe to")
        if idle_timeout_s is not None and idle_timeout_s <= 0:
            raise SubscriberError(f"Subscriber: idle_timeout_s must be > 0 or None, got {idle_timeout_s}")
        self.url = url
        self.idle_timeout_s = idle_timeout_s
        self.malformed = 0
        self.received = 0
        self.repeats = 0
        self.ended: set[str] = set()
        self._seen: dict[str, _SeenSeqs] = {}
        # channel -> the streams published on it (several when the template has no {stream}).
        self._channels: dict[str, set[str]] = {}
        for s in self.streams:
            try:
                name = channel.format(stream=s)
            except (KeyError, IndexError, ValueError) as exc:
                raise SubscriberError(f"Subscriber: channel template {channel!r} is invalid: {exc!r}") from exc
            self._channels.setdefault(name, set()).add(s)
        self._pending: deque[tuple[str, Any, float]] = deque()
        self._closed = False
        try:
            self._client = redis.Redis.from_url(
                url, socket_connect_timeout=subscribe_timeout_s, socket_timeout=None, health_check_interval=0
            )
        except (ValueError, TypeError) as exc:
            raise SubscriberError(f"Subscriber: invalid Redis url {_redact(url)}: {exc}") from exc
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=False)
        try:
            self._subscribe(subscribe_timeout_s)
        except BaseException:
            self.close()
            raise

    def _subscribe(self, timeout_s: float) -> None:
        channels = list(self._channels)
        waiting = set(channels)
        try:
            self._pubsub.subscribe(*channels)
            deadline = time.monotonic() + timeout_s
            while waiting:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SubscriberError(
                        f"Subscriber: Redis at {_redact(self.url)} did not confirm the subscription to "
                        f"{sorted(waiting)} within {timeout_s} s"
                    )
                msg = self._pubsub.get_message(timeout=remaining)
                if msg is None:
                    continue
                name = _text(msg.get("channel"))
                if msg.get("type") == "subscribe":
                    waiting.discard(name)
                elif msg.get("type") == "message":
                    # A channel confirmed earlier may already carry data: keep it for __iter__.
                    self._pending.append((name, msg.get("data"), time.time()))
        except redis.RedisError as exc:
            raise SubscriberError(f"Subscriber: cannot subscribe to {channels} at {_redact(self.url)}: {exc}") from exc

    def __enter__(self) -> "Subscriber":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Unsubscribe and disconnect (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for closer in (getattr(self, "_pubsub", None), getattr(self, "_client", None)):
            if closer is not None:
                try:
                    closer.close()
                except Exception:
                    pass

    @property
    def done(self) -> bool:
        """True once every subscribed stream has sent its end message."""
        return self.ended.issuperset(self.streams)

    def __iter__(self) -> Iterator[ReceivedFrame | StreamStatus | StreamEnd]:
        last_message = time.monotonic()
        while not self.done and not self._closed:
            if self._pending:
                channel, data, received_at = self._pending.popleft()
            else:
                if self.idle_timeout_s is None:
                    wait = 1.0  # wake up now and then, so a closed subscriber stops
                else:
                    wait = last_message + self.idle_timeout_s - time.monotonic()
                    if wait <= 0:
                        log.info(
                            "subscriber: no message for %.1f s, stopping (waiting for %s)",
                            self.idle_timeout_s,
                            sorted(set(self.streams) - self.ended),
                        )
                        return
                try:
                    msg = self._pubsub.get_message(timeout=wait)
                except (redis.RedisError, OSError, ValueError) as exc:
                    if self._closed:
                        return
                    raise SubscriberError(
                        f"Subscriber: lost the connection to {_redact(self.url)} ({list(self._channels)}): {exc}"
                    ) from exc
                if msg is None or msg.get("type") != "message":
                    continue
                channel, data, received_at = _text(msg.get("channel")), msg.get("data"), time.time()
            last_message = time.monotonic()
            item = self._parse(channel, data, received_at)
            if item is None or self._is_repeat(item):
                continue
            if isinstance(item, StreamEnd):
                self.ended.add(item.stream_id)
            self.received += 1
            yield item

    def _is_repeat(self, item: ReceivedFrame | StreamStatus | StreamEnd) -> bool:
        """True (and counted) for a frame already yielded or an end already yielded; records what is new."""
        stream = item.stream_id
        if isinstance(item, StreamStatus):
            return False
        if isinstance(item, StreamEnd):
            if stream in self.ended:  # no frame since the last end (a frame of a new run clears it)
                self.repeats += 1
                return True
            self._seen.pop(stream, None)  # the next frame of this stream begins a new run
            return False
        seen = self._seen.get(stream)
        if seen is None or (item.seq == 0 and item.message.captured_at > seen.last_captured_at):
            seen = self._seen[stream] = _SeenSeqs()
            self.ended.discard(stream)
        if not seen.add(item.seq, item.message.captured_at):
            self.repeats += 1
            return True
        return False

    def _parse(self, channel: str, data: Any, received_at: float) -> ReceivedFrame | StreamStatus | StreamEnd | None:
        try:
            text = data.decode("utf-8") if isinstance(data, bytes) else str(data)
            message = parse_message(json.loads(text))
            expected = self._channels.get(channel, set())
            if message.stream_id not in expected:
                raise MessageError(f"message for stream {message.stream_id!r} is not one subscribed on this channel")
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, MessageError) as exc:
            self.malformed += 1
            log.warning("subscriber: skipped a malformed message on channel %r: %s", channel, exc)
            return None
        if isinstance(message, (StreamEnd, StreamStatus)):
            return message
        return ReceivedFrame(message=message, received_at=received_at)


class _SeenSeqs:
    """The seqs of one stream's frames yielded so far (exactly within ``REPEAT_WINDOW`` of the highest)."""

    def __init__(self) -> None:
        self.seqs: set[int] = set()
        self.high = -1
        self.last_captured_at = float("-inf")

    def add(self, seq: int, captured_at: float) -> bool:
        """Record ``seq``; False when it was already yielded (or is older than the window)."""
        if seq in self.seqs or seq <= self.high - REPEAT_WINDOW:
            return False
        self.seqs.add(seq)
        self.last_captured_at = max(self.last_captured_at, captured_at)
        if seq > self.high:
            self.high = seq
            if len(self.seqs) > 2 * REPEAT_WINDOW:
                self.seqs = {s for s in self.seqs if s > self.high - REPEAT_WINDOW}
        return True


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def read_jsonl(path: Path) -> Iterator[FrameMessage | StreamStatus | StreamEnd]:
    """Read messages back from a JSON Lines file (``JsonlSink``'s output), in file order; blank lines are skipped.

    Yields ``FrameMessage``, ``StreamStatus`` (status events, between the frames where they
    happened) and ``StreamEnd`` items.

    Raises ``MessageError`` naming ``path:line`` and the reason on a line that is not a valid message.
    """
    path = Path(path)
    try:
        f = open(path, encoding="utf-8")
    except OSError as exc:
        raise MessageError(f"{path}: cannot open: {exc}") from exc
    with f:
        lineno = 0
        while True:
            try:
                line = f.readline()
            except UnicodeDecodeError as exc:
                raise MessageError(f"{path}:{lineno + 1}: not UTF-8: {exc}") from exc
            if not line:
                return
            lineno += 1
            if not line.strip():
                continue
            try:
                yield parse_message(json.loads(line))
            except (json.JSONDecodeError, RecursionError) as exc:
                raise MessageError(f"{path}:{lineno}: not valid JSON: {exc}") from exc
            except MessageError as exc:
                raise MessageError(f"{path}:{lineno}: {exc}") from exc


def format_frame_line(item: ReceivedFrame | FrameMessage | StreamStatus | StreamEnd) -> str:
    """One human-readable line per item (``maskstream subscribe``).

    ``cam1 frame 12 (seq 12): 3 instances [person, person, car] tracks [4, 7, -] latency 45.1 ms``;
    ``cam1 status reconnecting before seq 12: connection reset, attempt 2``;
    ``cam1 status sink_recovered (redis) before seq 40: lost 15, downtime 3.2 s``;
    ``cam1 end: 120 frames, 130 decoded, 10 dropped`` (plus ``error: ...`` when there is one).
    """
    if isinstance(item, StreamStatus):
        return format_status_line(item)
    if isinstance(item, StreamEnd):
        line = f"{item.stream_id} end: {item.frames} frames, {item.decoded} decoded, {item.dropped} dropped"
        if item.error is not None:
            line += f", error: {item.error}"
        return line
    if isinstance(item, ReceivedFrame):
        message, latency = item.message, f"{item.latency_s * 1000.0:.1f} ms"
    else:
        message, latency = item, "n/a"
    n = len(message.instances)
    classes = ", ".join(inst.class_name for inst in message.instances)
    tracks = ", ".join("-" if inst.track_id is None else str(inst.track_id) for inst in message.instances)
    line = (
        f"{message.stream_id} frame {message.index} (seq {message.seq}): "
        f"{n} instance{'' if n == 1 else 's'} [{classes}] tracks [{tracks}] latency {latency}"
    )
    if message.error is not None:
        line += f" error: {message.error}"
    return line


def format_status_line(event: StreamStatus) -> str:
    """One human-readable line for a status event: stream, state, actor, position, then what is known."""
    head = f"{event.stream_id} status {event.state}"
    if event.actor is not None:
        head += f" ({event.actor})"
    head += f" before seq {event.seq}"
    details = []
    if event.reason is not None:
        details.append(" ".join(event.reason.split()))  # one line, whatever the reason holds
    if event.attempt is not None:
        details.append(f"attempt {event.attempt}")
    if event.lost is not None:
        details.append(f"lost {event.lost}")
    if event.downtime_s is not None:
        details.append(f"downtime {event.downtime_s:.1f} s")
    return f"{head}: {', '.join(details)}" if details else head
