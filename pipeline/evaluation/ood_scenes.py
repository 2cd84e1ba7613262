"""Out-of-distribution test scenes: plain shapes drawn with PIL, independently of :mod:`pipeline.scenes`.

The shipped model is trained on :mod:`pipeline.scenes`' generator; an evaluation on that
generator's held-out seeds cannot show what the model learnt about the generator rather than
about shapes. This renderer shares no code with it (only the class names, so that labels
agree): every frame is a new still scene of flat-coloured circles, squares, triangles and
stars, 24-120 px across, rotated, on a plain grey, flat-coloured or linear-gradient
background with Gaussian pixel noise; some objects have a low contrast to the background,
some are cut by the frame's edges, and some frames hold a non-class distractor (a cross or
a bar; not ground truth).

**Exact ground truth.** Each object is drawn twice with the same PIL primitive and the same
coordinates: into the frame (its colour) and into an ``L`` image of its own (255). PIL does not
antialias, so the second image holds exactly the pixels the object painted. An object (or
distractor) drawn later removes its pixels from every earlier mask: a mask is what is still
visible. Boxes are the visible masks' extents; an object with fewer than
``OodConfig.min_visible_area`` visible pixels is left out of the ground truth. Noise and the
optional H.264 round trip (:func:`h264_round_trip`) change the pixels the model sees, never the
ground truth.

**Geometry.** ``size`` is the number of pixels across: PIL fills a shape's boundary pixels, so
a polygon from ``x0`` to ``x1`` covers ``x1 - x0 + 1`` columns; vertices are placed at
``centre ± (size - 1) / 2``, and an axis-aligned square of odd ``size`` centred on a pixel covers
exactly ``size x size`` pixels. Triangles are equilateral with side ``size``; stars have five
points on a circle of diameter ``size``.

Deterministic: the same seed and config give the same frame, pixel for pixel.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields

import numpy as np
from PIL import Image, ImageDraw

from pipeline.errors import ConfigError
from pipeline.scenes.config import CLASS_NAMES

OBJECT_CLASSES: tuple[str, ...] = tuple(CLASS_NAMES[1:])
"""The object classes drawn (labels agree with the model's: ``CLASS_NAMES.index(name)``)."""

OOD_SEED_BASE = 0
"""Frame ``i`` of an evaluation is rendered from seed ``OOD_SEED_BASE + i``; the model never sees this renderer."""

STAR_INNER_RATIO = 0.45  # inner/outer radius of the stars: points clearly sharper than a pentagon's corners
LOW_CONTRAST_RGB = (20.0, 40.0)  # a low-contrast object's colour differs from the background by this (RGB distance)
NORMAL_MIN_CONTRAST_RGB = 80.0  # every other object differs by at least this: plainly visible under the noise
EDGE_VISIBLE = (0.25, 0.75)  # an object placed at an edge has its centre so that about this share lies inside
MIN_CENTRE_GAP = 0.6  # centres at least this x (sum of half sizes) apart: overlaps, but no object hidden whole
PLACEMENT_TRIES = 30  # attempts to place an object before it is left out of the frame
BACKGROUND_KINDS = ("grey", "flat", "gradient")


@dataclass(frozen=True)
class OodConfig:
    """How the out-of-distribution frames are drawn; sizes in pixels of the frame itself."""

    width: int = 320
    height: int = 240
    min_objects: int = 2  # objects drawn per frame (before tiny remnants are dropped)
    max_objects: int = 6
    min_size: float = 24.0  # pixels across (circle diameter, square side, triangle side, star diameter)
    max_size: float = 120.0
    min_noise_sigma: float = 2.0  # per-frame Gaussian noise, 8-bit levels, drawn uniformly from this range
    max_noise_sigma: float = 8.0
    low_contrast_prob: float = 0.2  # chance an object gets a colour close to the background's
    edge_prob: float = 0.2  # chance an object is placed across a frame edge (partly cut)
    distractor_prob: float = 0.25  # chance a frame gets one non-class distractor (a cross or a bar)
    min_visible_area: int = 40  # objects with fewer visible pixels are left out of the ground truth
    classes: tuple[str, ...] = OBJECT_CLASSES  # the object classes drawn, each equally likely
    backgrounds: tuple[str, ...] = BACKGROUND_KINDS  # the background kinds drawn, each equally likely

    def __post_init__(self) -> None:
        for name, allowed in (("classes", OBJECT_CLASSES), ("backgrounds", BACKGROUND_KINDS)):
            chosen = getattr(self, name)
            if not isinstance(chosen, tuple) or not chosen or not set(chosen) <= set(allowed):
                raise ConfigError(f"OodConfig.{name}: got {chosen!r}, expected a non-empty tuple of {allowed}")
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        checks = [
            ("width", values["width"] >= 32, ">= 32"), ("height", values["height"] >= 32, ">= 32"),
            ("min_objects", 0 <= values["min_objects"] <= values["max_objects"], "0 <= min_objects <= max_objects"),
            ("min_size", 3 <= values["min_size"] <= values["max_size"], "3 <= min_size <= max_size"),
            ("min_noise_sigma", 0 <= values["min_noise_sigma"] <= values["max_noise_sigma"],
             "0 <= min_noise_sigma <= max_noise_sigma"),
            ("min_visible_area", values["min_visible_area"] >= 1, ">= 1"),
        ] + [(name, 0.0 <= values[name] <= 1.0, "in [0, 1]")
             for name in ("low_contrast_prob", "edge_prob", "distractor_prob")]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(f"OodConfig.{name}: got {values[name]!r}, expected {expected}")


ISSUE_CASE = OodConfig(min_size=44.0, max_size=96.0, low_contrast_prob=0.0, edge_prob=0.0, distractor_prob=0.0,
                       classes=("circle", "square", "triangle"), backgrounds=("grey",))
"""The scenes issue 13 reports from a user's first try: flat-coloured circles, squares and triangles, 44 to 96 px
across, on a grey background with Gaussian pixel noise, 320x240 (H.264 by the evaluation's codec). Objects may still
overlap; none is placed across an edge, drawn at a low contrast on purpose, or joined by a distractor. The default
:class:`OodConfig` is the harder set the targets are judged on; this one shows what that user now gets."""


@dataclass(frozen=True)
class ShapeSpec:
    """One shape to draw: ``kind`` a class name or ``cross``/``bar`` (distractors); centre and size in pixels."""

    kind: str
    cx: float
    cy: float
    size: float
    angle_deg: float
    colour: tuple[int, int, int]
    tags: frozenset[str] = frozenset()  # "low_contrast", "edge" (placed across a frame edge)


@dataclass(frozen=True, eq=False)
class OodInstance:
    """One visible object: ``mask`` bool ``(H, W)``; ``box`` xyxy pixels, ``x2``/``y2`` exclusive (max + 1).

    ``label`` indexes ``CLASS_NAMES``; ``track_id`` is the object's 1-based draw order in its frame.
    ``tags``: ``low_contrast``, ``edge`` (cut by the frame), ``occluded`` (lost pixels to a later shape).
    """

    track_id: int
    label: int
    class_name: str
    mask: np.ndarray
    box: tuple[float, float, float, float]
    tags: frozenset[str]

    @property
    def area(self) -> int:
        """Visible pixels."""
        return int(np.count_nonzero(self.mask))


@dataclass(frozen=True, eq=False)
class OodFrame:
    """One rendered frame: ``image`` uint8 ``(H, W, 3)`` RGB; GT ``instances``; ``distractors`` bool ``(H, W)``."""

    index: int
    seed: int
    image: np.ndarray
    instances: tuple[OodInstance, ...]
    distractors: np.ndarray
    background: str
    noise_sigma: float


# ----------------------------------------------------------------------------- geometry


def _rotated(points: Sequence[tuple[float, float]], spec: ShapeSpec) -> list[tuple[float, float]]:
    """``points`` (relative to the centre) rotated by the spec's angle and moved to its centre."""
    a = math.radians(spec.angle_deg)
    c, s = math.cos(a), math.sin(a)
    return [(spec.cx + x * c - y * s, spec.cy + x * s + y * c) for x, y in points]


def polygon(spec: ShapeSpec) -> list[tuple[float, float]]:
    """The vertices (PIL pixel coordinates) of a non-circle shape: square, triangle, star, cross or bar."""
    half = (spec.size - 1) / 2
    if spec.kind == "square":
        pts = [(-half, -half), (half, -half), (half, half), (-half, half)]
    elif spec.kind == "triangle":
        r = (spec.size - 1) / math.sqrt(3)  # circumradius of an equilateral triangle of side size - 1
        pts = [(r * math.cos(math.radians(t)), r * math.sin(math.radians(t))) for t in (-90, 30, 150)]
    elif spec.kind == "star":
        pts = [((half if k % 2 == 0 else half * STAR_INNER_RATIO) * math.cos(math.radians(-90 + 36 * k)),
                (half if k % 2 == 0 else half * STAR_INNER_RATIO) * math.sin(math.radians(-90 + 36 * k)))
               for k in range(10)]
    elif spec.kind == "cross":
        t = half / 3
        pts = [(-t, -half), (t, -half), (t, -t), (half, -t), (half, t), (t, t), (t, half), (-t, half), (-t, t),
               (-half, t), (-half, -t), (-t, -t)]
    elif spec.kind == "bar":
        t = max(1.5, half / 6)  # a bar six times as long as it is wide: never square-like
        pts = [(-half, -t), (half, -t), (half, t), (-half, t)]
    else:
        raise ConfigError(f"shape kind {spec.kind!r}: expected one of {OBJECT_CLASSES + ('cross', 'bar')}")
    return _rotated(pts, spec)


def paint(draw: ImageDraw.ImageDraw, spec: ShapeSpec, fill: int | tuple[int, int, int]) -> None:
    """Draw ``spec`` filled with ``fill``; the frame and the shape's own mask get the very same call."""
    if spec.kind == "circle":
        half = (spec.size - 1) / 2
        draw.ellipse([spec.cx - half, spec.cy - half, spec.cx + half, spec.cy + half], fill=fill)
    else:
        draw.polygon(polygon(spec), fill=fill)


def shape_mask(spec: ShapeSpec, width: int, height: int) -> np.ndarray:
    """bool ``(height, width)``: the pixels ``spec`` paints in a frame of that size (clipped by its edges)."""
    img = Image.new("L", (width, height), 0)
    paint(ImageDraw.Draw(img), spec, 255)
    return np.asarray(img) > 0


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    """xyxy box of a non-empty bool mask, ``x2``/``y2`` exclusive."""
    ys, xs = np.nonzero(mask)
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


# ----------------------------------------------------------------------------- composing a frame


def compose(specs: Sequence[ShapeSpec], background: np.ndarray,
            min_visible_area: int) -> tuple[np.ndarray, tuple[OodInstance, ...], np.ndarray]:
    """Draw ``specs`` in order onto ``background`` (uint8 ``(H, W, 3)`` RGB); no noise.

    Returns the image (uint8 ``(H, W, 3)``), the GT instances (class shapes with at least
    ``min_visible_area`` visible pixels, in draw order) and the visible pixels of the distractors
    (bool ``(H, W)``). Each shape removes its pixels from the masks of the shapes drawn before it.
    """
    h, w = background.shape[:2]
    frame = Image.fromarray(np.ascontiguousarray(background, dtype=np.uint8), "RGB")
    draw = ImageDraw.Draw(frame)
    masks: list[np.ndarray] = []
    for spec in specs:
        paint(draw, spec, spec.colour)
        mask = shape_mask(spec, w, h)
        for earlier in masks:
            earlier &= ~mask
        masks.append(mask)
    painted = [shape_mask(spec, w, h) for spec in specs]  # before occlusion, for the tags
    instances: list[OodInstance] = []
    distractors = np.zeros((h, w), bool)
    for i, (spec, mask, full) in enumerate(zip(specs, masks, painted)):
        if spec.kind not in OBJECT_CLASSES:
            distractors |= mask
            continue
        if np.count_nonzero(mask) < min_visible_area:
            continue
        tags = set(spec.tags) - {"edge"}
        if full[0].any() or full[-1].any() or full[:, 0].any() or full[:, -1].any():
            tags.add("edge")
        if np.count_nonzero(mask) < np.count_nonzero(full):
            tags.add("occluded")
        instances.append(OodInstance(i + 1, CLASS_NAMES.index(spec.kind), spec.kind, mask, mask_box(mask),
                                     frozenset(tags)))
    return np.asarray(frame, dtype=np.uint8).copy(), tuple(instances), distractors


def add_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """uint8 ``(H, W, 3)``: ``image`` plus Gaussian noise of ``sigma`` levels per pixel and channel, rounded, clipped."""
    if sigma <= 0:
        return image.copy()
    noisy = image.astype(np.float32) + rng.normal(0.0, sigma, image.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- random scenes


def background_image(kind: str, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 ``(height, width, 3)``: ``grey`` (one level), ``flat`` (one colour) or ``gradient`` (linear, two colours)."""
    if kind == "grey":
        colour = np.full(3, rng.uniform(90, 170))
        return np.broadcast_to(np.rint(colour).astype(np.uint8), (height, width, 3)).copy()
    if kind == "flat":
        return np.broadcast_to(rng.integers(40, 216, 3).astype(np.uint8), (height, width, 3)).copy()
    if kind != "gradient":
        raise ConfigError(f"background kind {kind!r}: expected one of {BACKGROUND_KINDS}")
    c0, c1 = rng.uniform(30, 225, 3), rng.uniform(30, 225, 3)
    theta = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    t = (xs - width / 2) * math.cos(theta) + (ys - height / 2) * math.sin(theta)
    t = (t - t.min()) / max(1e-9, t.max() - t.min())
    return np.rint(c0 + t[..., None] * (c1 - c0)).astype(np.uint8)


def _pick_colour(rng: np.random.Generator, under: np.ndarray, used: Sequence[tuple[int, int, int]],
                 low_contrast: bool) -> tuple[int, int, int]:
    """A flat colour: close to ``under`` (the background at the centre) when ``low_contrast``, else far from it and
    from the colours already ``used`` (so that overlapping objects do not merge into one blob)."""
    under = under.astype(np.float64)
    if low_contrast:
        direction = rng.normal(size=3)
        direction /= max(1e-9, float(np.linalg.norm(direction)))
        colour = np.clip(under + direction * rng.uniform(*LOW_CONTRAST_RGB), 0, 255)
        return tuple(int(v) for v in np.rint(colour))  # type: ignore[return-value]
    candidate = rng.integers(0, 256, 3)
    for _ in range(PLACEMENT_TRIES):
        others = [under] + [np.asarray(c, np.float64) for c in used]
        if min(float(np.linalg.norm(candidate - o)) for o in others) >= NORMAL_MIN_CONTRAST_RGB:
            break
        candidate = rng.integers(0, 256, 3)
    return tuple(int(v) for v in candidate)  # type: ignore[return-value]


def _place(rng: np.random.Generator, size: float, at_edge: bool, config: OodConfig) -> tuple[float, float]:
    """A centre: across a random frame edge (``EDGE_VISIBLE`` of the size inside), else wholly inside the frame."""
    w, h, half = config.width, config.height, (size - 1) / 2
    if at_edge:
        inside = rng.uniform(*EDGE_VISIBLE) * size
        side = int(rng.integers(4))
        along = rng.uniform(0, w - 1 if side < 2 else h - 1)
        offset = inside - half  # centre's distance from the edge, inwards
        return [(along, offset), (along, h - 1 - offset), (offset, along), (w - 1 - offset, along)][side]
    return (rng.uniform(min(half, w / 2), max(w - 1 - half, w / 2)),
            rng.uniform(min(half, h / 2), max(h - 1 - half, h / 2)))


ANGLE_PERIOD = {"circle": 0.0, "square": 90.0, "triangle": 120.0, "star": 72.0, "cross": 90.0, "bar": 180.0}
"""Rotations beyond these repeat the shape (its symmetry), so angles are drawn from [0, period)."""


def random_specs(rng: np.random.Generator, config: OodConfig, background: np.ndarray) -> list[ShapeSpec]:
    """The shapes of one random frame, in draw order: class shapes, and maybe one distractor among them."""
    kinds = [str(k) for k in rng.choice(config.classes, int(rng.integers(config.min_objects, config.max_objects + 1)))]
    if rng.random() < config.distractor_prob:
        kinds.insert(int(rng.integers(len(kinds) + 1)), str(rng.choice(["cross", "bar"])))
    specs: list[ShapeSpec] = []
    for kind in kinds:
        size = rng.uniform(config.min_size, config.max_size)
        at_edge = bool(rng.random() < config.edge_prob)
        low = kind in OBJECT_CLASSES and bool(rng.random() < config.low_contrast_prob)
        angle = rng.uniform(0, ANGLE_PERIOD[kind]) if ANGLE_PERIOD[kind] else 0.0
        for _ in range(PLACEMENT_TRIES):
            cx, cy = _place(rng, size, at_edge, config)
            if all(math.hypot(cx - s.cx, cy - s.cy) >= MIN_CENTRE_GAP * (size + s.size) / 2 for s in specs):
                break
        else:
            continue  # no room left for it
        under = background[int(np.clip(cy, 0, config.height - 1)), int(np.clip(cx, 0, config.width - 1))]
        colour = _pick_colour(rng, under, [s.colour for s in specs], low)
        tags = frozenset({"low_contrast"} if low else set()) | frozenset({"edge"} if at_edge else set())
        specs.append(ShapeSpec(kind, float(cx), float(cy), float(size), float(angle), colour, tags))
    return specs


def render_frame(seed: int, config: OodConfig = OodConfig(), index: int = 0) -> OodFrame:
    """One random frame from ``seed``: background, shapes, noise, exact GT (deterministic)."""
    rng = np.random.default_rng(seed)
    kind = str(rng.choice(config.backgrounds))
    background = background_image(kind, config.width, config.height, rng)
    specs = random_specs(rng, config, background)
    image, instances, distractors = compose(specs, background, config.min_visible_area)
    sigma = float(rng.uniform(config.min_noise_sigma, config.max_noise_sigma))
    return OodFrame(index, seed, add_noise(image, sigma, rng), instances, distractors, kind, sigma)


def ood_frames(n_frames: int, config: OodConfig = OodConfig(), seed_base: int = OOD_SEED_BASE) -> Iterator[OodFrame]:
    """``n_frames`` frames; frame ``i`` from seed ``seed_base + i``."""
    if n_frames < 0:
        raise ConfigError(f"n_frames must be >= 0, got {n_frames}")
    for i in range(n_frames):
        yield render_frame(seed_base + i, config, i)


# ----------------------------------------------------------------------------- H.264, as a user's video would be

H264_CRF = 23  # libx264's own default quality: what a user encoding "an H.264 file" most likely gets
H264_FPS = 25


def h264_round_trip(images: Sequence[np.ndarray], *, crf: int = H264_CRF) -> list[np.ndarray]:
    """``images`` (uint8 ``(H, W, 3)`` RGB, one size, H and W even) encoded as one H.264 clip (yuv420p) and decoded
    back with PyAV: the pixels a model sees when the scenes come as a video file."""
    import io

    import av

    if not images:
        return []
    h, w = images[0].shape[:2]
    if h % 2 or w % 2 or any(img.shape != images[0].shape for img in images):
        raise ConfigError(f"H.264 needs frames of one size with even sides, got {sorted({i.shape for i in images})}")
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=H264_FPS)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(crf)}
        for img in images:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")))
        out.mux(stream.encode(None))
    buf.seek(0)
    with av.open(buf, "r") as src:
        decoded = [np.ascontiguousarray(f.to_ndarray(format="rgb24"), dtype=np.uint8) for f in src.decode(video=0)]
    if len(decoded) != len(images):
        raise ConfigError(f"H.264 round trip: encoded {len(images)} frames, decoded {len(decoded)}")
    return decoded
