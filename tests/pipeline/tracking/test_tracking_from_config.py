from __future__ import annotations

import pytest

from pipeline.config import TrackingConfig
from pipeline.errors import ConfigError
from pipeline.tracking.from_config import tracker_from_config


def test_every_tracking_setting_reaches_the_tracker() -> None:
    config = TrackingConfig(high_score_threshold=0.55, low_score_threshold=0.4, new_track_score_threshold=0.85,
                            match_iou_threshold=0.25, low_match_iou_threshold=0.35, lost_track_buffer_frames=12,
                            min_hits_to_confirm=3, use_mask_iou=True, class_aware=True,
                            duplicate_mask_iou_threshold=0.45)
    tracker = tracker_from_config(config)
    for name, value in config.model_dump(exclude={"enabled"}).items():
        assert getattr(tracker, name) == value, name


def test_a_new_track_threshold_below_the_high_one_is_a_config_error(tmp_path) -> None:
    from pipeline.config import load_config

    path = tmp_path / "p.yaml"
    path.write_text("streams: [{id: a, url: 'synthetic:'}]\n"
                    "tracking: {high_score_threshold: 0.8, new_track_score_threshold: 0.7}\n")
    with pytest.raises(ConfigError, match=r"tracking.*new_track_score_threshold \(0.7\) must be >= high_score_threshold"):
        load_config(path)
