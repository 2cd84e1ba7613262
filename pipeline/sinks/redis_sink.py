"""Publish one stream's results to Redis pub/sub (and optionally to a capped Redis stream), riding out outages."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ClusterDownError, OutOfMemoryError, ReadOnlyError, TryAgainError
from redis.retry import Retry

from pipeline.errors import SinkError
from pipeline.messages import FrameResult, StreamEnd, StreamInfo, StreamStatus
from pipeline.sinks.base import dumps_message, sink_error

log = logging.getLogger(__name__)

# Messages kept in memory while Redis cannot take them (the config's sinks.redis.buffer_frames default).
DEFAULT_BUFFER_FRAMES = 1000
# Seconds end() (and close() while Redis answers) waits for the buffer to drain.
DEFAULT_FLUSH_TIMEOUT_S = 10.0
# Longest pause between two attempts while Redis is unreachable: also the longest a recovery goes unnoticed.
DEFAULT_MAX_BACKOFF_S = 2.0
# Pauses of redis-py's own retries of one command (a blip that is not an outage yet): 20 ms doubling, at most 250 ms.
COMMAND_BACKOFF_BASE_S = 0.02
COMMAND_BACKOFF_CAP_S = 0.25
# First pause of the publisher's outer loop once a command failed for good: 50 ms, doubling up to max_backoff_s.
OUTAGE_BACKOFF_BASE_S = 0.05
# close(): how long the publisher thread gets to stop by itself, then (after its connection was cut) at most.
JOIN_GRACE_S = 1.0
JOIN_TIMEOUT_S = 5.0
# The sequence part of the end message's history id: the largest a Redis stream id allows (2**64 - 1).
END_ENTRY_SEQ = 2**64 - 1
# The field of a history entry that holds the message (JSON text).
HISTORY_FIELD = "json"

# Errors that say "not now" rather than "never": the message is kept and sent again.
# (redis-py's ConnectionError includes AuthenticationError, AuthorizationError and BusyLoadingError:
# a wrong password is an outage that lasts until it is fixed.)
_TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    ReadOnlyError,  # a replica during a failover
    OutOfMemoryError,  # maxmemory reached; frees up when subscribers read
    TryAgainError,
    ClusterDownError,  # includes MASTERDOWN
    OSError,
)
# Replies without a redis-py class of their own that are transient too: a long script or a replica syncing.
_TRANSIENT_REPLY_PREFIXES = ("BUSY ", "MASTERDOWN ", "NOREPLICAS ")

# XADD with an explicit id and PUBLISH as one atomic step, skipped (returns -1) when the id is not greater
# than the stream's last id, so a message sent again (after a timeout, or by a restarted owner) is neither
# appended nor published twice. Ids are compared as decimal strings (Lua numbers are doubles: 2**64 - 1 would
# round); XADD's own check (against the last id ever added, even if deleted since) is the backstop.
_HISTORY_SCRIPT = """
local function le(a, b)
  if #a ~= #b then return #a < #b end
  return a <= b
end
local ms, sq = string.match(ARGV[2], '^(%d+)-(%d+)$')
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #top > 0 then
  local tms, tsq = string.match(top[1][1], '^(%d+)-(%d+)$')
  if (ms == tms and le(sq, tsq)) or (ms ~= tms and le(ms, tms)) then return -1 end
end
local added = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], ARGV[2], ARGV[5], ARGV[4])
if type(added) == 'table' and added.err then
  if string.find(added.err, 'equal or smaller', 1, true) then return -1 end
  return added
