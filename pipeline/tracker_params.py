"""The allowed values of ByteTracker's parameters, defined once.

:class:`~pipeline.tracking.ByteTracker` checks its arguments with :func:`check_param` and
:func:`score_order_problems`, and the ``tracking:`` section of the config declares its pydantic
bounds from :data:`TRACKING_BOUNDS` (``Field(**TRACKING_BOUNDS[name].field_kwargs())``) and runs the
same ordering check, so a value the config accepts is a value the tracker accepts.

Standard library only, and outside the ``pipeline.tracking`` package on purpose: importing anything
in that package runs its ``__init__``, which imports scipy (about 40 MB of RSS), and the config is
imported by every per-stream actor, most of which never track.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from pipeline.errors import ConfigError


@dataclass(frozen=True)
class Bound:
    """The range of one numeric parameter: ``[low, high]`` (``(low, high]`` when ``low_open``); ``high`` None: unbounded."""

    low: float
    high: float | None = None
    low_open: bool = False
    integer: bool = False

    def describe(self) -> str:
        """The range in words, as the error messages write it: ``[0, 1]``, ``(0, 1]``, ``an integer >= 0``."""
        if self.integer:
            return f"an integer {'>' if self.low_open else '>='} {self.low:g}"
        return f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"

    def contains(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        return above and (self.high is None or value <= self.high)

    def field_kwargs(self) -> dict[str, float]:
        """The same range as pydantic ``Field`` keyword arguments (``gt``/``ge``, ``le``)."""
        kwargs: dict[str, float] = {"gt" if self.low_open else "ge": self.low}
        if self.high is not None:
            kwargs["le"] = self.high
        return kwargs


_UNIT = Bound(0.0, 1.0)
_POSITIVE_UNIT = Bound(0.0, 1.0, low_open=True)  # an IoU gate of 0 would match boxes that do not overlap at all

TRACKING_BOUNDS: Mapping[str, Bound] = MappingProxyType(
    {
        "high_score_threshold": _UNIT,
        "low_score_threshold": _UNIT,
        "new_track_score_threshold": _UNIT,
        "match_iou_threshold": _POSITIVE_UNIT,
        "low_match_iou_threshold": _POSITIVE_UNIT,
        "low_score_weight": _POSITIVE_UNIT,  # 0 would make low detections worthless: they could never match
        "lost_track_buffer_frames": Bound(0, integer=True),
        "min_hits_to_confirm": Bound(1, integer=True),
        "duplicate_mask_iou_threshold": _POSITIVE_UNIT,  # or None: off
    }
)
"""Every numeric parameter of ByteTracker and its range (its booleans are just booleans)."""


def check_param(name: str, value: object, *, owner: str = "ByteTracker") -> float | int:
    """``value`` as a float (or int) if it is a number in the range of ``name``, else ``ConfigError``.

    The message names ``owner``, the parameter, its range and the value (``bool`` is not a number here).
    """
    bound = TRACKING_BOUNDS[name]
    if bound.integer:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not bound.contains(int(value)):
            raise ConfigError(f"{owner}: {name} must be {bound.describe()}, got {value!r}")
        return int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ConfigError(f"{owner}: {name} must be a number in {bound.describe()}, got {value!r}")
    if not bound.contains(float(value)):
        raise ConfigError(f"{owner}: {name} must be in {bound.describe()}, got {value!r}")
    return float(value)


def score_order_problems(high: float, low: float, new_track: float) -> list[str]:
    """What is wrong with the order of the three score thresholds (empty when low <= high <= new_track)."""
    problems = []
    if low > high:
        problems.append(f"low_score_threshold ({low!r}) must be <= high_score_threshold ({high!r})")
    if new_track < high:
        problems.append(
            f"new_track_score_threshold ({new_track!r}) must be >= high_score_threshold ({high!r}): "
            "only high-score detections start tracks"
        )
    return problems
