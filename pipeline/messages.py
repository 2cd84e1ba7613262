"""The message types every stage speaks.

All are frozen dataclasses. Frames (pixels) never live in these types: a frame's
pixels travel separately (a numpy ``uint8`` array of shape ``(H, W, 3)``, RGB, or a
Ray object reference to one); these types carry metadata and results only, so they
are small enough to pass between actors and to serialise as JSON.

Box format everywhere: ``(x1, y1, x2, y2)`` in pixels of the full frame, float,
``0 <= x1 <= x2 <= width`` and ``0 <= y1 <= y2 <= height``.

Masks are COCO run-length encodings (RLE) of the full frame, column-major, as
pycocotools writes them: ``{"size": [height, width], "counts": "<compressed>"}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from pipeline.errors import MaskstreamError

SCHEMA_VERSION = 1


class MessageError(MaskstreamError):
    """A message (from Redis, a JSON Lines file, or a stage) violates the schema."""


@dataclass(frozen=True)
class StreamInfo:
    """What a source learnt when it opened its stream.

    ``fps`` is the stream's native frame rate (``None`` when unknown, e.g. some live
    feeds); ``total_frames`` is the number of frames a finite source will emit after
    ``max_fps`` subsampling (``None`` when unknown or endless).
    """

    stream_id: str
    width: int
    height: int
    fps: float | None
    total_frames: int | None
    live: bool

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise MessageError(f"stream {self.stream_id!r}: frame size must be positive, got {self.width}x{self.height}")


@dataclass(frozen=True)
class FrameMeta:
    """Metadata of one decoded frame.

    ``index`` is the 0-based index of the frame among all frames the source decoded
    (gaps appear where frames were subsampled by ``max_fps`` or dropped under load).
    ``seq`` is the 0-based, gap-free number of the frame among the frames submitted for
    inference in this stream: the reorder key. ``pts_s`` is the presentation time in
    seconds from the stream's start; ``captured_at`` the wall-clock time (``time.time()``)
    when the frame was decoded.
    """

    stream_id: str
    index: int
    seq: int
    pts_s: float
    captured_at: float
    width: int
    height: int
    # The incarnation of the source actor that sent the frame (0 for its first start, +1 per restart):
    # the stream's output ignores results of an incarnation older than the one now attached. Never published.
    epoch: int = 0
    # The frame's place in the object its reference names (a source puts several frames as one
    # ``pipeline.frames.FrameBundle``). Never published.
    slot: int = 0

    def __post_init__(self) -> None:
        if self.index < 0 or self.seq < 0 or self.slot < 0:
            raise MessageError(f"stream {self.stream_id!r}: index, seq and slot must be >= 0, got {self.index}, "
                               f"{self.seq}, {self.slot}")
        if self.width <= 0 or self.height <= 0:
            raise MessageError(f"stream {self.stream_id!r}: frame size must be positive, got {self.width}x{self.height}")


@dataclass(frozen=True)
class RleMask:
    """One binary mask of a full frame as COCO compressed RLE (column-major runs, starting with zeros)."""

    height: int
    width: int
    counts: str

    def to_coco(self) -> dict[str, Any]:
        return {"size": [self.height, self.width], "counts": self.counts}

    @classmethod
    def from_coco(cls, rle: dict[str, Any]) -> "RleMask":
        try:
            height, width = (int(v) for v in rle["size"])
            counts = rle["counts"]
        except (KeyError, TypeError, ValueError) as exc:
            raise MessageError(f"mask must be {{'size': [h, w], 'counts': str}}, got {rle!r:.120}") from exc
        if isinstance(counts, bytes):
            counts = counts.decode("ascii")
        if not isinstance(counts, str):
            raise MessageError(f"mask counts must be a compressed RLE string, got {type(counts).__name__}")
        return cls(height=height, width=width, counts=counts)


@dataclass(frozen=True)
class Detections:
    """The model's output for one frame, in full-frame coordinates.

    - ``boxes``: float32 ``(N, 4)``, ``(x1, y1, x2, y2)`` pixels.
    - ``labels``: int64 ``(N,)``, class indices (0 is background and never appears).
    - ``scores``: float32 ``(N,)`` in ``[0, 1]``, sorted descending.
    - ``class_names``: ``N`` names, ``class_names[i]`` names ``labels[i]``.
    - ``masks``: ``N`` RLE masks, each of the frame's size.
    """

    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    class_names: tuple[str, ...]
    masks: tuple[RleMask, ...]

    def __post_init__(self) -> None:
        n = len(self.scores)
        if self.boxes.shape != (n, 4):
            raise MessageError(f"boxes must have shape ({n}, 4) to match {n} scores, got {self.boxes.shape}")
        if self.labels.shape != (n,):
            raise MessageError(f"labels must have shape ({n},), got {self.labels.shape}")
        if len(self.class_names) != n or len(self.masks) != n:
            raise MessageError(
                f"class_names ({len(self.class_names)}) and masks ({len(self.masks)}) must both have {n} entries"
            )

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> "Detections":
        return cls(
            boxes=np.zeros((0, 4), np.float32),
            labels=np.zeros((0,), np.int64),
            scores=np.zeros((0,), np.float32),
            class_names=(),
            masks=(),
        )


@dataclass(frozen=True)
class Instance:
    """One detected object in one frame, as published. ``track_id`` is ``None`` when the tracker gave it none."""

    label: int
    class_name: str
    score: float
    box: tuple[float, float, float, float]
    mask: RleMask
    track_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "track_id": self.track_id,
            "label": self.label,
            "class": self.class_name,
            "score": round(self.score, 5),
            "box": [round(v, 2) for v in self.box],
            "mask": self.mask.to_coco(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Instance":
        try:
            box = tuple(float(v) for v in data["box"])
            if len(box) != 4:
                raise ValueError(f"box must have 4 numbers, got {len(box)}")
            track_id = data.get("track_id")
            return cls(
                label=int(data["label"]),
                class_name=str(data["class"]),
                score=float(data["score"]),
                box=box,  # type: ignore[arg-type]
                mask=RleMask.from_coco(data["mask"]),
                track_id=None if track_id is None else int(track_id),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MessageError(f"instance is not valid: {exc}") from exc


def instances_from_detections(detections: Detections, track_ids: list[int | None] | None = None) -> tuple[Instance, ...]:
    """Turn the model's arrays into published instances, with the tracker's ids when given."""
    if track_ids is not None and len(track_ids) != len(detections):
        raise MessageError(f"track_ids has {len(track_ids)} entries for {len(detections)} detections")
    return tuple(
        Instance(
            label=int(detections.labels[i]),
            class_name=detections.class_names[i],
            score=float(detections.scores[i]),
            box=tuple(float(v) for v in detections.boxes[i]),  # type: ignore[arg-type]
            mask=detections.masks[i],
            track_id=None if track_ids is None else track_ids[i],
        )
        for i in range(len(detections))
    )


@dataclass(frozen=True)
class FrameResult:
    """The result for one frame: its metadata and instances, or the error that prevented them.

    ``inferred_at`` is the wall-clock time when inference finished (``None`` if it failed).
    """

    meta: FrameMeta
    instances: tuple[Instance, ...] = ()
    error: str | None = None
    inferred_at: float | None = None

    def to_json(self, published_at: float | None = None) -> dict[str, Any]:
        m = self.meta
        message: dict[str, Any] = {
            "type": "frame",
            "v": SCHEMA_VERSION,
            "stream": m.stream_id,
            "frame": m.index,
            "seq": m.seq,
            "pts": round(m.pts_s, 6),
            "captured_at": m.captured_at,
            "width": m.width,
            "height": m.height,
            "instances": [inst.to_json() for inst in self.instances],
        }
        if self.error is not None:
            message["error"] = self.error
        if self.inferred_at is not None:
            message["inferred_at"] = self.inferred_at
        if published_at is not None:
            message["published_at"] = published_at
        return message


@dataclass(frozen=True)
class StreamEnd:
    """The last message of a stream: how many frames were published, and why it ended if not cleanly.

    ``frames`` counts published frame messages; ``decoded`` counts frames the source
    decoded; ``dropped`` counts frames dropped under load (live sources only).
    ``error`` is ``None`` for a clean end.
    """

    stream_id: str
    frames: int
    decoded: int = 0
    dropped: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "type": "end",
            "v": SCHEMA_VERSION,
            "stream": self.stream_id,
            "frames": self.frames,
            "decoded": self.decoded,
            "dropped": self.dropped,
        }
        if self.error is not None:
            message["error"] = self.error
        return message


@dataclass(frozen=True)
class FrameMessage:
    """A frame message read back from Redis or JSON Lines (the subscriber's view)."""

    stream_id: str
    index: int
    seq: int
    pts_s: float
    captured_at: float
    width: int
    height: int
    instances: tuple[Instance, ...]
    error: str | None = None
    published_at: float | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


STATUS_STATES: tuple[str, ...] = (
    "connecting",  # a live source is opening its stream (first time)
    "live",  # a live source delivers frames
    "stalled",  # no frame for stall_timeout_s (the watchdog fired)
    "reconnecting",  # a live source lost its stream and waits `attempt`'s backoff before opening again
    "recovered",  # a live source delivers again after reconnecting (downtime_s, lost say what it cost)
    "failed",  # a source gave up (give_up_after_s spent) or an actor of the stream could not be recovered
    "restarted",  # an actor of the stream (``actor``) died and was restarted; the run goes on
    "sink_unavailable",  # a sink (``actor`` names it, e.g. "redis") cannot write; messages are buffered
    "sink_recovered",  # that sink writes again; ``lost`` messages could not be kept (buffer full)
)
"""Every ``state`` a status event may carry. New states may be added; none is ever renamed."""


@dataclass(frozen=True)
class StreamStatus:
    """A change in a stream's health, published in order with its frames (before frame ``seq``).

    - ``state``: one of ``STATUS_STATES``; ``reason``: a human-readable cause (``None`` when obvious).
    - ``attempt``: the reconnect attempt (1, 2, ...) for ``reconnecting``/``recovered``.
    - ``at``: wall-clock time (Unix seconds) of the change.
    - ``actor``: the actor or sink concerned (``"source"``, ``"output"``, ``"dispatcher"``,
      ``"inference[1]"``, ``"redis"``...), ``None`` for a source's own connection states.
    - ``lost``: frames (or, for a sink, messages) the change cost, when known: a live stream's gap,
      a sink's undelivered messages. ``downtime_s``: seconds between the failure and the recovery.
    - ``seq``: the ``seq`` of the first frame published after this event (the event precedes it).
    """

    stream_id: str
    state: str
    at: float
    seq: int = 0
    reason: str | None = None
    attempt: int | None = None
    actor: str | None = None
    lost: int | None = None
    downtime_s: float | None = None

    def __post_init__(self) -> None:
        if self.state not in STATUS_STATES:
            raise MessageError(f"stream {self.stream_id!r}: status state must be one of {STATUS_STATES}, got {self.state!r}")
        if self.seq < 0:
            raise MessageError(f"stream {self.stream_id!r}: status seq must be >= 0, got {self.seq}")

    def to_json(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "type": "status",
            "v": SCHEMA_VERSION,
            "stream": self.stream_id,
            "state": self.state,
            "at": self.at,
            "seq": self.seq,
        }
        for key, value in (("reason", self.reason), ("attempt", self.attempt), ("actor", self.actor),
                           ("lost", self.lost), ("downtime_s", self.downtime_s)):
            if value is not None:
                message[key] = value
        return message


Message = Union[FrameMessage, StreamEnd, StreamStatus]


def parse_message(data: dict[str, Any]) -> Message:
    """Parse one JSON message (already ``json.loads``-ed) into a ``FrameMessage``, ``StreamEnd`` or ``StreamStatus``."""
    if not isinstance(data, dict):
        raise MessageError(f"message must be a JSON object, got {type(data).__name__}")
    kind = data.get("type")
    try:
        if kind == "end":
            return StreamEnd(
                stream_id=str(data["stream"]),
                frames=int(data["frames"]),
                decoded=int(data.get("decoded", 0)),
                dropped=int(data.get("dropped", 0)),
                error=data.get("error"),
            )
        if kind == "status":
            return StreamStatus(
                stream_id=str(data["stream"]),
                state=str(data["state"]),
                at=float(data["at"]),
                seq=int(data.get("seq", 0)),
                reason=None if data.get("reason") is None else str(data["reason"]),
                attempt=None if data.get("attempt") is None else int(data["attempt"]),
                actor=None if data.get("actor") is None else str(data["actor"]),
                lost=None if data.get("lost") is None else int(data["lost"]),
                downtime_s=None if data.get("downtime_s") is None else float(data["downtime_s"]),
            )
        if kind == "frame":
            pts = float(data["pts"])
            if not math.isfinite(pts):
                raise ValueError(f"pts must be finite, got {pts}")
            return FrameMessage(
                stream_id=str(data["stream"]),
                index=int(data["frame"]),
                seq=int(data.get("seq", data["frame"])),
                pts_s=pts,
                captured_at=float(data["captured_at"]),
                width=int(data["width"]),
                height=int(data["height"]),
                instances=tuple(Instance.from_json(i) for i in data["instances"]),
                error=data.get("error"),
                published_at=data.get("published_at"),
                raw=data,
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise MessageError(f"{kind} message for stream {data.get('stream')!r} is not valid: {exc!r}") from exc
    raise MessageError(f"message type must be 'frame', 'status' or 'end', got {kind!r}")
