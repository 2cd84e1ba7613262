"""Configuration of a synthetic scene, and its ``synthetic:`` URL form.

Sizes, speeds and accelerations are given at the 320x240 *reference* resolution and
scaled by ``SceneConfig.scale`` (``min(width, height) / 240``), so that the same
config at 640x480 gives a scene that looks the same, only sharper.

``variety`` picks how much the scenes vary beyond the objects themselves:

- ``"classic"`` (the default while the shipped model is the one trained on it): the scenes the
  shipped model was trained on, bit-identical to the generator before ``variety`` existed:
  textured muted backgrounds, objects only, sizes uniform in 16..90 px. ``maskstream eval``'s
  held-out frames, the ``synthetic:`` streams and the benchmarks' videos use it unless told otherwise.
- ``"rich"`` (for new training runs: ``SceneConfig(..., variety="rich")``, ``synthetic:variety=rich``):
  backgrounds of many kinds (flat, gradients, noise of several distributions and scales, textures,
  clutter), static distractors that are not one of the classes (ellipses, bars, rings, crosses,
  blobs, crescents, pentagons and hexagons; behind or in front of the objects, never in the ground
  truth), lighting (gain fields, brightness, contrast, slow flicker), low-contrast objects,
  per-scene sensor noise and blur, JPEG artefacts, objects placed across the frame's edges, and
  sizes drawn log-uniformly from 8 to 150 px.

``backdrops`` (rich variety only) weights the kinds of background a rich scene draws from
(:data:`BACKDROP_MIXES`): ``"even"``, every kind equally often (the mix of the rich scenes before
this field existed, bit-identical), or ``"plain"``, flat, gradient and noise backgrounds more
often. Large plain regions (walls, sky, road, a grey test card) are common in real footage, and a
model that saw few of them takes a flat, noisy region cut by the frame's edge for a large square.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any

from pipeline.errors import ConfigError

CLASS_NAMES: tuple[str, ...] = ("background", "circle", "square", "triangle", "star")
"""Class names; the index is the label. 0 is background and never labels an object."""

REFERENCE_SHORT_SIDE = 240
"""Sizes/speeds in ``SceneConfig`` are in pixels of a frame whose shorter side is this long."""

URL_PREFIX = "synthetic:"

BACKDROP_KINDS: tuple[str, ...] = ("classic", "flat", "gradient", "noise", "texture", "clutter")
"""Kinds of rich-variety background (:mod:`pipeline.scenes.backdrops` builds them)."""

BACKDROP_MIXES: MappingProxyType[str, tuple[int, ...]] = MappingProxyType({
    # every kind once: the rich variety's draw before mixes existed (same random draw, same frames)
    "even": (1, 1, 1, 1, 1, 1),
    # flat 3 in 10, gradient and noise 2 in 10 each: plain regions, cut by the frame's edges, are negatives
    # often enough to be learnt (with "even" flat was 1 rich clip in 6); texture and clutter stay in the mix
    "plain": (1, 3, 2, 2, 1, 1),
})
"""Values of ``SceneConfig.backdrops``: integer weights of :data:`BACKDROP_KINDS`, in that order."""

# A problem found while validating: (field, value, what was expected).
_Problem = tuple[str, Any, str]


@dataclass(frozen=True)
class SceneConfig:
    """Everything that defines a synthetic scene; the same config gives bit-identical frames and GT."""

    seed: int = 0  # seeds every random choice (background, objects, motion, noise); >= 0
    width: int = 320  # frame width in pixels, 32..8192
    height: int = 240  # frame height in pixels, 32..8192
    fps: float = 25.0  # frames per second; speeds below are per second, so motion per frame scales with 1/fps
    num_frames: int | None = 300  # frames in the clip; None: endless
    min_objects: int = 2  # fewest objects present (entering, visible or leaving); refilled at once by spawning
    max_objects: int = 6  # most objects present; no spawning while this many exist
    min_size: float | None = None  # smallest object size (circle diameter, square side...), px at 320x240; None: the variety's (classic 16, rich 8)
    max_size: float | None = None  # largest object size, px at 320x240; None: the variety's (classic 90, rich 150)
    min_speed: float = 20.0  # slowest object speed, px/s at 320x240 (> 0 so that every object eventually leaves)
    max_speed: float = 90.0  # fastest object speed, px/s at 320x240
    max_accel: float = 40.0  # bound on each object's acceleration (a slowly varying random vector), px/s^2 at 320x240
    rotate: bool = True  # squares, triangles and stars get a random angle and spin; False: axis-aligned, no spin
    max_spin: float = 60.0  # fastest spin, degrees/s (only with rotate=True)
    spawn_rate: float = 0.6  # expected new objects per second while fewer than max_objects exist
    noise_sigma: float = 3.0  # standard deviation of per-frame Gaussian sensor noise, in 8-bit grey levels; 0: none
    blur: bool = True  # mild [1, 2, 1] x [1, 2, 1] / 16 blur of every frame before the sensor noise
    min_visible_area: int = 20  # an object with fewer visible pixels than this is left out of that frame's GT
    variety: str = "classic"  # "classic": the shipped model's scenes; "rich": many backgrounds, distractors, lighting, JPEG, edge placement (module docstring)
    backdrops: str = "even"  # rich variety: which BACKDROP_MIXES weights its background kinds ("even" or "plain")

    def __post_init__(self) -> None:
        values = _with_size_defaults({f.name: getattr(self, f.name) for f in fields(self)})
        object.__setattr__(self, "min_size", values["min_size"])
        object.__setattr__(self, "max_size", values["max_size"])
        problems = _problems(values)
        if problems:
            name, value, expected = problems[0]
            raise ConfigError(f"SceneConfig.{name}: got {value!r}, expected {expected}")

    @property
    def rich(self) -> bool:
        """Whether the scene uses the rich variety (see the module docstring)."""
        return self.variety == "rich"

    @property
    def size_range(self) -> tuple[float, float]:
        """``(min_size, max_size)`` in px at 320x240, the variety's defaults filled in."""
        return float(self.min_size or 0.0), float(self.max_size or 0.0)

    @property
    def scale(self) -> float:
        """Factor from reference (320x240) pixels to this frame's pixels: ``min(width, height) / 240``."""
        return min(self.width, self.height) / REFERENCE_SHORT_SIDE

    @classmethod
    def from_url(cls, url: str) -> "SceneConfig":
        """Parse ``synthetic:key=value&key=value`` (pairs separated by ``&`` or ``,``).

        Keys: ``seed``, ``size`` (``WxH``), ``width``, ``height``, ``fps``, ``frames`` (``0`` or
        ``inf``: endless), ``objects`` (``N`` or ``MIN-MAX``), ``sizes`` (``MIN-MAX`` px), ``speed``
        (``MIN-MAX`` px/s), ``accel``, ``rotate`` (bool), ``spin``, ``spawn``, ``noise``, ``blur``
        (bool), ``min_area``, ``variety`` (``rich`` or ``classic``), ``backdrops`` (``even`` or ``plain``). ``synthetic:`` alone
        gives the defaults. An unknown or repeated key,
        or a bad value, raises ``ConfigError`` naming the url, the key, the value and what was expected.
        """
        if not isinstance(url, str) or not url.startswith(URL_PREFIX):
            raise ConfigError(f"synthetic source url {url!r}: expected it to start with {URL_PREFIX!r}")
        body = url[len(URL_PREFIX) :].replace(",", "&")
        kwargs: dict[str, Any] = {}
        key_of_field: dict[str, str] = {}
        seen: set[str] = set()
        for pair in body.split("&"):
            pair = pair.strip()
            if not pair:
                continue
            key, sep, value = pair.partition("=")
            key, value = key.strip().lower(), value.strip()
            if not sep:
                raise ConfigError(f"synthetic source url {url!r}: {pair!r} is not key=value")
            spec = _URL_KEYS.get(key)
            if spec is None:
                raise ConfigError(
                    f"synthetic source url {url!r}: unknown key {key!r} (value {value!r}); "
                    f"expected one of {', '.join(sorted(_URL_KEYS))}"
                )
            if key in seen:
                raise ConfigError(f"synthetic source url {url!r}: key {key!r} given twice (again as {value!r})")
            seen.add(key)
            parse, expected = spec
            try:
                parsed = parse(value)
            except (ValueError, OverflowError):
                raise ConfigError(
                    f"synthetic source url {url!r}: key {key!r} has value {value!r}, expected {expected}"
                ) from None
            for name, v in parsed.items():
                kwargs[name] = v
                key_of_field[name] = key
        values = _with_size_defaults({f.name: kwargs.get(f.name, f.default) for f in fields(cls)})
        problems = _problems(values)
        if problems:
            name, value, expected = problems[0]
            key = key_of_field.get(name)
            raise ConfigError(
                f"synthetic source url {url!r}: key {key!r} gives {name}={value!r}, expected {expected}"
                if key is not None
                else f"synthetic source url {url!r}: {name}={value!r} (default) conflicts, expected {expected}"
            )
        return cls(**kwargs)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


