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


# ------------------------------------------------------------------------- the file itself, read defensively

# Three levels of the classic nine already make 9**3 strings out of nine; the attack goes on to nine levels (gigabytes).
BILLION_LAUGHS = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
streams: [{id: a, url: "synthetic:"}]
"""


def test_yaml_anchors_and_aliases_are_refused_with_their_position(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, BILLION_LAUGHS))
    text = str(err.value)
    assert text.startswith(f"{tmp_path / 'pipeline.yaml'}: line 1, column 4: ")
    assert "anchors and aliases" in text and len(text) < 300
    merge = "defaults: &d {max_fps: 5}\nstreams:\n  - {<<: *d, id: a, url: 'synthetic:'}\n"
    with pytest.raises(ConfigError, match=r"line 1, column 11: YAML anchors and aliases"):
        load_config(write(tmp_path, merge))
    plain = write(tmp_path, "streams: [{id: a, url: 'synthetic:'}]\n")
    with pytest.raises(ConfigError, match=r"^--set 'streams\[0\]\.options=&o \{a: \*o\}': YAML anchors and aliases"):
        load_config(plain, ["streams[0].options=&o {a: *o}"])


def test_a_value_is_never_shown_in_full(tmp_path: Path) -> None:
    huge = "y" * 200_000
    path = write(tmp_path, f"streams: [{{id: a, url: 'synthetic:'}}]\nbogus: {huge}\nmodel: {{precision: {huge}}}\n"
                           f"{'k' * 1000}: [{', '.join(['1'] * 10_000)}]\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert "bogus: unknown key (value 'yyyy" in text and "model.precision: 'yyyy" in text and "kkkk..." in text
    assert len(text) < 1500, len(text)
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "streams: [{id: a, url: 'synthetic:'}]\n"), [f"inference.replicas={huge}"])
    assert len(str(err.value)) < 1500


def test_many_problems_are_counted_not_all_listed(tmp_path: Path) -> None:
    streams = ", ".join(f"{{id: 's{i}', url: x, max_fps: -1}}" for i in range(200))
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, f"streams: [{streams}]\n"))
    text = str(err.value)
    assert text.startswith(f"{tmp_path / 'pipeline.yaml'}: 200 problems")
    assert text.count("\n  streams[") == 50 and text.endswith("... and 150 more")


def test_the_config_file_size_is_capped(tmp_path: Path) -> None:
    from pipeline.config import MAX_CONFIG_BYTES

    body = "streams: [{id: a, url: 'synthetic:'}]\n"
    filler = "#" * (MAX_CONFIG_BYTES - len(body) - 1) + "\n"
    assert load_config(write(tmp_path, body + filler)).streams[0].id == "a"  # exactly at the limit: read
    with pytest.raises(ConfigError, match=r"pipeline\.yaml: the file is larger than 1024 KiB"):
        load_config(write(tmp_path, body + "#" + filler))


def test_deep_nesting_is_refused_not_a_recursion_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"pipeline\.yaml: line 1, column \d+: nested more than 64 levels"):
        load_config(write(tmp_path, "streams: " + "[" * 20_000 + "\n"))


def test_non_utf8_file_names_the_byte_offset(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.yaml"
    data = b"streams: [{id: a, url: 'synthetic:'}]\nmodel: {device: caf\xe9}\n"
    path.write_bytes(data)
    offset = data.index(b"\xe9")
    with pytest.raises(ConfigError, match=rf"^{path}: is not UTF-8 text: byte {offset} \(line 2\) is b'\\xe9'"):
        load_config(path)
    path.write_bytes(b"streams: [{id: a, url: 'synthetic:'}]\nmodel: {device: \x07}\n")
    with pytest.raises(ConfigError, match=rf"^{path}: line 2 is not valid YAML: the character U\+0007"):
        load_config(path)
    with pytest.raises(ConfigError, match="is a folder, not a config file"):
        load_config(tmp_path)


# ------------------------------------------------------------------------- stream ids and urls


@pytest.mark.parametrize("stream_id", ["cam1\n", "cam1\r", " cam1", ".cam", "a/b", "x" * 65, "", "cam:1", "é"])
def test_unsafe_stream_ids_are_refused_by_config_and_sinks_alike(stream_id: str) -> None:
    from pipeline.errors import SinkError
    from pipeline.sinks.base import check_stream_id

    with pytest.raises(ConfigError, match=r"streams\[0\]\.id: .* is not valid: must be 1-64 letters"):
        parse_config({"streams": [{"id": stream_id, "url": "synthetic:"}]})
    with pytest.raises(SinkError):
        check_stream_id(stream_id, "JsonlSink")


@pytest.mark.parametrize("stream_id", ["a", "cam-1.b_2", "x" * 64])
def test_safe_stream_ids_pass_config_and_sinks_alike(stream_id: str) -> None:
    from pipeline.sinks.base import check_stream_id

    assert parse_config({"streams": [{"id": stream_id, "url": "synthetic:"}]}).streams[0].id == stream_id
    assert check_stream_id(stream_id, "JsonlSink") == stream_id


def test_network_urls_stay_urls_and_file_urls_are_resolved_like_paths(tmp_path: Path) -> None:
    urls = ["rtp://239.0.0.1:5004", "srt://cam:9000", "RTSP://cam/1", "file:///abs/clip.mp4",
            "file://clips/a%20b.mp4", "clips/c.mp4", "/abs/d.mp4", "synthetic:seed=1"]
    streams = ", ".join(f"{{id: s{i}, url: '{url}'}}" for i, url in enumerate(urls))
    config = load_config(write(tmp_path, f"streams: [{streams}]\n"))
    assert [s.url for s in config.streams] == [
        "rtp://239.0.0.1:5004", "srt://cam:9000", "RTSP://cam/1", "/abs/clip.mp4",
        str(tmp_path / "clips" / "a b.mp4"), str(tmp_path / "clips" / "c.mp4"), "/abs/d.mp4", "synthetic:seed=1",
    ]
    assert [s.is_file for s in config.streams] == [False, False, False, True, True, True, True, False]


def test_unknown_url_scheme_is_refused_with_the_supported_list() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"streams": [{"id": "a", "url": "foo://cam/1"}]})
    text = str(err.value)
    assert "streams[0].url: 'foo://cam/1' is not valid: unsupported URL scheme 'foo'" in text
    assert "rtsp://" in text and "rtp://" in text and "file://" in text and "synthetic:" in text


def test_weights_names_stay_names_and_paths_are_resolved(tmp_path: Path) -> None:
    def weights(value: str) -> str | None:
        body = f"streams: [{{id: a, url: 'synthetic:'}}]\nmodel: {{weights: '{value}'}}\n"
        return load_config(write(tmp_path, body)).model.weights

    assert weights("DEFAULT") == "DEFAULT" and weights("COCO_V1") == "COCO_V1"
    assert weights("MaskRCNN_ResNet50_FPN_Weights.COCO_V1") == "MaskRCNN_ResNet50_FPN_Weights.COCO_V1"
    assert weights("none") is None
    # not shaped like a torchvision name: a file, resolved like any path (the loader reads it as one too)
    assert weights("model.ckpt") == str(tmp_path / "model.ckpt")
    assert weights("ckpt/m.pt") == str(tmp_path / "ckpt" / "m.pt")


# ------------------------------------------------------------------------- tracking: the tracker's own ranges


@pytest.mark.parametrize("key", ["match_iou_threshold", "low_match_iou_threshold", "duplicate_mask_iou_threshold"])
def test_an_iou_gate_of_zero_is_refused_when_the_config_is_read(key: str) -> None:
    with pytest.raises(ConfigError, match=rf"tracking\.{key}: 0 is not valid: Input should be greater than 0"):
        parse_config({"streams": [{"id": "a", "url": "x"}], "tracking": {key: 0}})


def test_config_and_tracker_accept_exactly_the_same_tracking_values() -> None:
    from pipeline.tracking import ByteTracker
    from pipeline.tracker_params import TRACKING_BOUNDS

    for name, bound in TRACKING_BOUNDS.items():
        if bound.integer:
            candidates: list[float] = [bound.low - 1, bound.low, bound.low + 1, 10_000]
        else:
            candidates = [bound.low - 0.1, bound.low, bound.low + 1e-9, 0.5, 1.0, 1.0 + 1e-9, float("nan"), float("inf")]
        for value in candidates:
            try:
                parse_config({"streams": [{"id": "a", "url": "x"}], "tracking": {name: value}})
                config_ok = True
            except ConfigError:
                config_ok = False
            try:
                ByteTracker(**{name: value})
                tracker_ok = True
            except ConfigError:
                tracker_ok = False
            assert config_ok == tracker_ok, (name, value, config_ok, tracker_ok)


# ------------------------------------------------------------------------- keys for supervision and reconnection


def test_new_keys_have_their_documented_defaults() -> None:
    config = parse_config({"streams": [{"id": "a", "url": "x"}], "sinks": {"redis": {}}})
    stream = config.streams[0]
    assert stream.stall_timeout_s == 15.0
    assert (stream.reconnect.initial_s, stream.reconnect.max_s, stream.reconnect.give_up_after_s) == (0.5, 30.0, None)
    assert config.sinks.redis is not None and config.sinks.redis.buffer_frames == 1000
    assert config.run.max_streams == 256
    assert (config.supervision.max_restarts, config.supervision.max_batch_retries) == (5, 3)
    assert config.supervision.probe_interval_s == 1.0


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"streams": [{"id": "a", "url": "x", "stall_timeout_s": 0}]}, r"streams\[0\]\.stall_timeout_s: 0 is not valid"),
        ({"streams": [{"id": "a", "url": "x", "stall_timeout_s": float("nan")}]},
         r"streams\[0\]\.stall_timeout_s: nan is not valid: Input should be a finite number"),
        ({"streams": [{"id": "a", "url": "x", "reconnect": {"initial_s": 0}}]}, r"reconnect\.initial_s: 0 is not valid"),
        ({"streams": [{"id": "a", "url": "x", "reconnect": {"initial_s": 5, "max_s": 2}}]},
         r"streams\[0\]\.reconnect: max_s \(2\.0\) must be >= initial_s \(5\.0\)"),
        ({"streams": [{"id": "a", "url": "x", "reconnect": {"give_up_after_s": -1}}]}, r"give_up_after_s: -1 is not valid"),
        ({"streams": [{"id": "a", "url": "x", "reconnect": {"retries": 3}}]}, r"reconnect\.retries: unknown key"),
        ({"sinks": {"redis": {"buffer_frames": 0}}}, r"sinks\.redis\.buffer_frames: 0 is not valid"),
        ({"supervision": {"max_restarts": -1}}, r"supervision\.max_restarts: -1 is not valid"),
        ({"supervision": {"max_batch_retries": 1.5}}, r"supervision\.max_batch_retries: 1\.5 is not valid"),
        ({"supervision": {"probe_interval_s": 0}}, r"supervision\.probe_interval_s: 0 is not valid"),
        ({"run": {"max_streams": 0}}, r"run\.max_streams: 0 is not valid"),
    ],
)
def test_new_keys_are_bounded(section: dict, expected: str) -> None:
    raw = {"streams": [{"id": "a", "url": "x"}], **section}
    with pytest.raises(ConfigError, match=expected):
        parse_config(raw)


def test_more_streams_than_run_max_streams_is_refused() -> None:
    streams = [{"id": f"s{i}", "url": "synthetic:"} for i in range(257)]
    with pytest.raises(ConfigError, match=r"^config: 1 problem\n  streams has 257 entries, more than run\.max_streams \(256\)"):
        parse_config({"streams": streams})
    assert len(parse_config({"streams": streams, "run": {"max_streams": 300}}).streams) == 257


def test_the_shipped_config_lists_every_key() -> None:
    from pydantic import BaseModel

    text = (REPO / "pipeline.yaml").read_text()

    def keys(model: type[BaseModel]) -> list[str]:
        found = []
        for name, field in model.model_fields.items():
            found.append(name)
            for arg in (field.annotation, *getattr(field.annotation, "__args__", ())):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    found.extend(keys(arg))
        return found

    missing = [k for k in keys(PipelineConfig) if f"{k}:" not in text]
    assert missing == [], f"pipeline.yaml does not document {missing}"


def test_precision_and_layout_default_to_auto_and_take_forced_values() -> None:
    model = parse_config({"streams": [{"id": "a", "url": "x"}]}).model
    assert (model.precision, model.channels_last) == ("auto", "auto")
    shipped = load_config(REPO / "pipeline.yaml").model
    assert (shipped.precision, shipped.channels_last) == ("auto", "auto")
    forced = parse_config({"streams": [{"id": "a", "url": "x"}], "model": {"precision": "bf16", "channels_last": True}})
    assert (forced.model.precision, forced.model.channels_last) == ("bf16", True)
    with pytest.raises(ConfigError, match=r"model: .*precision fp16 is not supported on the CPU \(device: cpu\)"):
        parse_config({"streams": [{"id": "a", "url": "x"}], "model": {"precision": "fp16", "device": "cpu"}})
    with pytest.raises(ConfigError, match=r"model\.precision: 'fp8' is not valid"):
        parse_config({"streams": [{"id": "a", "url": "x"}], "model": {"precision": "fp8"}})
    with pytest.raises(ConfigError, match=r"model\.channels_last"):
        parse_config({"streams": [{"id": "a", "url": "x"}], "model": {"channels_last": "sometimes"}})


def test_the_benchmark_engine_is_refused_outside_the_bench(tmp_path: Path) -> None:
    from pipeline import cli
    from pipeline.naming import BENCHMARK_ARCH

    raw = {"streams": [{"id": "a", "url": "x"}], "model": {"arch": BENCHMARK_ARCH}}
    with pytest.raises(ConfigError, match=r"model\.arch: 'benchmark_fixed' is the benchmark-only engine.*bench-pipeline"):
        parse_config(raw)
    assert parse_config(raw, allow_benchmark_engine=True).model.arch == BENCHMARK_ARCH
    path = write(tmp_path, "streams: [{id: a, url: 'synthetic:'}]\nmodel: {arch: benchmark_fixed}\n")
    assert cli.main(["run", str(path)]) == 2  # refused when the config is read, before Ray starts


def test_model_duplicate_rule_is_on_by_default_can_be_turned_off_and_is_bounded() -> None:
    minimal = {"streams": [{"id": "a", "url": "x"}]}
    assert parse_config(minimal).model.duplicate_mask_iou_threshold == 0.45
    assert load_config(REPO / "pipeline.yaml").model.duplicate_mask_iou_threshold == 0.45
    off = parse_config({**minimal, "model": {"duplicate_mask_iou_threshold": None}})
    assert off.model.duplicate_mask_iou_threshold is None
    for bad in (0, 1.5):
        with pytest.raises(ConfigError, match=rf"model\.duplicate_mask_iou_threshold: {bad} is not valid"):
            parse_config({**minimal, "model": {"duplicate_mask_iou_threshold": bad}})
