"""Annotate a frame with its instances: translucent masks, box outlines and text tags.

Colours come from a fixed palette, so an object keeps its colour across frames and
across runs: ``track_id`` picks the colour when the tracker gave one, otherwise the
class label does (all unmatched objects of one class share a colour).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pycocotools import mask as mask_utils

from pipeline.messages import Instance, MessageError, RleMask

# 20 well separated colours (matplotlib's tab10 followed by a set of bright ones), RGB.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
    (255, 255, 0),
    (0, 255, 127),
    (255, 0, 255),
    (0, 191, 255),
    (255, 69, 0),
    (50, 205, 50),
    (138, 43, 226),
    (255, 215, 0),
    (0, 128, 128),
    (220, 20, 60),
)


def instance_color(instance: Instance) -> tuple[int, int, int]:
    """The stable colour of an instance: by ``track_id``, or by class label when it has none."""
    if instance.track_id is not None:
        return PALETTE[instance.track_id % len(PALETTE)]
    # Offset by a prime so that label colours do not simply mirror the first track ids.
    return PALETTE[(instance.label * 7 + 3) % len(PALETTE)]


def decode_mask(mask: RleMask) -> np.ndarray:
    """Decode one COCO RLE mask into a bool ``(H, W)`` array."""
    try:
        decoded = mask_utils.decode({"size": [mask.height, mask.width], "counts": mask.counts.encode("ascii")})
    except Exception as exc:  # pycocotools raises plain Exceptions/ValueErrors on corrupt counts
        raise MessageError(f"mask of size {mask.height}x{mask.width} could not be decoded: {exc}") from exc
    return decoded.astype(bool, copy=False)


def tag_text(instance: Instance) -> str:
    """The text tag of an instance: ``"class score #id"`` (``#id`` only when tracked)."""
    text = f"{instance.class_name} {instance.score:.2f}"
    if instance.track_id is not None:
        text += f" #{instance.track_id}"
    return text


def _mask_bbox(mask: RleMask) -> tuple[int, int, int, int] | None:
    """The mask's bounding box ``(x0, y0, x1, y1)``, end exclusive, from the RLE (no decoding); ``None`` if empty."""
    try:
        x, y, w, h = mask_utils.toBbox({"size": [mask.height, mask.width], "counts": mask.counts.encode("ascii")})
    except Exception as exc:
        raise MessageError(f"mask of size {mask.height}x{mask.width} could not be decoded: {exc}") from exc
    if w <= 0 or h <= 0:
        return None
    x0, y0 = max(0, int(x)), max(0, int(y))
    return x0, y0, min(mask.width, int(np.ceil(x + w))), min(mask.height, int(np.ceil(y + h)))


@lru_cache(maxsize=1)
def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default()


def draw_instances(
    image: np.ndarray,
    instances: Sequence[Instance],
    *,
    alpha: float = 0.45,
    draw_boxes: bool = True,
    draw_labels: bool = True,
) -> np.ndarray:
    """Return a new ``uint8 (H, W, 3)`` RGB image with ``instances`` drawn over ``image``.

    Each mask is blended over the frame as ``(1 - alpha) * pixel + alpha * colour``
    (to within one level; masks drawn in order, so later instances lie on top); then
    boxes are outlined and tagged ``"class score #id"`` in the same colour. Only the
    pixels inside each mask's bounding box are touched by its blend. ``image`` is
    never modified.

    Raises ``ValueError`` for an image that is not ``uint8 (H, W, 3)`` or an ``alpha``
    outside ``[0, 1]``, and ``MessageError`` for a mask whose size is not the image's.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        desc = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"image must be a uint8 (H, W, 3) array, got {desc}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    height, width = image.shape[:2]
    if not instances:
        return image.copy()

    colors = [instance_color(inst) for inst in instances]

    for inst in instances:
        if (inst.mask.height, inst.mask.width) != (height, width):
            raise MessageError(
                f"mask of {inst.class_name!r} is {inst.mask.height}x{inst.mask.width}, the image is {height}x{width}"
            )

    result = image.copy()
    a8 = round(alpha * 256)
    if a8 > 0:
        for inst, color in zip(instances, colors):
            bbox = _mask_bbox(inst.mask)
            if bbox is None:
                continue
            x0, y0, x1, y1 = bbox
            m = np.ascontiguousarray(decode_mask(inst.mask)[y0:y1, x0:x1])
            region = result[y0:y1, x0:x1]  # a view: blending writes through
            # Vectorised blend within the mask's bounding box, in 8.8 fixed point:
            # (p * (256 - a) + c * a + 128) >> 8 never overflows uint16 and is within 1 of the exact blend.
            blended = (region.astype(np.uint16) * (256 - a8) + np.asarray(color, np.uint16) * a8 + 128) >> 8
            np.copyto(region, blended.astype(np.uint8), where=m[..., None])

    if not (draw_boxes or draw_labels):
        return result

    canvas = Image.fromarray(result)
    draw = ImageDraw.Draw(canvas)
    font = _font()
    line = max(1, round(min(height, width) / 300))
    for inst, color in zip(instances, colors):
        x1, y1, x2, y2 = (float(v) for v in inst.box)
        x1, x2 = sorted((min(max(x1, 0.0), width - 1.0), min(max(x2, 0.0), width - 1.0)))
        y1, y2 = sorted((min(max(y1, 0.0), height - 1.0), min(max(y2, 0.0), height - 1.0)))
        if draw_boxes:
            draw.rectangle((x1, y1, x2, y2), outline=color, width=line)
        if draw_labels:
            text = tag_text(inst)
            left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
            tw, th = right - left, bottom - top
            # Above the box when there is room, else just inside its top edge.
            tx = min(x1, max(0.0, width - tw - 4.0))
            ty = y1 - th - 4.0 if y1 - th - 4.0 >= 0 else y1
            draw.rectangle((tx, ty, tx + tw + 3, ty + th + 3), fill=color)
            # Black or white text, whichever reads better on the tag colour.
            luma = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
            draw.text((tx + 2 - left, ty + 2 - top), text, fill=(0, 0, 0) if luma > 140 else (255, 255, 255), font=font)
    return np.array(canvas, dtype=np.uint8)
