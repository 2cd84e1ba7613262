"""Pictures of an evaluation's worst frames: what was found, missed, and published wrongly.

One PNG per frame: the frame as the model saw it, enlarged ``SCALE`` times, with every object's
outline (green: found, yellow: missed, labelled with its class) and every false positive's
outline and box (red, labelled with its class, score and kind), under a header line that
counts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SCALE = 2  # 320x240 frames are small; labels need room
HEADER_PX = 16  # one line of PIL's default font
FOUND, MISSED, FALSE = (40, 220, 40), (255, 220, 0), (255, 40, 40)


def outline(mask: np.ndarray, width: int = 2) -> np.ndarray:
    """bool ``(H, W)``: the pixels of ``mask`` (bool ``(H, W)``) within ``width`` pixels of its border."""
    inner = mask.copy()
    for _ in range(width):
        shrunk = inner.copy()
        shrunk[1:] &= inner[:-1]
        shrunk[:-1] &= inner[1:]
        shrunk[:, 1:] &= inner[:, :-1]
        shrunk[:, :-1] &= inner[:, 1:]
        inner = shrunk
    return mask & ~inner


def _up(mask: np.ndarray) -> np.ndarray:
    """``mask`` enlarged ``SCALE`` times (nearest neighbour), as the picture is."""
    return np.repeat(np.repeat(mask, SCALE, 0), SCALE, 1)


def _label_at(mask: np.ndarray) -> tuple[int, int]:
    ys, xs = np.nonzero(mask)
    return (max(2, int(xs.min())), max(0, int(ys.min()) - 11)) if len(xs) else (2, 0)


def draw_frame_errors(image: np.ndarray, objects: Sequence[tuple[np.ndarray, str, bool]],
                      false_positives: Sequence[tuple[np.ndarray, str, float, str]], header: str, path: Path) -> Path:
    """Write the picture of one frame to ``path``.

    ``image``: uint8 ``(H, W, 3)`` RGB. ``objects``: ``(mask bool (H, W), class, found)``. ``false_positives``:
    ``(mask bool (H, W), class, score, kind)``.
    """
    big = np.repeat(np.repeat(np.asarray(image, np.uint8), SCALE, 0), SCALE, 1).copy()
    for mask, _, found in objects:
        big[outline(_up(mask))] = FOUND if found else MISSED
    for mask, *_ in false_positives:
        big[outline(_up(mask))] = FALSE
    canvas = Image.new("RGB", (big.shape[1], big.shape[0] + HEADER_PX), (255, 255, 255))
    canvas.paste(Image.fromarray(big), (0, HEADER_PX))
    draw = ImageDraw.Draw(canvas)
    draw.text((2, 2), header, fill=(0, 0, 0))
    for mask, cls, found in objects:
        if not found:
            x, y = _label_at(_up(mask))
            draw.text((x, y + HEADER_PX), f"missed {cls}", fill=MISSED, stroke_width=1, stroke_fill=(0, 0, 0))
    for mask, cls, score, kind in false_positives:
        ys, xs = np.nonzero(_up(mask))
        if len(xs):
            draw.rectangle([int(xs.min()), int(ys.min()) + HEADER_PX, int(xs.max()), int(ys.max()) + HEADER_PX],
                           outline=FALSE)
        x, y = _label_at(_up(mask))
        draw.text((x, y + HEADER_PX), f"{cls} {score:.2f} {kind}", fill=FALSE, stroke_width=1, stroke_fill=(0, 0, 0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path
