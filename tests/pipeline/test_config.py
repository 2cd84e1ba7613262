from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import PipelineConfig, load_config, parse_config
from pipeline.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    return path


def test_shipped_config_is_valid() -> None:
    config = load_config(REPO / "pipeline.yaml")
    assert isinstance(config, PipelineConfig)
    assert config.streams, "the shipped config must run at least one stream"


def test_minimal_config_gets_documented_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "streams: [{id: cam1, url: clip.mp4}]\n"))
    assert config.ray.address is None
    assert config.model.arch == "maskrcnn_resnet50_fpn_v2"
    assert config.model.weights == "DEFAULT"
    assert config.inference.max_batch_size == 8 and config.inference.max_wait_ms == 20
    assert config.tracking.enabled
    # relative file paths are resolved against the config file's folder
    assert config.streams[0].url == str(tmp_path / "clip.mp4")


def test_errors_name_yaml_path_value_and_expectation(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
streams:
  - {id: cam1, url: a.mp4}
  - {id: cam2, url: b.mp4, max_fps: -3}
inference: {max_batch_size: 0, replicaz: 2}
model: {score_threshold: 1.5}
""",
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert text.startswith(f"{path}: 4 problems")
    assert "streams[1].max_fps: -3 is not valid" in text and "greater than 0" in text
    assert "inference.max_batch_size: 0 is not valid" in text
    assert "inference.replicaz: unknown key" in text
    assert "model.score_threshold: 1.5 is not valid" in text


def test_missing_key_and_cross_field_rules() -> None:
    with pytest.raises(ConfigError, match=r"streams\[0\]\.url: required key is missing"):
        parse_config({"streams": [{"id": "a"}]})
    with pytest.raises(ConfigError, match=r"max_size \(100\) must be >= min_size \(200\)"):
        parse_config({"streams": [{"id": "a", "url": "x"}], "model": {"min_size": 200, "max_size": 100}})
    # null (the default): the size the weights were trained at, resolved when the model loads
    sizes = parse_config({"streams": [{"id": "a", "url": "x"}], "model": {"min_size": 200}}).model
    assert (sizes.min_size, sizes.max_size) == (200, None)
    with pytest.raises(ConfigError, match="used twice"):
        parse_config({"streams": [{"id": "a", "url": "x"}, {"id": "a", "url": "y"}]})
    with pytest.raises(ConfigError, match=r"streams\[0\]\.id: 'a b' is not valid"):
        parse_config({"streams": [{"id": "a b", "url": "x"}]})
    with pytest.raises(ConfigError, match=r"sinks\.redis\.channel: 'masks' is not valid: .*\{stream\}"):
        parse_config({"streams": [{"id": "a", "url": "x"}], "sinks": {"redis": {"channel": "masks"}}})


def test_streams_required_and_top_level_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="streams: required key is missing"):
        load_config(write(tmp_path, "model: {arch: maskrcnn_compact}\n"))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"line 2, column 11 is not valid YAML"):
        load_config(write(tmp_path, "streams:\n  - {id: a: b}\n"))


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("/nonexistent/pipeline.yaml")


def test_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "streams: [{id: cam1, url: rtsp://cam/1}]\n")
    config = load_config(
        path,
        ["inference.replicas=3", "streams[0].max_fps=5", "sinks.redis.url=redis://h:1/0", "model.weights=none"],
    )
    assert config.inference.replicas == 3
    assert config.streams[0].max_fps == 5.0
    assert config.streams[0].url == "rtsp://cam/1"  # URLs are not paths
    assert config.sinks.redis is not None and config.sinks.redis.url == "redis://h:1/0"
    assert config.model.weights is None
    with pytest.raises(ConfigError, match=r"streams\[3\] does not exist \(the list has 1 entries\)"):
        load_config(path, ["streams[3].url=x"])
    with pytest.raises(ConfigError, match="expected path=value"):
        load_config(path, ["inference.replicas"])
    with pytest.raises(ConfigError, match=r"inference\.replicas: 'many' is not valid"):
        load_config(path, ["inference.replicas=many"])
