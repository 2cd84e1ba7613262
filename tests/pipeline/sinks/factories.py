"""Builders for real results (real COCO RLE masks made by pycocotools) shared by the sink, drawing and client tests."""

from __future__ import annotations

import json
import socket
import time

import numpy as np
import redis
from pycocotools import mask as mask_utils

from pipeline.messages import FrameMeta, FrameResult, Instance, RleMask, StreamEnd


def free_port() -> int:
    """A TCP port with nothing listening on it (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def box_mask(height: int, width: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """A bool (H, W) mask that is True inside the integer box (x1, y1, x2, y2), x2/y2 exclusive."""
    x1, y1, x2, y2 = box
    m = np.zeros((height, width), dtype=bool)
    m[y1:y2, x1:x2] = True
    return m


def rle(mask: np.ndarray) -> RleMask:
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return RleMask.from_coco(encoded)


def instance(
    height: int,
    width: int,
    box: tuple[int, int, int, int],
    *,
    track_id: int | None = 1,
    label: int = 1,
    class_name: str = "person",
    score: float = 0.9,
    mask: np.ndarray | None = None,
) -> Instance:
    m = box_mask(height, width, box) if mask is None else mask
    return Instance(
        label=label,
        class_name=class_name,
        score=score,
        box=tuple(float(v) for v in box),  # type: ignore[arg-type]
        mask=rle(m),
        track_id=track_id,
    )


def result(
    stream_id: str,
    index: int,
    height: int = 48,
    width: int = 64,
    instances: tuple[Instance, ...] | None = None,
    *,
    error: str | None = None,
) -> FrameResult:
    """A frame result; by default two instances whose boxes move with the frame index."""
    if instances is None:
        x = index % max(1, width - 20)
        instances = (
            instance(height, width, (x, 2, x + 10, 12), track_id=1, label=1, class_name="person", score=0.91),
            instance(height, width, (4, 20, 24, 40), track_id=7, label=3, class_name="car", score=0.55),
        )
    now = time.time()
    meta = FrameMeta(stream_id=stream_id, index=index, seq=index, pts_s=index / 25.0, captured_at=now - 0.01,
                     width=width, height=height)
    return FrameResult(meta=meta, instances=instances, error=error, inferred_at=None if error else now)


def end(stream_id: str, frames: int) -> StreamEnd:
    return StreamEnd(stream_id=stream_id, frames=frames, decoded=frames + 2, dropped=1)


def image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth RGB test image (gradients compress well and survive H.264 with little error)."""
    yy, xx = np.mgrid[0:height, 0:width]
    r = (xx * 200 // max(1, width - 1) + seed) % 256
    g = (yy * 200 // max(1, height - 1) + 2 * seed) % 256
    b = np.full_like(xx, 90)
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def subscribe(url: str, channel: str) -> redis.client.PubSub:
    """A raw pub/sub subscription, confirmed before returning."""
    ps = redis.Redis.from_url(url).pubsub()
    ps.subscribe(channel)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        msg = ps.get_message(timeout=deadline - time.monotonic())
        if msg and msg["type"] == "subscribe":
            return ps
    raise AssertionError("no subscribe confirmation")


def collect(ps: redis.client.PubSub, *, timeout_s: float = 10.0, settle_s: float = 0.2) -> list[dict]:
    """Every message until the end message, plus anything that arrives within settle_s after it."""
    out: list[dict] = []
    deadline = time.monotonic() + timeout_s
    end_seen_at = None
    while time.monotonic() < deadline:
        if end_seen_at is not None and time.monotonic() > end_seen_at + settle_s:
            break
        msg = ps.get_message(timeout=0.05)
        if msg and msg["type"] == "message":
            out.append(json.loads(msg["data"]))
            if out[-1]["type"] == "end" and end_seen_at is None:
                end_seen_at = time.monotonic()
    return out
