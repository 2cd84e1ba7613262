"""The tracker a pipeline config asks for."""

from __future__ import annotations

from pipeline.config import TrackingConfig
from pipeline.tracking.byte_tracker import ByteTracker


def tracker_from_config(config: TrackingConfig) -> ByteTracker:
    """A :class:`ByteTracker` with every threshold of the ``tracking:`` section (``enabled`` aside).

    The section's field names are ByteTracker's keyword arguments, so a field added to one and not
    the other fails here, loudly, instead of being silently ignored.
    """
    return ByteTracker(**config.model_dump(exclude={"enabled"}))