end
return redis.call('PUBLISH', ARGV[1], ARGV[4])
"""

# Kinds of buffered items: the owner's frames and status events (what buffer_frames bounds, dropped oldest
# first when it is full), the end message and the sink's own events (never dropped, on top of the bound),
# and the two history operations that must run before the messages after them.
_FRAME, _STATUS, _END, _EVENT, _RESET, _SYNC = "frame", "status", "end", "event", "reset", "sync"
_OWNER_KINDS = frozenset({_FRAME, _STATUS, _END})
_DROPPABLE_KINDS = frozenset({_FRAME, _STATUS})
_OP_KINDS = frozenset({_RESET, _SYNC})


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe for error messages and logs)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = parts.username or ""
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    except ValueError:
        return "<unparsable url>"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, _TRANSIENT_ERRORS):
        return True
    return isinstance(exc, redis.ResponseError) and str(exc).startswith(_TRANSIENT_REPLY_PREFIXES)


def _parse_entry_id(raw: bytes | str) -> tuple[int, int]:
    text = raw.decode("ascii") if isinstance(raw, bytes) else str(raw)
    ms, _, seq = text.partition("-")
    return int(ms), int(seq)


@dataclass(frozen=True)
class RedisSinkStats:
    """What a ``RedisSink`` did so far (a snapshot; ``RedisSink.stats()``).

    - ``published``: messages Redis took (frames, status events, the sink's own events, the end).
    - ``frames_published``: the frame messages among them.
    - ``undelivered``: messages given up: dropped from the full buffer (oldest first), refused by
      Redis (e.g. a history key of the wrong type), or still buffered when the sink was closed.
    - ``outages``: periods during which Redis could not take messages (each reported by a
      ``sink_unavailable`` event, and by ``sink_recovered`` when it ended).
    - ``buffered``: messages waiting to be published now.
    - ``repeats``: history mode: messages not appended nor published because the history already
      held their id (sent again after a timeout or by a restarted owner).
    - ``last_receivers``: subscribers that received the last published message.
    - ``last_error``: the last failure (redacted url), ``None`` when none happened.
    """

    published: int
    frames_published: int
    undelivered: int
    outages: int
    buffered: int
    repeats: int
    last_receivers: int
    last_error: str | None


@dataclass
class _Item:
    kind: str
    pos: int  # the seq of the frame this message is or precedes
    payload: str = ""
    what: str = ""
    entry_id: tuple[int, int] | None = None  # history id, fixed at the first attempt (the same on every retry)
    attempted: bool = False  # sent at least once: it may be in Redis already (a timeout is no proof it is not)


@dataclass
class _Outage:
    started: float  # time.monotonic()
    reason: str
    lost: int = 0


class RedisSink:
    """PUBLISH each message on ``channel.format(stream=stream_id)``; never blocks on Redis, never gives up.

    **Buffering.** ``start``/``write``/``status``/``end`` serialise the message, put it in a buffer
    of ``buffer_frames`` messages and return at once; a background thread publishes the buffer in
    order. When a command fails (connection refused or lost, timeout, a read-only replica, ...),
    redis-py retries it ``retries`` times (``ExponentialWithJitterBackoff``: 20 ms doubling, at most
    250 ms), then the thread keeps trying, pausing 50 ms doubling up to ``max_backoff_s`` (with
    jitter), for as long as the sink is open. While Redis is away the buffer fills; when it is full,
    the oldest frame or status message waiting is dropped and counted in ``stats().undelivered``
    (the end message and the sink's own events are never dropped). A message Redis refuses (any
    other error reply, e.g. a history key of the wrong type) can never be sent: it is counted
    as undelivered and reported, not retried.

    **Outage reporting.** The first failure (or the first message dropped from a full buffer while
    Redis still answers, too slowly) starts an outage: a ``StreamStatus`` ``sink_unavailable``
    (``actor="redis"``, ``reason`` the cause, url redacted) is queued right after the message that
    failed (that message may have reached Redis before a timeout, so nothing is placed before it),
    and when a command succeeds again a ``sink_recovered`` is queued right after that command's
    message, with ``lost`` (messages given up during the outage) and ``downtime_s`` (from the first
    failure to the first success). Both reach Redis in order with the frames; both are also returned
    by ``take_events()`` when they happen, for the owner to write to its other sinks (not to this
    one: they are already queued here). The ``seq`` of each is the seq of the frame it precedes.

    **Delivery guarantee, pub/sub.** Each message that reaches Redis reaches the subscribers
    connected to the channel at that moment, in order (frames in seq order, status events where
    they belong, the end message last). Redis does not keep messages for subscribers that connect
    later or fall behind. Messages are lost only as counted in ``undelivered`` (buffer overflow
    during an outage longer than the buffer, refusals, and what is still buffered when the sink is
    closed: ``end`` waits up to ``flush_timeout_s`` for the buffer to drain, ``close`` waits as long
    too while Redis answers, not during an outage), and, uncounted, what is buffered when the
    owning process dies (in history mode the restarted owner sends those frames again: ``resume``
    says where the history stopped). A command retried after a timeout may have been executed the
    first time, so in pub/sub-only mode a message may be published twice; a restarted owner
    (``resume`` returns ``None``: the sink cannot know what was published) may publish again what
    its previous incarnation did. Subscribers drop repeated frames by ``(stream, seq)``
    (``pipeline.client.Subscriber`` does). In history mode (below) PUBLISH is exactly once too.

    **History mode** (``history_maxlen > 0``): every message is also appended (field ``"json"``) to
    the Redis stream ``"<channel>:history"``, trimmed to about ``history_maxlen`` entries (``MAXLEN
    ~``), so late subscribers can catch up with ``XRANGE``/``XREAD``. Each entry gets an explicit id
    derived from the message, and the XADD and the PUBLISH run together in one Lua script that does
    neither when the id is not greater than the stream's last id. Ids (``ms-seq`` parts):

    - frame ``s``: ``"{s+1}-0"``;
    - a status event before frame ``s`` (the owner's or this sink's): ``"{s}-{k}"``, ``k = 1, 2, ...``
      in order; numbering goes on after the last id handed out (after ``resume``: the history's last
      entry), and ``s`` is raised to that id's first part when lower, so a new event is never taken
      for an old one;
    - the end message, after frame ``n-1`` (before frame ``n``): ``"{n}-18446744073709551615"``
      (``2**64 - 1``, the largest sequence part): nothing is appended after it.

    So a frame and the end message are appended and published **exactly once** across retries after
    timeouts and across restarts of the owner (``resume`` returns where the history is); a retried
    status event is deduplicated too, but a status event that a restarted owner sends again is a new
    event (at least once). This holds while the history key is neither deleted nor evicted by
    anyone else. ``start`` begins a new run and **deletes the previous run's history** (ids start
    again at ``0-1``/``1-0``; JSON Lines files are truncated per run too); the deletion is the
    buffer's first operation, so it also waits for Redis (an owner that dies before Redis came back
    to run it resumes on the previous run's history). The history is as durable as Redis is: a Redis
    that restarts without persistence loses it, and then holds what was published since. A
    ``write``/``status``/``end`` with neither ``start`` nor ``resume`` before it starts a new run.

    ``stats()`` returns :class:`RedisSinkStats`. Errors that are the caller's (bad arguments, calls
    after ``end``/``close``, a message that is not valid JSON) raise ``SinkError`` naming the url
    (password redacted), the channel and the cause; Redis failures never do.
    """

    needs_image = False

    def __init__(
        self,
        stream_id: str,
        *,
        url: str,
        channel: str = "masks:{stream}",
        history_maxlen: int = 0,
        buffer_frames: int = DEFAULT_BUFFER_FRAMES,
        flush_timeout_s: float = DEFAULT_FLUSH_TIMEOUT_S,
        connect_timeout_s: float = 5.0,
        retries: int = 2,
        max_backoff_s: float = DEFAULT_MAX_BACKOFF_S,
    ) -> None:
        if not isinstance(stream_id, str) or not stream_id:
            raise SinkError(f"RedisSink: stream id must be a non-empty string, got {stream_id!r}")
        self.stream_id = stream_id
        self.url = url
        self._safe_url = redact_url(url)
        try:
            self.channel = channel.format(stream=stream_id)
        except (KeyError, IndexError, ValueError) as exc:
            raise sink_error("RedisSink", stream_id, f"channel template {channel!r} is invalid (only {{stream}} may be used)", exc) from exc
        for name, value, ok, rule in (
            ("history_maxlen", history_maxlen, history_maxlen >= 0, ">= 0"),
            ("buffer_frames", buffer_frames, buffer_frames >= 1, ">= 1"),
            ("retries", retries, retries >= 0, ">= 0"),
            ("flush_timeout_s", flush_timeout_s, flush_timeout_s >= 0, ">= 0"),
            ("connect_timeout_s", connect_timeout_s, connect_timeout_s > 0, "> 0"),
            ("max_backoff_s", max_backoff_s, max_backoff_s > 0, "> 0"),
        ):
            if not ok:
                raise sink_error("RedisSink", stream_id, f"bad {name}", f"must be {rule}, got {value}")
        self.history_key = f"{self.channel}:history" if history_maxlen > 0 else None
        self.history_maxlen = history_maxlen
        self.buffer_frames = buffer_frames
        self.flush_timeout_s = flush_timeout_s
        self.max_backoff_s = max_backoff_s
        try:
            self._client: redis.Redis = redis.Redis.from_url(
                url,
                socket_connect_timeout=connect_timeout_s,
                socket_timeout=connect_timeout_s,
                retry=Retry(ExponentialWithJitterBackoff(cap=COMMAND_BACKOFF_CAP_S, base=COMMAND_BACKOFF_BASE_S), retries),
            )
        except (ValueError, TypeError) as exc:
            raise self._error("invalid url", exc) from exc
        self._script = self._client.register_script(_HISTORY_SCRIPT)

        # Shared between the caller's thread and the publisher thread: guarded by _cond.
        self._cond = threading.Condition()
        self._queue: deque[_Item] = deque()
        self._owner_waiting = 0  # frames and status events in _queue (what buffer_frames bounds)
        self._current: _Item | None = None  # taken from _queue by the publisher, being sent
        self._outage: _Outage | None = None
        self._events: list[StreamStatus] = []
        self._stopping = False
        self._tallied = False  # close() counted what was left: a message failing after that is counted by the publisher
        self._thread: threading.Thread | None = None
        self._published = 0
        self._frames_published = 0
        self._undelivered = 0
        self._outages = 0
        self._repeats = 0
        self._last_receivers = 0
        self._last_error: str | None = None
        # The caller's side.
        self._opened = False  # start or resume happened (or was implied)
        self._ended = False
        self._closed = False
        self._position = 0  # the next frame's seq, as far as the owner's messages tell
        # The publisher's side (set by resume before the thread exists): the highest history id handed out.
        self._last_id: tuple[int, int] = (0, 0)

    # -- Sink protocol -------------------------------------------------------------

    def start(self, info: StreamInfo) -> None:
        """Begin a new run; in history mode, queue the deletion of the previous run's history. Returns at once."""
        self._check_open("start")
        if self._opened:
            raise self._error("cannot start", "start or resume was already called, or messages were already written")
        self._begin_run()

    def resume(self, info: StreamInfo) -> int | None:
        """Go on after the owning process was restarted, keeping the history; the first seq still needed.

        History mode: reads the history's last id (``XREVRANGE``, with the command retries, so this is
        the one call that waits for Redis) and returns its ``ms`` part: the seq after the last frame
        appended (0 when there is no history). ``None`` in pub/sub-only mode (the sink cannot know)
        and when Redis cannot be read now (the position is then read before the first message is sent).
        """
        self._check_open("resume")
        if self._opened:
            raise self._error("cannot resume", "start or resume was already called, or messages were already written")
        self._opened = True
        if self.history_key is None:
            return None
        try:
            top = self._client.xrevrange(self.history_key, "+", "-", count=1)
        except Exception as exc:  # noqa: BLE001 - any failure here means "cannot know": the owner then goes on from its own position
            with self._cond:
                self._last_error = f"reading the history's last id: {_describe(exc)}"
            log.warning("RedisSink for stream %r: cannot read %r to resume (%s); it is read again before sending",
                        self.stream_id, self.history_key, _describe(exc))
            self._enqueue(_Item(_SYNC, 0, what="reading the history's last id"))
            return None
        self._last_id = _parse_entry_id(top[0][0]) if top else (0, 0)
        with self._cond:
            self._position = self._last_id[0]
        return self._last_id[0]

    def write(self, result: FrameResult, image: np.ndarray | None = None) -> None:
        """Queue one frame's message (``published_at`` is stamped when it is sent). Returns at once."""
        self._check_open(f"write frame {result.meta.index}")
        if self._ended:
            raise self._error(f"cannot write frame {result.meta.index}", "the stream already ended")
        payload = dumps_message(result.to_json(), "RedisSink", self.stream_id)
        self._implicit_start()
        seq = result.meta.seq
        self._enqueue(_Item(_FRAME, seq, payload, f"frame {result.meta.index} (seq {seq})"), next_seq=seq + 1)

    def status(self, event: StreamStatus) -> None:
        """Queue one status event, in order with the frames. Returns at once."""
        self._check_open(f"write status {event.state}")
        if self._ended:
            raise self._error(f"cannot write status {event.state}", "the stream already ended")
        payload = dumps_message(event.to_json(), "RedisSink", self.stream_id)
        self._implicit_start()
        self._enqueue(_Item(_STATUS, event.seq, payload, f"status {event.state} (before seq {event.seq})"),
                      next_seq=event.seq)

    def end(self, end: StreamEnd) -> None:
        """Queue the end message, then wait up to ``flush_timeout_s`` for the buffer to drain (no error if not)."""
        self._check_open("end")
        if self._ended:
            return
        payload = dumps_message(end.to_json(), "RedisSink", self.stream_id)
        self._implicit_start()
        self._ended = True
        with self._cond:
            position = self._position
        self._enqueue(_Item(_END, position, payload, "end message"))
        if not self.flush(self.flush_timeout_s):
            stats = self.stats()
            log.warning("RedisSink for stream %r: %d messages still buffered %.1f s after the end message (last error: %s)",
                        self.stream_id, stats.buffered, self.flush_timeout_s, stats.last_error)

    def close(self) -> None:
        """Stop the publisher (bounded wait) and count what is still buffered as undelivered; idempotent.

        While Redis answers, waits up to ``flush_timeout_s`` for the buffer to drain first; during an
        outage it does not wait.
        """
        if self._closed:
            return
        self._closed = True
        thread = self._thread
        if thread is not None and thread.is_alive():
            deadline = time.monotonic() + self.flush_timeout_s
            with self._cond:
                self._cond.wait_for(
                    lambda: self._drained() or self._outage is not None or time.monotonic() >= deadline,
                    timeout=self.flush_timeout_s,
                )
                self._stopping = True
                self._cond.notify_all()
            thread.join(JOIN_GRACE_S)
            if thread.is_alive():
                # Blocked in a socket call (a server that accepts but does not answer): cut its connection.
                try:
                    self._client.connection_pool.disconnect(inuse_connections=True)
                except Exception:  # noqa: BLE001 - best effort: the join below is bounded anyway
                    pass
                thread.join(JOIN_TIMEOUT_S)
                if thread.is_alive():
                    log.warning("RedisSink for stream %r: the publisher thread did not stop within %.0f s",
                                self.stream_id, JOIN_GRACE_S + JOIN_TIMEOUT_S)
        with self._cond:
            self._stopping = True
            left = [item for item in self._queue if item.kind not in _OP_KINDS]
            if self._current is not None and self._current.kind not in _OP_KINDS and not _thread_alive(thread):
                left.append(self._current)
            self._queue.clear()
            self._owner_waiting = 0
            self._undelivered += len(left)
            self._tallied = True
        if left:
            log.warning("RedisSink for stream %r: closed with %d messages not delivered (%s)",
                        self.stream_id, len(left), ", ".join(item.what for item in left[:3]) + (" ..." if len(left) > 3 else ""))
        try:
            self._client.close()
        except Exception:  # noqa: BLE001 - closing a broken connection must not mask the original error
            pass

    # -- owner's view --------------------------------------------------------------

    def take_events(self) -> list[StreamStatus]:
        """The ``sink_unavailable``/``sink_recovered`` events since the last call (already queued for Redis)."""
        with self._cond:
            events, self._events = self._events, []
        return events

    def stats(self) -> RedisSinkStats:
        with self._cond:
            buffered = sum(1 for item in self._queue if item.kind not in _OP_KINDS)
            if self._current is not None and self._current.kind not in _OP_KINDS:
                buffered += 1
            return RedisSinkStats(
                published=self._published,
                frames_published=self._frames_published,
                undelivered=self._undelivered,
                outages=self._outages,
                buffered=buffered,
                repeats=self._repeats,
                last_receivers=self._last_receivers,
                last_error=self._last_error,
            )

    def flush(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for every buffered message to be sent (or given up); True when drained."""
        with self._cond:
            return self._cond.wait_for(lambda: self._drained() or self._stopping, timeout=timeout_s) and self._drained()

    # -- caller's side internals ---------------------------------------------------

    def _begin_run(self) -> None:
        self._opened = True
        if self.history_key is not None:
            self._enqueue(_Item(_RESET, 0, what="deleting the previous run's history"))

    def _implicit_start(self) -> None:
        if not self._opened:
            self._begin_run()

    def _enqueue(self, item: _Item, *, next_seq: int = 0) -> None:
        with self._cond:
            self._position = max(self._position, next_seq)
            if item.kind in _DROPPABLE_KINDS:
                if self._owner_waiting >= self.buffer_frames:
                    self._drop_oldest_locked()
                self._owner_waiting += 1
            self._queue.append(item)
            self._cond.notify_all()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=f"redis-sink[{self.stream_id}]", daemon=True)
                self._thread.start()

    def _drop_oldest_locked(self) -> None:
        for i, queued in enumerate(self._queue):
            if queued.kind in _DROPPABLE_KINDS:
                del self._queue[i]
                self._owner_waiting -= 1
                self._give_up_locked(queued)
                return

    def _give_up_locked(self, item: _Item) -> None:
        """Count ``item`` (dropped from the full buffer) as lost; a loss always belongs to a reported outage."""
        self._undelivered += 1
        if self._outage is None:
            # Redis has not failed (yet) but does not keep up: the owner must hear of the loss all the same.
            self._begin_outage_locked(f"buffer full ({self.buffer_frames} messages): Redis does not take them "
                                      "as fast as they come")
        outage = self._outage
        if outage is not None:
            outage.lost += 1

    def _drained(self) -> bool:
        return not self._queue and self._current is None

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise self._error(f"cannot {what}", "the sink is closed")

    def _error(self, what: str, cause: BaseException | str) -> SinkError:
        return sink_error("RedisSink", self.stream_id, f"{what} (url {self._safe_url}, channel {self.channel!r})", cause)

    # -- the publisher thread --------------------------------------------------------

    def _run(self) -> None:
        backoff = ExponentialWithJitterBackoff(cap=self.max_backoff_s, base=OUTAGE_BACKOFF_BASE_S)
        failures = 0
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue) or self._stopping)
                if self._stopping:
                    return
                item = self._queue.popleft()
                if item.kind in _DROPPABLE_KINDS:
                    self._owner_waiting -= 1
                self._current = item
            try:
                receivers = self._send(item)
            except Exception as exc:  # noqa: BLE001 - whatever one message causes must not stop the publisher
                transient = _is_transient(exc)
                with self._cond:
                    self._current = None
                    if self._tallied:  # closed while this attempt hung: nothing will send it any more
                        self._undelivered += item.kind not in _OP_KINDS
                        return
                    if transient:
                        self._put_back_locked(item)
                    self._failed_locked(item, exc, transient)
                    self._cond.notify_all()
                if transient:
                    failures += 1
                    with self._cond:
                        self._cond.wait_for(lambda: self._stopping, timeout=backoff.compute(failures))
                continue
            failures = 0
            with self._cond:
                self._current = None
                self._succeeded_locked(item, receivers)
                self._cond.notify_all()

    def _send(self, item: _Item) -> int | None:
        """One attempt (with redis-py's command retries). Returns the receivers, or None when skipped/not a message."""
        key = self.history_key
        if item.kind in _OP_KINDS:
            if key is None:  # only queued in history mode
                return None
            if item.kind == _RESET:
                self._client.delete(key)
                self._last_id = (0, 0)
            else:
                top = self._client.xrevrange(key, "+", "-", count=1)
                self._last_id = max(self._last_id, _parse_entry_id(top[0][0]) if top else (0, 0))
            return None
        item.attempted = True
        payload = item.payload
        if item.kind == _FRAME:
            # published_at is the last key of FrameResult.to_json(published_at=...): splice it in.
            payload = f'{payload[:-1]},"published_at":{json.dumps(time.time())}}}'
        if key is None:
            return int(self._client.publish(self.channel, payload))
        if item.entry_id is None:
            item.entry_id = self._next_entry_id(item)
        ms, seq = item.entry_id
        result = self._script(
            keys=[key],
            args=[self.channel, f"{ms}-{seq}", self.history_maxlen, payload, HISTORY_FIELD],
        )
        return None if int(result) < 0 else int(result)

    def _next_entry_id(self, item: _Item) -> tuple[int, int]:
        """The history id of ``item`` (see the class docstring); remembers the highest handed out."""
        last = self._last_id
        if last[1] == END_ENTRY_SEQ:
            return last  # the history already holds the end message: nothing goes after it
        if item.kind == _FRAME:
            entry = (item.pos + 1, 0)
        elif item.kind == _END:
            entry = (max(item.pos, last[0]), END_ENTRY_SEQ)
        else:  # a status event, the owner's or this sink's: after everything handed out so far
            ms = max(item.pos, last[0])
            entry = (ms, last[1] + 1 if ms == last[0] else 1)
        self._last_id = max(last, entry)
        return entry

    def _put_back_locked(self, item: _Item) -> None:
        if item.kind in _DROPPABLE_KINDS:
            if self._owner_waiting >= self.buffer_frames:
                self._give_up_locked(item)  # the oldest message waiting, and the buffer is full
                return
            self._owner_waiting += 1
        self._queue.appendleft(item)

    def _failed_locked(self, item: _Item, exc: BaseException, transient: bool) -> None:
        cause = _describe(exc)
        self._last_error = f"{item.what}: {cause} (url {self._safe_url})"
        if transient:
            if self._outage is None:
                self._begin_outage_locked(cause)
            return
        log.error("RedisSink for stream %r (url %s, channel %r): Redis refused %s, not retried: %s",
                  self.stream_id, self._safe_url, self.channel, item.what, cause)
        if item.kind in _OP_KINDS:
            return  # not a message: nothing lost (the messages after it fail on their own if they must)
        self._undelivered += 1
        if self._outage is None:
            self._begin_outage_locked(f"Redis refused {item.what}: {cause}")
        outage = self._outage
        if outage is not None:
            outage.lost += 1

    def _begin_outage_locked(self, reason: str) -> None:
        self._outage = _Outage(started=time.monotonic(), reason=reason)
        self._outages += 1
        log.warning("RedisSink for stream %r: Redis at %s cannot take messages (%s); buffering up to %d",
                    self.stream_id, self._safe_url, reason, self.buffer_frames)
        self._queue_event_locked("sink_unavailable", reason=f"{reason} (url {self._safe_url})")

    def _succeeded_locked(self, item: _Item, receivers: int | None) -> None:
        if item.kind not in _OP_KINDS:
            if receivers is None:
                self._repeats += 1
            else:
                self._published += 1
                self._frames_published += item.kind == _FRAME
                self._last_receivers = receivers
        outage = self._outage
        if outage is not None:
            self._outage = None
            downtime = round(time.monotonic() - outage.started, 3)
            log.warning("RedisSink for stream %r: Redis at %s writes again after %.1f s; %d messages lost",
                        self.stream_id, self._safe_url, downtime, outage.lost)
            self._queue_event_locked("sink_recovered", reason=None, lost=outage.lost, downtime_s=downtime)

    def _queue_event_locked(self, state: str, *, reason: str | None, lost: int | None = None,
                            downtime_s: float | None = None) -> None:
        """Queue one of this sink's own events before the first message not yet attempted, and keep it for the owner."""
        index = 0
        for index, queued in enumerate(self._queue):
            if queued.kind in _OP_KINDS or queued.kind == _EVENT or queued.attempted:
                continue
            break
        else:
            index = len(self._queue)
        seq = next((q.pos for q in list(self._queue)[index:] if q.kind in _OWNER_KINDS), self._position)
        event = StreamStatus(stream_id=self.stream_id, state=state, at=time.time(), seq=seq, reason=reason,
                             actor="redis", lost=lost, downtime_s=downtime_s)
        payload = json.dumps(event.to_json(), separators=(",", ":"), allow_nan=False)
        self._queue.insert(index, _Item(_EVENT, seq, payload, f"status {state} (before seq {seq})"))
        self._events.append(event)


def _thread_alive(thread: threading.Thread | None) -> bool:
    return thread is not None and thread.is_alive()