VARIETIES: tuple[str, ...] = ("classic", "rich")
"""Values of ``SceneConfig.variety``; the first is the default."""

_SIZE_DEFAULTS = {"classic": (16.0, 90.0), "rich": (8.0, 150.0)}  # (min_size, max_size) px at 320x240


def _with_size_defaults(v: dict[str, Any]) -> dict[str, Any]:
    """``v`` with a ``None`` ``min_size``/``max_size`` replaced by the variety's default (an unknown
    variety is left for :func:`_problems` to report)."""
    low, high = _SIZE_DEFAULTS.get(v["variety"], (None, None)) if isinstance(v["variety"], str) else (None, None)
    out = dict(v)
    if out["min_size"] is None and low is not None:
        out["min_size"] = low
    if out["max_size"] is None and high is not None:
        out["max_size"] = high
    return out


def _problems(v: dict[str, Any]) -> list[_Problem]:
    """Every problem with a config's field values, cross-field ones last; empty when valid."""
    out: list[_Problem] = []

    def need(name: str, ok: bool, expected: str) -> None:
        if not ok:
            out.append((name, v[name], expected))

    need("variety", isinstance(v["variety"], str) and v["variety"] in VARIETIES, f"one of {', '.join(VARIETIES)}")
    need("backdrops", isinstance(v["backdrops"], str) and v["backdrops"] in BACKDROP_MIXES,
         f"one of {', '.join(BACKDROP_MIXES)}")
    need("seed", _is_int(v["seed"]) and v["seed"] >= 0, "an integer >= 0")
    for name in ("width", "height"):
        need(name, _is_int(v[name]) and 32 <= v[name] <= 8192, "an integer in 32..8192")
    need("fps", _is_real(v["fps"]) and 0 < v["fps"] <= 1000, "a number in (0, 1000]")
    n = v["num_frames"]
    need("num_frames", n is None or (_is_int(n) and n >= 1), "None (endless) or an integer >= 1")
    need("min_objects", _is_int(v["min_objects"]) and 0 <= v["min_objects"] <= 64, "an integer in 0..64")
    need("max_objects", _is_int(v["max_objects"]) and 1 <= v["max_objects"] <= 64, "an integer in 1..64")
    need("min_size", _is_real(v["min_size"]) and 4 <= v["min_size"] <= 400, "a number in [4, 400] (px at 320x240)")
    need("max_size", _is_real(v["max_size"]) and 4 <= v["max_size"] <= 400, "a number in [4, 400] (px at 320x240)")
    need("min_speed", _is_real(v["min_speed"]) and 0 < v["min_speed"] <= 10000, "a number in (0, 10000] (px/s)")
    need("max_speed", _is_real(v["max_speed"]) and 0 < v["max_speed"] <= 10000, "a number in (0, 10000] (px/s)")
    need("max_accel", _is_real(v["max_accel"]) and 0 <= v["max_accel"] <= 100000, "a number in [0, 100000] (px/s^2)")
    need("rotate", isinstance(v["rotate"], bool), "a bool")
    need("max_spin", _is_real(v["max_spin"]) and 0 <= v["max_spin"] <= 3600, "a number in [0, 3600] (degrees/s)")
    need("spawn_rate", _is_real(v["spawn_rate"]) and 0 <= v["spawn_rate"] <= 1000, "a number in [0, 1000] (per s)")
    need("noise_sigma", _is_real(v["noise_sigma"]) and 0 <= v["noise_sigma"] <= 40, "a number in [0, 40]")
    need("blur", isinstance(v["blur"], bool), "a bool")
    need("min_visible_area", _is_int(v["min_visible_area"]) and v["min_visible_area"] >= 1, "an integer >= 1")
    if out:
        return out
    need("max_objects", v["max_objects"] >= v["min_objects"], f"an integer >= min_objects ({v['min_objects']})")
    need("max_size", v["max_size"] >= v["min_size"], f"a number >= min_size ({v['min_size']})")
    need("max_speed", v["max_speed"] >= v["min_speed"], f"a number >= min_speed ({v['min_speed']})")
    return out


