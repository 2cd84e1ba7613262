"""Keep a live source alive: reopen it, with exponential backoff, whenever it drops, ends, fails or stalls.

- ``ReconnectPolicy``: how long to wait before each reconnect attempt, when to give up, and how
  long a stream may go without a frame before it counts as stalled.
- ``ReconnectingSource``: a ``FrameSource`` around a factory of inner sources (one per
  connection), for network streams (cameras): a dropped connection, an end of the stream, a
  ``DecodeError`` or a stall is followed by a new connection, for ever unless the policy gives up.

How it works: each connection (an *attempt*) is opened and iterated by its own daemon reader
thread, which feeds a small bounded channel. The consumer (the thread calling ``open()`` or
iterating ``frames()``) waits on that channel with the stall timeout as its watchdog, so a camera
that goes silent is noticed after ``stall_timeout_s`` whatever FFmpeg's own read timeout is. An
abandoned connection is only told to stop: its reader thread closes it as soon as its blocked read
returns (within the inner source's read timeout), and the next connection is opened only after
that, so that at most one connection to the camera is ever open (many cameras limit their
sessions, and a UDP port can be bound only once).

All times are in seconds; durations are measured on the monotonic clock.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, Protocol

from pipeline.errors import ConfigError, DecodeError
from pipeline.messages import STATUS_STATES, StreamInfo
from pipeline.sources.base import DecodedFrame, FrameSource, error_prefix
from pipeline.sources.pacing import MIN_FRAME_INTERVAL_S

DEFAULT_INITIAL_S = 0.5
"""First backoff (seconds): long enough not to hammer a camera that refuses, short enough that a blip costs little."""

DEFAULT_MAX_S = 30.0
"""Longest backoff (seconds): a camera that comes back is found again within half a minute."""

DEFAULT_STALL_TIMEOUT_S = 15.0
"""Seconds without a frame before a live stream counts as stalled (the default of ``streams[].stall_timeout_s``)."""

DEFAULT_JITTER = 0.2
"""Fraction of each backoff drawn at random (the delay lies in ``[(1 - jitter) * d, d]``): cameras that
dropped together (a switch rebooted) do not all reconnect in the same instant."""

MAX_DOUBLINGS = 60
"""Cap on the exponent of the backoff, so that ``2 ** (attempt - 1)`` stays a finite float for any attempt."""

CHANNEL_CAPACITY = 4
"""Frames a reader thread may decode ahead of the consumer: enough to absorb scheduling jitter,
small enough that a live stream is not delayed (the consumer usually keeps its own drop-oldest queue)."""

CLOSE_MARGIN_S = 1.0
"""Slack (seconds) added to a timeout when waiting for a reader thread that must exit within that timeout."""

DEFAULT_CLOSE_TIMEOUT_S = 10.0 + CLOSE_MARGIN_S
"""How long ``close()`` waits for reader threads by default: ``AvSource``'s default read timeout (10 s) plus slack."""

CONNECTING: Final = "connecting"
LIVE: Final = "live"
STALLED: Final = "stalled"
RECONNECTING: Final = "reconnecting"
RECOVERED: Final = "recovered"
FAILED: Final = "failed"
_STATES = (CONNECTING, LIVE, STALLED, RECONNECTING, RECOVERED, FAILED)
if not set(_STATES) <= set(STATUS_STATES):  # a renamed state would break every subscriber: fail at import
    raise ImportError(f"reconnect states {_STATES} must all be in pipeline.messages.STATUS_STATES")


