"""SceneConfig validation and the ``synthetic:`` URL form."""

from __future__ import annotations

import pytest

from pipeline.errors import ConfigError
from pipeline.scenes import SceneConfig


def test_bare_url_gives_defaults() -> None:
    assert SceneConfig.from_url("synthetic:") == SceneConfig()


def test_url_example_from_the_docs() -> None:
    cfg = SceneConfig.from_url("synthetic:seed=3&size=320x240&fps=25&frames=300&objects=2-6")
    assert cfg == SceneConfig(seed=3, width=320, height=240, fps=25.0, num_frames=300, min_objects=2, max_objects=6)


def test_url_with_commas_and_every_key() -> None:
    cfg = SceneConfig.from_url(
        "synthetic:seed=7,size=640x480,fps=12.5,frames=50,objects=3,sizes=20-40,speed=10-30,"
        "accel=5,rotate=off,spin=0,spawn=2,noise=0,blur=false,min_area=50"
    )
    assert (cfg.seed, cfg.width, cfg.height, cfg.fps, cfg.num_frames) == (7, 640, 480, 12.5, 50)
    assert (cfg.min_objects, cfg.max_objects) == (3, 3)
    assert (cfg.min_size, cfg.max_size, cfg.min_speed, cfg.max_speed) == (20.0, 40.0, 10.0, 30.0)
    assert (cfg.max_accel, cfg.rotate, cfg.max_spin, cfg.spawn_rate) == (5.0, False, 0.0, 2.0)
    assert (cfg.noise_sigma, cfg.blur, cfg.min_visible_area) == (0.0, False, 50)
    assert cfg.scale == 2.0


@pytest.mark.parametrize("frames", ["0", "inf", "INF"])
def test_url_endless(frames: str) -> None:
    assert SceneConfig.from_url(f"synthetic:frames={frames}").num_frames is None


@pytest.mark.parametrize(
    ("url", "fragments"),
    [
        ("synthetic:colour=red", ["colour", "red", "expected one of"]),
        ("synthetic:seed=abc", ["seed", "abc", "integer"]),
        ("synthetic:size=320", ["size", "320", "WIDTHxHEIGHT"]),
        ("synthetic:size=320x10", ["size", "height=10", "32..8192"]),
        ("synthetic:objects=6-2", ["objects", "max_objects=2", ">= min_objects"]),
        ("synthetic:fps=-5", ["fps", "-5", "(0, 1000]"]),
        ("synthetic:frames=-1", ["frames", "-1", ">= 1"]),
        ("synthetic:blur=maybe", ["blur", "maybe", "bool"]),
        ("synthetic:seed", ["seed", "key=value"]),
        ("synthetic:seed=1&seed=2", ["seed", "twice"]),
        ("synthetic:sizes=90-16", ["sizes", "max_size", ">= min_size"]),
        ("synthetic:fps=nan", ["fps", "nan"]),
    ],
)
def test_url_errors_name_url_key_value_and_expectation(url: str, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        SceneConfig.from_url(url)
    message = str(info.value)
    assert url in message
    for fragment in fragments:
        assert fragment in message


def test_url_needs_the_prefix() -> None:
    with pytest.raises(ConfigError, match="synthetic:"):
        SceneConfig.from_url("file:clip.mp4")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"width": 8}, "width"),
        ({"seed": -1}, "seed"),
        ({"num_frames": 0}, "num_frames"),
        ({"min_objects": 4, "max_objects": 3}, "max_objects"),
        ({"noise_sigma": 100.0}, "noise_sigma"),
        ({"rotate": 1}, "rotate"),
        ({"min_speed": 0.0}, "min_speed"),
        ({"min_visible_area": 0}, "min_visible_area"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=rf"SceneConfig\.{field}: got .*expected"):
        SceneConfig(**kwargs)  # type: ignore[arg-type]