# ----- URL value parsers: each returns {field: value} and raises ValueError on a malformed value.

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _parse_bool(text: str) -> bool:
    low = text.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(text)


def _parse_int(text: str) -> int:
    return int(text, 10)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _parse_pair(text: str, parse: Callable[[str], Any], sep: str) -> tuple[Any, Any]:
    lo, mid, hi = text.partition(sep)
    if not mid:
        raise ValueError(text)
    return parse(lo.strip()), parse(hi.strip())


def parse_min_max(text: str) -> tuple[float, float]:
    """``MIN-MAX`` numbers, as the URL's ``sizes`` and ``speed`` keys read them; ``ValueError`` if malformed."""
    return _parse_pair(text, _parse_float, "-")


def _parse_frames(text: str) -> dict[str, Any]:
    if text.lower() in ("inf", "infinite", "endless"):
        return {"num_frames": None}
    n = _parse_int(text)
    return {"num_frames": None if n == 0 else n}


def _parse_size(text: str) -> dict[str, Any]:
    w, h = _parse_pair(text.lower(), _parse_int, "x")
    return {"width": w, "height": h}


def parse_object_counts(text: str) -> tuple[int, int]:
    """``N`` or ``MIN-MAX`` whole numbers of objects, as the URL's ``objects`` key reads them; ``ValueError`` if malformed."""
    if "-" in text:
        return _parse_pair(text, _parse_int, "-")
    n = _parse_int(text)
    return n, n