class StatusCallback(Protocol):
    """Receives a ``ReconnectingSource``'s state changes; ``state`` is one of ``pipeline.messages.STATUS_STATES``.

    - ``reason``: a human-readable cause (the error that dropped the connection...), or ``None``.
    - ``attempt``: the reconnect attempt (1, 2, ... within one outage) for ``reconnecting``,
      ``recovered`` and ``failed``.
    - ``lost``: for ``recovered``, the frames the camera sent during the outage, estimated from the
      nominal fps (``None`` when the fps is unknown).
    - ``downtime_s``: for ``recovered``, seconds from the last frame before the outage to the first after it.
    """

    def __call__(
        self,
        state: str,
        *,
        reason: str | None = None,
        attempt: int | None = None,
        lost: int | None = None,
        downtime_s: float | None = None,
    ) -> None: ...


def _check_seconds(name: str, value: object, *, allow_zero: bool = False) -> float:
    """``value`` as a float if it is a finite number > 0 (>= 0 with ``allow_zero``); else ``ConfigError``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name}: got {value!r}, expected a finite number of seconds {bound}")
    return float(value)


def _field(obj: object, name: str, default: Any) -> Any:
    """``obj.name`` (or ``obj[name]`` for a mapping); ``default`` when ``obj`` is ``None`` or lacks it."""
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


@dataclass(frozen=True)
class ReconnectPolicy:
    """When to reconnect a live stream, and when to give up. All fields are seconds except ``jitter``.

    - ``initial_s``: backoff before the first reconnect attempt of an outage (> 0).
    - ``max_s``: the longest backoff (>= ``initial_s``); the backoff doubles from ``initial_s`` up to it.
    - ``give_up_after_s``: give up (``DecodeError``, status ``failed``) once the stream has been
      without a frame for this long (from its last frame, or from ``open()`` if it never sent
      one); ``None``: never give up.
    - ``stall_timeout_s``: a connection that delivers nothing for this long is abandoned as stalled
      (this watchdog also covers opening a connection).
    - ``jitter``: fraction in ``[0, 1)`` of each backoff drawn at random (see ``DEFAULT_JITTER``).

    Invalid values raise ``ConfigError``.
    """

    initial_s: float = DEFAULT_INITIAL_S
    max_s: float = DEFAULT_MAX_S
    give_up_after_s: float | None = None
    stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S
    jitter: float = DEFAULT_JITTER

    def __post_init__(self) -> None:
        # object.__setattr__: the dataclass is frozen; values are normalised to float once, here.
        object.__setattr__(self, "initial_s", _check_seconds("reconnect.initial_s", self.initial_s))
        object.__setattr__(self, "max_s", _check_seconds("reconnect.max_s", self.max_s))
        if self.max_s < self.initial_s:
            raise ConfigError(f"reconnect.max_s: got {self.max_s:g}, expected >= reconnect.initial_s ({self.initial_s:g})")
        if self.give_up_after_s is not None:
            object.__setattr__(
                self, "give_up_after_s", _check_seconds("reconnect.give_up_after_s", self.give_up_after_s)
            )
        object.__setattr__(self, "stall_timeout_s", _check_seconds("stall_timeout_s", self.stall_timeout_s))
        jitter = self.jitter
        if isinstance(jitter, bool) or not isinstance(jitter, (int, float)) or not 0 <= jitter < 1:
            raise ConfigError(f"reconnect.jitter: got {jitter!r}, expected a fraction >= 0 and < 1")
        object.__setattr__(self, "jitter", float(jitter))

    @classmethod
    def from_stream_config(cls, stream: object) -> ReconnectPolicy:
        """The policy of a stream's config: ``stream.stall_timeout_s`` and ``stream.reconnect.initial_s``,
        ``.max_s``, ``.give_up_after_s`` (attributes or mapping keys; a missing one takes this class's default)."""
        reconnect = _field(stream, "reconnect", None)
        return cls(
            initial_s=_field(reconnect, "initial_s", DEFAULT_INITIAL_S),
            max_s=_field(reconnect, "max_s", DEFAULT_MAX_S),
            give_up_after_s=_field(reconnect, "give_up_after_s", None),
            stall_timeout_s=_field(stream, "stall_timeout_s", DEFAULT_STALL_TIMEOUT_S),
        )

    def base_delay_s(self, attempt: int) -> float:
        """The backoff before reconnect ``attempt`` (1, 2, ...) without jitter: ``min(max_s, initial_s * 2 ** (attempt - 1))``."""
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
            raise ValueError(f"attempt: got {attempt!r}, expected an integer >= 1")
        return min(self.max_s, self.initial_s * 2.0 ** min(attempt - 1, MAX_DOUBLINGS))

    def delay_s(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before reconnect ``attempt`` (1 for the first after a failure).

        ``base_delay_s(attempt) * (1 - jitter * u)`` with ``u`` uniform in ``[0, 1)`` drawn from
        ``rng`` (the ``random`` module's generator when ``None``; pass a seeded ``random.Random``
        for reproducible delays): never more than ``max_s``, never less than ``(1 - jitter) * initial_s``.
        """
        draw = (rng or random).random()
        return self.base_delay_s(attempt) * (1.0 - self.jitter * draw)

    def gives_up(self, failing_for_s: float) -> bool:
        """Whether a stream that has had no frame for ``failing_for_s`` seconds is given up."""
        return self.give_up_after_s is not None and failing_for_s >= self.give_up_after_s


# -- the channel between a reader thread and the consumer ------------------------------------


class _Signal:
    """A marker the channel returns instead of an item."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_STOPPED = _Signal("STOPPED")
_STALLED = _Signal("STALLED")

# Items a reader thread sends: ("info", StreamInfo), ("frame", DecodedFrame), ("end", None), ("error", Exception).
_Item = tuple[str, Any]


class _Channel:
    """A bounded FIFO from one reader thread to one consumer, with a stall watchdog and a stop signal.

    ``last_activity_s`` (monotonic) is the last time the reader made progress: it put an item or
    started opening. The consumer's ``get`` returns ``_STALLED`` when the channel is empty and the
    reader made no progress for ``stall_timeout_s``: a slow consumer (a full channel) is never a
    stall. The watchdog starts with ``touch()`` (before that, the reader waits, for a bounded
    time, for the previous connection to be closed).
    """

    def __init__(self, capacity: int) -> None:
        self._cond = threading.Condition()
        self._items: deque[_Item] = deque()
        self._capacity = capacity
        self._closed = False
        self._watching = False
        self.last_activity_s = time.monotonic()

    def touch(self) -> None:
        """The reader made progress without an item (it starts opening the connection); starts the watchdog."""
        with self._cond:
            self._watching = True
            self.last_activity_s = time.monotonic()
            self._cond.notify_all()

    def put(self, item: _Item) -> bool:
        """Append ``item``, waiting while the channel is full; ``False`` (item dropped) once it is closed."""
        with self._cond:
            while len(self._items) >= self._capacity and not self._closed:
                self._cond.wait()
            if self._closed:
                return False
            self._items.append(item)
            self.last_activity_s = time.monotonic()
            self._cond.notify_all()
            return True

    def get(self, stall_timeout_s: float, stop: threading.Event, deadline_s: float | None = None) -> _Item | _Signal:
        """The next item; ``_STOPPED`` as soon as ``stop`` is set; ``_STALLED`` when the reader stalled
        or, with an empty channel, at ``deadline_s`` (monotonic) if one is given."""
        with self._cond:
            while True:
                if stop.is_set():
                    return _STOPPED
                if self._items:
                    item = self._items.popleft()
                    self._cond.notify_all()
                    return item
                now_s = time.monotonic()
                wake_s = deadline_s  # before touch(), only the deadline (the wait for the previous connection is bounded)
                if self._watching:
                    stall_s = self.last_activity_s + stall_timeout_s
                    wake_s = stall_s if wake_s is None else min(wake_s, stall_s)
                if wake_s is not None and wake_s <= now_s:
                    return _STALLED
                self._cond.wait(None if wake_s is None else wake_s - now_s)

    def wake(self) -> None:
        """Make a waiting ``get`` re-check ``stop``."""
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        """Drop what is buffered; the reader's next ``put`` returns ``False``; wakes everyone."""
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()


class _Attempt:
    """One connection: a daemon reader thread that opens an inner source, iterates it into a channel, closes it.

    The thread first waits (at most ``join_previous_s``) for the previous connection's thread to
    finish closing its source, so that two connections to the camera are never open at once.
    """

    def __init__(
        self,
        name: str,
        factory: Callable[[], FrameSource],
        previous: _Attempt | None,
        join_previous_s: float,
    ) -> None:
        self.channel = _Channel(CHANNEL_CAPACITY)
        self.abandoned = threading.Event()
        self.info: StreamInfo | None = None  # what this connection's open() returned
        self.index_offset: int | None = None  # set at the connection's first frame (see ReconnectingSource)
        self.pts_offset_s = 0.0
        self._factory = factory
        self._previous = previous
        self._join_previous_s = join_previous_s
        self._lock = threading.Lock()  # guards _source against abandon() racing its creation
        self._source: FrameSource | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def abandon(self) -> None:
        """Stop the connection (its thread closes it once its read returns) and discard what it sends; prompt."""
        self.abandoned.set()
        with self._lock:
            source = self._source
        if source is not None:
            source.stop()
        self.channel.close()

    def _run(self) -> None:
        source: FrameSource | None = None
        try:
            if self._previous is not None:
                self._previous.thread.join(self._join_previous_s)
                self._previous = None  # let the old attempt be collected
            self.channel.touch()  # the stall watchdog counts from the start of opening
            source = self._factory()
            with self._lock:
                self._source = source
                if self.abandoned.is_set():
                    return
            info = source.open()
            self.info = info
            if not self.channel.put(("info", info)):
                return
            for frame in source.frames():
                if not self.channel.put(("frame", frame)):
                    return
            self.channel.put(("end", None))
        except Exception as exc:  # noqa: BLE001 - handed to the consumer thread, which retries a DecodeError and re-raises anything else
            self.channel.put(("error", exc))
        finally:
            if source is not None:
                try:
                    source.close()
                except Exception:  # noqa: BLE001 - nobody is left to tell: this connection was already given up or reported
                    pass


# -- the source ---------------------------------------------------------------------------------


class ReconnectingSource:
    """A ``FrameSource`` that keeps a live stream going across dropped connections, ends, errors and stalls.

    - ``stream_id``, ``url``: name the stream in errors and statuses (the factory knows how to open it).
    - ``factory``: returns a new, unopened inner source for each connection (``AvSource`` for a camera).
      A ``ConfigError`` or any error other than ``DecodeError`` from it or from its source is not
      retried: it ends the stream.
    - ``policy``: backoff, give-up and stall timeout (``ReconnectPolicy``).
    - ``on_status``: called with each state change (see ``StatusCallback``), on the thread that calls
      ``open()`` or iterates ``frames()``, before the frame it concerns is yielded; it should return quickly.
    - ``close_timeout_s``: how long ``close()`` waits (seconds) for the reader threads to close their
      connections; they are daemons that exit within the inner source's open/read timeout anyway.
    - ``rng``: the random generator of the backoff jitter (seeded in tests).

    States reported: ``connecting`` (``open()`` starts), ``live`` (the stream's first frame),
    ``stalled`` (a delivering stream sent nothing for ``stall_timeout_s``), ``reconnecting`` (a
    connection failed or ended; ``attempt`` n's backoff starts; ``reason`` says why), ``recovered``
    (the first frame after an outage; with ``attempt``, ``downtime_s`` and ``lost``), ``failed``
    (``give_up_after_s`` spent; ``DecodeError`` follows). A connection that never delivered (the
    first one, or one during an outage) and stalls is reported as ``reconnecting``, not ``stalled``.

    ``open()`` retries too: a camera that is unreachable at start is waited for (``connecting``,
    then ``reconnecting`` attempts) until it answers, the policy gives up, or ``stop()`` is called
    (then ``open()`` raises ``DecodeError``). ``info`` is the first connection's; later connections
    may differ in size (the ``recovered`` reason says so) and each frame carries its own image.

    Continuity: frame indices and pts are strictly increasing across reconnects. Within a
    connection they follow the inner source (its gaps, e.g. from ``max_fps``, are kept); the first
    frame of a new connection gets the last yielded index + 1, and a pts equal to the last pts plus
    the real time without frames (monotonic clock, at least one frame interval), so that pts keep
    tracking the camera's clock across the outage.
    """

    def __init__(
        self,
        stream_id: str,
        url: str,
        factory: Callable[[], FrameSource],
        policy: ReconnectPolicy,
        *,
        on_status: StatusCallback | None = None,
        close_timeout_s: float = DEFAULT_CLOSE_TIMEOUT_S,
        rng: random.Random | None = None,
    ) -> None:
        if not isinstance(policy, ReconnectPolicy):
            raise ConfigError(f"stream {stream_id!r}: reconnect: got {policy!r}, expected a ReconnectPolicy")
        self.stream_id = stream_id
        self.url = url
        self.policy = policy
        self.close_timeout_s = _check_seconds(f"stream {stream_id!r}: close_timeout_s", close_timeout_s)
        self._factory = factory
        self._on_status = on_status
        self._rng = rng
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards _attempt, _attempts, _closed against stop()/close() from other threads
        self._attempt: _Attempt | None = None
        self._attempts: list[_Attempt] = []  # whose threads may still be running (close() waits for them)
        self._connections = 0
        self._closed = False
        self._iterated = False
        self._info: StreamInfo | None = None
        self._state: str | None = None
        self._delivered = False  # some frame was yielded
        self._last_index: int | None = None
        self._last_pts_s: float | None = None
        self._last_frame_at_s: float | None = None  # monotonic
        self._outage_since_s: float | None = None  # monotonic start of the current time without frames
        self._outage_attempts = 0  # reconnect attempts in the current outage
        self._last_reason: str | None = None

    # -- FrameSource ------------------------------------------------------------------------------

    @property
    def info(self) -> StreamInfo:
        """The first connection's ``StreamInfo``; raises ``AttributeError`` before ``open()`` returned."""
        if self._info is None:
            raise AttributeError(f"{self._prefix()}info is not known until open() is called")
        return self._info

    @property
    def state(self) -> str | None:
        """The last state reported (``None`` before ``open()``)."""
        return self._state

    def open(self) -> StreamInfo:
        """Connect (retrying with backoff, see the class docstring) and return the stream's ``StreamInfo``.

        Raises ``DecodeError`` when the policy gives up, when stopped or closed before a connection
        was made, and ``ConfigError`` (or another non-``DecodeError``) from the factory or the inner source.
        """
        if self._closed:
            raise DecodeError(f"{self._prefix()}cannot open: the source was closed")
        if self._info is not None:
            return self._info
        self._report(CONNECTING)
        self._outage_since_s = time.monotonic()  # no frame yet: give_up_after_s counts from now
        try:
            while True:
                attempt = self._current_attempt()
                if attempt is None:
                    raise DecodeError(f"{self._prefix()}stopped before a connection was made")
                item = attempt.channel.get(self.policy.stall_timeout_s, self._stop, self._give_up_at_s())
                if item is _STOPPED:
                    raise DecodeError(f"{self._prefix()}stopped before a connection was made")
                if isinstance(item, tuple) and item[0] == "info":
                    self._info = item[1]
                    return item[1]
                self._connection_failed(self._failure_reason(item))
        except BaseException:
            self._abandon_current()
            raise

    def frames(self) -> Iterator[DecodedFrame]:
        """Yield frames across reconnects until ``stop()``; raises ``DecodeError`` when the policy gives up.

        Opens first if ``open()`` was not called. Iterate it once.
        """
        if self._iterated:
            raise RuntimeError(f"{self._prefix()}frames() can be iterated only once")
        self._iterated = True
        self.open()
        try:
            while not self._stop.is_set():
                attempt = self._current_attempt()
                if attempt is None:
                    return
                item = attempt.channel.get(self.policy.stall_timeout_s, self._stop, self._give_up_at_s())
                if item is _STOPPED:
                    return
                if isinstance(item, tuple) and item[0] == "frame":
                    yield self._renumber(attempt, item[1])
                    continue
                if isinstance(item, tuple) and item[0] == "info":
                    continue  # a new connection's header: the first connection's info stays
                reason = self._failure_reason(item)
                if item is _STALLED and self._outage_since_s is None:
                    self._report(STALLED, reason=reason)
                self._connection_failed(reason)
        finally:
            self._abandon_current()

    def stop(self) -> None:
        """Make ``open()``/``frames()`` return promptly, also during a backoff wait; callable from any thread."""
        self._stop.set()
        self._abandon_current()

    def close(self) -> None:
        """Stop, then wait (at most ``close_timeout_s``) for the connections to be closed; idempotent."""
        self.stop()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            attempts, self._attempts = self._attempts, []
        deadline_s = time.monotonic() + self.close_timeout_s
        for attempt in attempts:
            attempt.thread.join(max(0.0, deadline_s - time.monotonic()))

    # -- internals --------------------------------------------------------------------------------

    def _prefix(self) -> str:
        return error_prefix(self.stream_id, self.url)

    def _report(self, state: str, **details: Any) -> None:
        self._state = state
        if self._on_status is not None:
            self._on_status(state, **details)

    def _give_up_at_s(self) -> float | None:
        """When (monotonic) the current outage is given up; ``None`` while frames flow or without a limit."""
        if self._outage_since_s is None or self.policy.give_up_after_s is None:
            return None
        return self._outage_since_s + self.policy.give_up_after_s

    def _current_attempt(self) -> _Attempt | None:
        """The connection in use, or a new one started now; ``None`` once stopped."""
        with self._lock:
            if self._stop.is_set() or self._closed:
                return None
            if self._attempt is not None:
                return self._attempt
            self._attempts = [a for a in self._attempts if a.thread.is_alive()]
            previous = self._attempts[-1] if self._attempts else None
            self._connections += 1
            attempt = _Attempt(
                f"reconnect-{self.stream_id}-{self._connections}", self._factory, previous, self.close_timeout_s
            )
            self._attempt = attempt
            self._attempts.append(attempt)
            attempt.start()
            return attempt

    def _abandon_current(self) -> None:
        with self._lock:
            attempt, self._attempt = self._attempt, None
        if attempt is not None:
            attempt.abandon()

    def _failure_reason(self, item: _Item | _Signal) -> str:
        """Why a connection is given up; re-raises an error that is not a ``DecodeError``."""
        if item is _STALLED:
            give_up_at_s = self._give_up_at_s()
            if give_up_at_s is not None and time.monotonic() >= give_up_at_s:
                before = f"; before it: {self._last_reason}" if self._last_reason else ""
                return f"a connection attempt was still in progress{before}"
            return f"no frame for {self.policy.stall_timeout_s:g} s (stall_timeout_s)"
        if isinstance(item, tuple) and item[0] == "error":
            exc = item[1]
            if not isinstance(exc, DecodeError):
                raise exc
            message = str(exc)
            return message[len(self._prefix()) :] if message.startswith(self._prefix()) else message
        if isinstance(item, tuple) and item[0] == "end":
            return "the stream ended (the sender closed it)"
        raise RuntimeError(f"{self._prefix()}unexpected item from a reader thread: {item!r}")

    def _connection_failed(self, reason: str) -> None:
        """Abandon the connection; give up (``DecodeError``) or report ``reconnecting`` and wait the backoff."""
        self._abandon_current()
        now_s = time.monotonic()
        if self._outage_since_s is None:
            self._outage_since_s = self._last_frame_at_s if self._last_frame_at_s is not None else now_s
            self._outage_attempts = 0
        self._last_reason = reason
        failing_for_s = now_s - self._outage_since_s
        if self.policy.gives_up(failing_for_s):
            since = "its last frame" if self._delivered else "open()"
            message = (
                f"gave up after {failing_for_s:.1f} s without a frame since {since} and "
                f"{self._outage_attempts} reconnect attempt{'s' if self._outage_attempts != 1 else ''} "
                f"(give_up_after_s={self.policy.give_up_after_s:g}); last error: {reason}"
            )
            self._report(FAILED, reason=message, attempt=self._outage_attempts)
            raise DecodeError(f"{self._prefix()}{message}")
        self._outage_attempts += 1
        delay_s = self.policy.delay_s(self._outage_attempts, self._rng)
        if self.policy.give_up_after_s is not None:  # the last attempt is made at the give-up time, not after it
            delay_s = min(delay_s, max(0.0, self.policy.give_up_after_s - failing_for_s))
        self._report(RECONNECTING, reason=reason, attempt=self._outage_attempts)
        self._stop.wait(delay_s)

    def _frame_interval_s(self) -> float:
        fps = self._info.fps if self._info is not None else None
        return 1.0 / fps if fps else MIN_FRAME_INTERVAL_S

    def _renumber(self, attempt: _Attempt, frame: DecodedFrame) -> DecodedFrame:
        """The frame with index and pts continuing the stream's; reports ``live``/``recovered`` at a first frame."""
        now_s = time.monotonic()
        if attempt.index_offset is None:  # this connection's first frame
            if self._last_index is None or self._last_pts_s is None or self._last_frame_at_s is None:
                attempt.index_offset, attempt.pts_offset_s = 0, 0.0
            else:
                gap_s = max(self._frame_interval_s(), now_s - self._last_frame_at_s)
                attempt.index_offset = self._last_index + 1 - frame.index
                attempt.pts_offset_s = self._last_pts_s + gap_s - frame.pts_s
            if not self._delivered:
                self._report(LIVE)
            elif self._outage_since_s is not None:
                self._report_recovered(attempt, now_s)
            self._delivered = True
            self._outage_since_s = None
            self._outage_attempts = 0
        index = frame.index + attempt.index_offset
        pts_s = frame.pts_s + attempt.pts_offset_s
        # Whatever the inner source does, the stream's indices and pts never repeat nor go back.
        if self._last_index is not None and index <= self._last_index:
            index = self._last_index + 1
        if self._last_pts_s is not None and pts_s <= self._last_pts_s:
            pts_s = self._last_pts_s + MIN_FRAME_INTERVAL_S
        self._last_index, self._last_pts_s, self._last_frame_at_s = index, pts_s, now_s
        if index == frame.index and pts_s == frame.pts_s:
            return frame
        return replace(frame, index=index, pts_s=pts_s)

    def _report_recovered(self, attempt: _Attempt, now_s: float) -> None:
        since_s = self._outage_since_s if self._outage_since_s is not None else now_s
        downtime_s = now_s - since_s
        fps = self._info.fps if self._info is not None else None
        lost = max(0, round(downtime_s * fps) - 1) if fps else None
        reason = f"after: {self._last_reason}" if self._last_reason else None
        first, new = self._info, attempt.info
        if first is not None and new is not None and (new.width, new.height) != (first.width, first.height):
            resized = f"the stream is now {new.width}x{new.height} (was {first.width}x{first.height})"
            reason = f"{reason}; {resized}" if reason else resized
        self._report(RECOVERED, reason=reason, attempt=self._outage_attempts, lost=lost, downtime_s=downtime_s)
