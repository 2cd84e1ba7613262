"""Publish one stream's results to Redis pub/sub (and optionally to a capped Redis stream)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from pipeline.errors import SinkError
from pipeline.messages import FrameResult, StreamEnd, StreamInfo
from pipeline.sinks.base import dumps_message, sink_error

T = TypeVar("T")

_RETRYABLE = (redis.ConnectionError, redis.TimeoutError)


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


class RedisSink:
    """PUBLISH each frame's JSON message, then the end message, on ``channel.format(stream=stream_id)``.

    Delivery guarantee: Redis pub/sub is fire-and-forget. A message reaches exactly the
    subscribers connected to the channel when it is published, in publish order (so each
    subscriber sees this stream's frames in frame order, then the end message); Redis
    does not buffer for subscribers that connect later or fall behind and are
    disconnected. A command that fails with a connection error or a timeout is retried
    ``retries`` times with exponential backoff (50 ms doubling, at most 1 s), then
    ``SinkError`` is raised naming the url (password redacted), the channel and the
    cause. A retry after a *timeout* may publish a message twice (the server may have
    received the first attempt): at-least-once per attempt window, at-most ``retries+1``
    copies; a refused connection never duplicates.

    With ``history_maxlen > 0`` every message is also appended (field ``"json"``) to the
    Redis stream ``"<channel>:history"`` trimmed to about ``history_maxlen`` entries
    (``MAXLEN ~``: Redis trims whole nodes, so it may hold somewhat more), so late
    subscribers can catch up with ``XRANGE``/``XREAD`` before subscribing. XADD and
    PUBLISH run in one MULTI/EXEC transaction, so the history holds the published
    messages in the same order (a history key of another type fails the XADD with
    ``SinkError``, not retried).

    ``published`` counts messages published (frames and the end message),
    ``frames_published`` the frame messages, ``last_receivers`` the number of
    subscribers that received the last message.
    """

    needs_image = False

    def __init__(
        self,
        stream_id: str,
        *,
        url: str,
        channel: str = "masks:{stream}",
        history_maxlen: int = 0,
        connect_timeout_s: float = 5.0,
        retries: int = 3,
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
        self.history_key = f"{self.channel}:history" if history_maxlen > 0 else None
        if history_maxlen < 0:
            raise sink_error("RedisSink", stream_id, "bad history_maxlen", f"must be >= 0, got {history_maxlen}")
        if retries < 0:
            raise sink_error("RedisSink", stream_id, "bad retries", f"must be >= 0, got {retries}")
        if not connect_timeout_s > 0:
            raise sink_error("RedisSink", stream_id, "bad connect_timeout_s", f"must be > 0, got {connect_timeout_s}")
        self.history_maxlen = history_maxlen
        self.retries = retries
        self.published = 0
        self.frames_published = 0
        self.last_receivers = 0
        self._ended = False
        self._closed = False
        try:
            # redis-py's own retries are disabled (its default backs off for seconds): we retry ourselves.
            self._client: redis.Redis = redis.Redis.from_url(
                url,
                socket_connect_timeout=connect_timeout_s,
                socket_timeout=connect_timeout_s,
                retry=Retry(NoBackoff(), 0),
            )
        except (ValueError, TypeError) as exc:
            raise self._error("invalid url", exc) from exc

    # -- Sink protocol -------------------------------------------------------------

    def start(self, info: StreamInfo) -> None:
        """Check that Redis answers (PING, with retries), so a bad url fails before frames flow."""
        self._check_open()
        self._call("PING", self._client.ping)

    def write(self, result: FrameResult, image: np.ndarray | None = None) -> None:
        self._check_open()
        if self._ended:
            raise self._error(f"cannot write frame {result.meta.index}", "the stream already ended")
        payload = dumps_message(result.to_json(published_at=time.time()), "RedisSink", self.stream_id)
        self._publish(payload, f"frame {result.meta.index}")
        self.frames_published += 1

    def end(self, end: StreamEnd) -> None:
        self._check_open()
        if self._ended:
            return
        payload = dumps_message(end.to_json(), "RedisSink", self.stream_id)
        self._publish(payload, "end message")
        self._ended = True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._client.close()
        except Exception:  # closing a broken connection must not mask the original error
            pass

    # -- internals -----------------------------------------------------------------

    def _publish(self, payload: str, what: str) -> None:
        if self.history_key is None:
            receivers = self._call(f"PUBLISH of {what}", lambda: self._client.publish(self.channel, payload))
        else:
            key, maxlen = self.history_key, self.history_maxlen

            def transaction() -> int:
                pipe = self._client.pipeline(transaction=True)
                pipe.xadd(key, {"json": payload}, maxlen=maxlen, approximate=True)
                pipe.publish(self.channel, payload)
                return pipe.execute()[1]

            receivers = self._call(f"XADD+PUBLISH of {what}", transaction)
        self.published += 1
        self.last_receivers = int(receivers)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        delay = 0.05
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except redis.AuthenticationError as exc:  # a ConnectionError subclass, but retrying cannot help
                raise self._error(what, exc) from exc
            except _RETRYABLE as exc:
                if attempt == self.retries:
                    raise self._error(f"{what} failed after {self.retries + 1} attempts", exc) from exc
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
            except redis.RedisError as exc:
                raise self._error(what, exc) from exc
        raise AssertionError("unreachable")

    def _error(self, what: str, cause: BaseException | str) -> SinkError:
        return sink_error("RedisSink", self.stream_id, f"{what} (url {self._safe_url}, channel {self.channel!r})", cause)

    def _check_open(self) -> None:
        if self._closed:
            raise self._error("sink is closed", "start/write/end called after close()")