def _parse_objects(text: str) -> dict[str, Any]:
    lo, hi = parse_object_counts(text)
    return {"min_objects": lo, "max_objects": hi}


def _field(name: str, parse: Callable[[str], Any]) -> Callable[[str], dict[str, Any]]:
    return lambda text: {name: parse(text)}


def _range(lo_name: str, hi_name: str) -> Callable[[str], dict[str, Any]]:
    return lambda text: dict(zip((lo_name, hi_name), parse_min_max(text)))


_URL_KEYS: MappingProxyType[str, tuple[Callable[[str], dict[str, Any]], str]] = MappingProxyType({
    "seed": (_field("seed", _parse_int), "an integer >= 0"),
    "size": (_parse_size, "WIDTHxHEIGHT, e.g. 320x240"),
    "width": (_field("width", _parse_int), "an integer"),
    "height": (_field("height", _parse_int), "an integer"),
    "fps": (_field("fps", _parse_float), "a number > 0"),
    "frames": (_parse_frames, "an integer >= 0, or inf (0 and inf: endless)"),
    "objects": (_parse_objects, "N or MIN-MAX, e.g. 2-6"),
    "sizes": (_range("min_size", "max_size"), "MIN-MAX in px at 320x240, e.g. 16-90"),
    "speed": (_range("min_speed", "max_speed"), "MIN-MAX in px/s at 320x240, e.g. 20-90"),
    "accel": (_field("max_accel", _parse_float), "a number >= 0 (px/s^2)"),
    "rotate": (_field("rotate", _parse_bool), "a bool (1/0, true/false, yes/no, on/off)"),
    "spin": (_field("max_spin", _parse_float), "a number >= 0 (degrees/s)"),
    "spawn": (_field("spawn_rate", _parse_float), "a number >= 0 (objects/s)"),
    "noise": (_field("noise_sigma", _parse_float), "a number in [0, 40]"),
    "blur": (_field("blur", _parse_bool), "a bool (1/0, true/false, yes/no, on/off)"),
    "min_area": (_field("min_visible_area", _parse_int), "an integer >= 1 (px)"),
    "variety": (_field("variety", str.lower), "rich or classic"),
    "backdrops": (_field("backdrops", str.lower), "even or plain (rich variety's background mix)"),
})
