"""``pipeline.yaml`` parsed once into typed, validated objects.

``load_config(path, overrides)`` is the only entry point. Unknown keys, wrong types and
impossible values are refused here, before any actor starts, with one ``ConfigError``
whose lines each name the YAML path, the value and what was expected, e.g.::

    pipeline.yaml: 2 problems
      streams[1].url: field required
      inference.max_batch_size: 0 is not valid: Input should be greater than or equal to 1

Relative paths in the file (video files, ``file://`` urls, checkpoint, sink folders) are resolved
against the folder of the config file, so a config works from any working directory.

The file itself is read defensively: at most :data:`MAX_CONFIG_BYTES`, UTF-8 only, and YAML anchors
and aliases are refused (a few lines of nested aliases expand to gigabytes: "billion laughs").
Values are never shown in full in an error (see :func:`pipeline.naming.show_value`).
Whether the files named exist, and whether the machine can hold the streams, is checked after
loading by :func:`pipeline.preflight.preflight`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.errors import ConfigError, InferenceError
from pipeline.naming import (
    BENCHMARK_ARCH,
    STREAM_ID_RULE,
    SUPPORTED_SCHEMES,
    is_valid_stream_id,
    local_path,
    show_value,
    supported_schemes_text,
    url_scheme,
    weights_is_path,
)
from pipeline.precision import ChannelsLastSetting, PrecisionSetting, check_supported
from pipeline.tracker_params import TRACKING_BOUNDS, score_order_problems

# A pipeline config is a few kilobytes (the shipped one: 7 KiB; a thousand streams: about 100 KiB);
# anything above this is not a config and is refused before it is parsed.
MAX_CONFIG_BYTES = 1024 * 1024
# Deepest nesting of YAML collections accepted; a config needs 4 (streams[0].options.key). Deeper
# nesting is refused because PyYAML composes nodes recursively (a file of "[[[[..." would overflow the stack).
MAX_YAML_DEPTH = 64
# Problems listed in one ConfigError at most (a generated config can have thousands); the rest are counted.
MAX_PROBLEMS_SHOWN = 50


class _RefusedYaml(yaml.MarkedYAMLError):
    """Valid YAML that a config file may not use (anchors, aliases, deep nesting)."""


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader without anchors and aliases, and with a nesting limit."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _RefusedYaml(
                None, None, "YAML anchors and aliases (&name, *name, <<: *name) are not allowed in a config file; "
                "write the values out", event.start_mark,
            )
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise _RefusedYaml(
                    None, None, f"nested more than {MAX_YAML_DEPTH} levels deep; a config needs 4", event.start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _load_yaml(text: str) -> Any:
    """``text`` parsed as YAML by :class:`_ConfigLoader`; raises ``yaml.YAMLError``."""
    return yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 - a SafeLoader subclass


class _Section(BaseModel):
    """Every section refuses unknown keys and is immutable once parsed."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RayConfig(_Section):
    # null: start a local Ray in this process; "auto": join the cluster this machine belongs to;
    # "ray://host:10001": join a remote cluster through Ray Client.
    address: str | None = None
    # Actors are named inside this namespace so that two pipelines on one cluster do not collide.
    namespace: str = "maskstream"
    # CPUs a local Ray may use (null: all cores). Ignored when joining a cluster.
    num_cpus: int | None = Field(default=None, ge=1)


class ReconnectConfig(_Section):
    # After a live stream drops (error, end, or stall_timeout_s without a frame), it is reopened with a
    # growing wait between attempts: initial_s first, growing up to max_s. 0.5 s rides out a camera's brief
    # glitch without hammering it; 30 s keeps a long outage from flooding the camera and the logs.
    initial_s: float = Field(default=0.5, gt=0, allow_inf_nan=False)
    max_s: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    # Seconds of failed reconnection after which the stream fails; null: never give up (a camera that
    # comes back after an hour's outage is picked up again, which is what an always-on pipeline wants).
    give_up_after_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> "ReconnectConfig":
        if self.max_s < self.initial_s:
            raise ValueError(f"max_s ({self.max_s}) must be >= initial_s ({self.initial_s}): it caps the growing wait")
        return self


class StreamConfig(_Section):
    id: str
    url: str
    # Pace a file at its native frame rate, like a camera (a file otherwise runs as fast as it decodes).
    realtime: bool = False
    # Restart a finite source when it ends (the stream then never ends by itself).
    loop: bool = False
    # Keep at most this many frames per second (subsampling by timestamp); null keeps all.
    max_fps: float | None = Field(default=None, gt=0)
    # Seconds to wait when opening the stream, and for each read of a network stream.
    open_timeout_s: float = Field(default=10.0, gt=0)
    read_timeout_s: float = Field(default=10.0, gt=0)
    # FFmpeg options passed to the demuxer, e.g. {rtsp_transport: udp}.
    options: dict[str, str] = Field(default_factory=dict)
    # Watchdog: a live stream with no frame for this many seconds is treated as dropped and reconnected,
    # whatever FFmpeg's read_timeout_s does (a server can keep a connection open and send nothing).
    # 15 s: well above a camera's keyframe interval and brief network hiccups, short enough to notice.
    stall_timeout_s: float = Field(default=15.0, gt=0, allow_inf_nan=False)
    # How a dropped live stream is reconnected (see ReconnectConfig).
    reconnect: ReconnectConfig = Field(default_factory=ReconnectConfig)

    @field_validator("id")
    @classmethod
    def _id_is_safe(cls, value: str) -> str:
        if not is_valid_stream_id(value):
            raise ValueError(f"must be {STREAM_ID_RULE}")
        return value

    @field_validator("url")
    @classmethod
    def _url_is_supported(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(f"must not be empty: use {supported_schemes_text()}")
        scheme = url_scheme(value)
        if scheme is not None and scheme not in SUPPORTED_SCHEMES:
            raise ValueError(f"unsupported URL scheme {show_value(scheme)}; use {supported_schemes_text()}")
        return value

    @property
    def is_file(self) -> bool:
        """Whether the url is a local file (a plain path or ``file://``), as opposed to a network or synthetic stream."""
        return local_path(self.url) is not None


class ModelConfig(_Section):
    # maskrcnn_resnet50_fpn_v2 / maskrcnn_resnet50_fpn (torchvision, COCO), or maskrcnn_compact (ResNet-18, small and fast).
    # benchmark_fixed: the benchmark-only engine (fixed detections, no model), refused outside `maskstream bench-pipeline`.
    arch: Literal["maskrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn_v2", "maskrcnn_compact", "benchmark_fixed"] = (
        "maskrcnn_resnet50_fpn_v2"
    )
    # DEFAULT or a torchvision weights name (COCO_V1): downloaded once into torch's cache;
    # a path to a checkpoint written by `maskstream train`; or none (random weights, for tests and benchmarks).
    weights: str | None = "DEFAULT"
    # Names of the classes, index 0 being background; null: taken from the weights or checkpoint.
    class_names: list[str] | None = None
    # Detections scoring below this are dropped before tracking and publishing.
    score_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    # Mask probability at or above which a pixel belongs to the instance.
    mask_threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    # The model resizes each frame so that its short side is min_size, long side at most max_size.
    # None: the size the weights were trained at (a checkpoint records it), else the arch's default
    # (800/1333 for the ResNet-50 models, 240/320 for maskrcnn_compact).
    min_size: int | None = Field(default=None, ge=32)
    max_size: int | None = Field(default=None, ge=32)
    # At most this many instances per frame (torchvision's box_detections_per_img).
    max_detections: int = Field(default=100, ge=1, le=1000)
    # auto: cuda when the actor has a GPU, else cpu.
    device: str = "auto"
    # Arithmetic of the forward pass: auto, fp32, or fp16/bf16 autocast. auto (pipeline.precision has the
    # rule): bf16 on GPUs that compute it natively, else fp16; bf16 on CPUs with AMX or AVX-512 BF16, else
    # fp32 (emulated bf16 is slower than fp32). The start line says what auto chose and why.
    precision: PrecisionSetting = "auto"
    # Convolutions in channels-last (NHWC) layout; auto: on with bf16/fp16 (where it pays), off with fp32.
    channels_last: ChannelsLastSetting = "auto"
    # torch.compile the backbone (with CUDA graphs on a GPU). Each new batch shape compiles once (tens of
    # seconds); off by default because a camera fleet of mixed sizes would compile many shapes.
    compile_backbone: bool = False
    # One instance per object: a detection scoring >= 0.5 whose mask overlaps a higher-scoring detection's of the
    # same frame, of any class, by more than this mask IoU gets a tenth of its score in the engine, so
    # score_threshold drops it (torchvision suppresses overlaps per
    # class only, so one object can come out under two classes). null: off. 0.45: a margin under the 0.5
    # target for the engine's sampled IoU (pipeline.engine.duplicates has the trade-off); keep in step with
    # pipeline.engine.duplicates.DEFAULT_DUPLICATE_MASK_IOU.
    duplicate_mask_iou_threshold: float | None = Field(default=0.45, gt=0.0, le=1.0)

    @field_validator("weights", mode="before")
    @classmethod
    def _none_string(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in ("none", "null", "random", ""):
            return None
        return value

    @model_validator(mode="after")
    def _sizes(self) -> "ModelConfig":
        if self.min_size is not None and self.max_size is not None and self.max_size < self.min_size:
            raise ValueError(f"max_size ({self.max_size}) must be >= min_size ({self.min_size})")
        if self.device.strip().lower() == "cpu":
            try:
                check_supported(self.precision, "cpu", where=" (device: cpu)")
            except InferenceError as exc:
                raise ValueError(str(exc)) from None
        if self.class_names is not None and len(self.class_names) < 2:
            raise ValueError("class_names must list the background first and at least one class")
        return self


class InferenceConfig(_Section):
    # Inference actors in the pool; each holds one copy of the model.
    replicas: int = Field(default=1, ge=1)
    # GPUs per replica; fractions share a GPU between replicas; 0 runs on the CPU.
    num_gpus: float = Field(default=1.0, ge=0.0)
    # CPUs per replica (also torch's thread count on a CPU replica).
    num_cpus: float = Field(default=1.0, gt=0.0)
    # A batch fires when it holds max_batch_size frames or its oldest frame has waited max_wait_ms.
    max_batch_size: int = Field(default=8, ge=1, le=256)
    max_wait_ms: float = Field(default=20.0, ge=0.0)
    # A batch takes frames of the waiting streams in turns of up to this many consecutive frames of one stream
    # (the stream waiting longest first). Each stream in a batch costs one delivery call to its output: more
    # frames a turn means fewer calls per frame; fewer means every stream advances in every batch (1: strict turns).
    stream_turn_frames: int = Field(default=4, ge=1, le=256)
    # Batches queued on one replica at once: 2 keeps the GPU busy while the next batch is sent.
    max_batches_in_flight: int = Field(default=2, ge=1, le=16)
    # How decoded video frames travel to the model: yuv420 sends the decoder's own 4:2:0 planes
    # (1.5 bytes a pixel, no colour conversion on the decoding host; converted on the model's
    # device, within 2 grey levels of FFmpeg's RGB); rgb converts on the decoding host (3 bytes a pixel).
    transfer_format: Literal["yuv420", "rgb"] = "yuv420"


def _tracking_field(name: str, default: float | int | None) -> Any:
    """A ``Field`` with the range ByteTracker accepts for ``name`` (pipeline.tracker_params, the one definition)."""
    return Field(default=default, **TRACKING_BOUNDS[name].field_kwargs())


class TrackingConfig(_Section):
    enabled: bool = True
    # See pipeline.tracking.ByteTracker for the trade-off of each threshold; the ranges are its own.
    high_score_threshold: float = _tracking_field("high_score_threshold", 0.6)
    low_score_threshold: float = _tracking_field("low_score_threshold", 0.1)
    new_track_score_threshold: float = _tracking_field("new_track_score_threshold", 0.7)
    match_iou_threshold: float = _tracking_field("match_iou_threshold", 0.2)
    low_match_iou_threshold: float = _tracking_field("low_match_iou_threshold", 0.3)
    low_score_weight: float = _tracking_field("low_score_weight", 0.8)
    lost_track_buffer_frames: int = _tracking_field("lost_track_buffer_frames", 30)
    min_hits_to_confirm: int = _tracking_field("min_hits_to_confirm", 1)
    use_mask_iou: bool = False
    class_aware: bool = False
    # A detection whose mask overlaps a higher-scoring one's by this mask IoU is a duplicate (Mask R-CNN
    # suppresses overlaps per class only) and gets no track; null: off. See ByteTracker for the trade-off. Off by
    # default: the engine's own rule (ModelConfig.duplicate_mask_iou_threshold) removes duplicates before tracking.
    duplicate_mask_iou_threshold: float | None = _tracking_field("duplicate_mask_iou_threshold", None)

    @model_validator(mode="after")
    def _ordered(self) -> "TrackingConfig":
        problems = score_order_problems(self.high_score_threshold, self.low_score_threshold, self.new_track_score_threshold)
        if problems:
            raise ValueError("; ".join(problems))
        return self


class BackpressureConfig(_Section):
    # Frames of one stream between decoding and publishing; bounds memory and latency. A file's source sends
    # bundles of 8 frames: 32 keeps four in flight, so that no actor waits for the one before it to finish.
    max_in_flight_per_stream: int = Field(default=32, ge=1, le=1024)
    # Decoded frames a live source keeps waiting while the pool is behind; older ones are dropped (and counted).
    live_queue_frames: int = Field(default=2, ge=1, le=1024)


class RedisSinkConfig(_Section):
    url: str = "redis://127.0.0.1:6379/0"
    # Pub/sub channel per stream; {stream} is replaced by the stream id.
    channel: str = "masks:{stream}"
    # Also keep the last N messages of each stream in the Redis stream "<channel>:history" (0: off).
    history_maxlen: int = Field(default=0, ge=0)
    # Messages of one stream kept while Redis is unreachable, sent when it is back (the oldest are dropped
    # beyond). 1000: over a minute of a 10 fps stream, a few MB of masks as RLE per stream.
    buffer_frames: int = Field(default=1000, ge=1)

    @field_validator("channel")
    @classmethod
    def _has_placeholder(cls, value: str) -> str:
        if "{stream}" not in value:
            raise ValueError("must contain {stream} so that each stream has its own channel")
        return value


class VideoSinkConfig(_Section):
    dir: Path = Path("out")
    # H.264 quality: 18 near-lossless, 23 default, 28 small.
    crf: int = Field(default=23, ge=0, le=51)


class JsonlSinkConfig(_Section):
    dir: Path = Path("out")


class SinksConfig(_Section):
    redis: RedisSinkConfig | None = None
    video: VideoSinkConfig | None = None
    jsonl: JsonlSinkConfig | None = None


class RunConfig(_Section):
    # Seconds between status lines of live streams.
    status_interval_s: float = Field(default=5.0, gt=0)
    # After the sources stop, seconds to wait for frames in flight before giving up.
    drain_timeout_s: float = Field(default=60.0, gt=0)
    # Show progress bars (turned off automatically when the output is not a terminal).
    progress: bool = True
    # Most streams one pipeline may run: each stream starts a source, a tracker and a sink actor (a
    # process each). 256 is far above what one machine holds (see pipeline.preflight) and bounds a
    # generated config that went wrong; raise it for a large cluster.
    max_streams: int = Field(default=256, ge=1)


class SupervisionConfig(_Section):
    # Times each actor is restarted after its process dies before its streams fail. 5 rides out a few
    # crashes (out of memory, a killed process) while a crash loop still ends in a clear failure.
    max_restarts: int = Field(default=5, ge=0)
    # Times a batch is re-run on another inference replica after the replica died. 3: a batch that kills
    # every replica it reaches (a poison frame) stops after three replicas instead of taking the pool down.
    max_batch_retries: int = Field(default=3, ge=0)
    # A source that has waited this long for acknowledgements asks whether a downstream actor restarted
    # (its frames in flight would then be lost). 1 s: a restart is noticed quickly, for one cheap call a second.
    probe_interval_s: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    # Seconds an unavailable inference replica may take to come back before its batch gets an error. Ray
    # notices a lost node only when its health checks fail (about 30 s with Ray's defaults), then restarts
    # the actor elsewhere (model load included): 120 s covers that with room to spare.
    restart_timeout_s: float = Field(default=120.0, gt=0, allow_inf_nan=False)


class PipelineConfig(_Section):
    ray: RayConfig = Field(default_factory=RayConfig)
    streams: list[StreamConfig] = Field(min_length=1)
    model: ModelConfig = Field(default_factory=ModelConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    backpressure: BackpressureConfig = Field(default_factory=BackpressureConfig)
    sinks: SinksConfig = Field(default_factory=SinksConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    supervision: SupervisionConfig = Field(default_factory=SupervisionConfig)

    @field_validator("streams")
    @classmethod
    def _unique_ids(cls, streams: list[StreamConfig]) -> list[StreamConfig]:
        seen: set[str] = set()
        for stream in streams:
            if stream.id in seen:
                raise ValueError(f"stream id {stream.id!r} is used twice; ids name channels and files, so they must be unique")
            seen.add(stream.id)
        return streams

    @model_validator(mode="after")
    def _stream_count(self) -> "PipelineConfig":
        if len(self.streams) > self.run.max_streams:
            raise ValueError(
                f"streams has {len(self.streams)} entries, more than run.max_streams ({self.run.max_streams}); "
                "run fewer streams per pipeline, or raise run.max_streams"
            )
        return self


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> PipelineConfig:
    """Read ``path``, apply ``--set`` overrides (``a.b[0].c=value``, value parsed as YAML), validate."""
    path = Path(path)
    raw = _parse_yaml(_read_text(path), path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (ray, streams, model, ...), got {type(raw).__name__}")
    for override in overrides:
        apply_override(raw, override)
    return parse_config(raw, source=str(path), base_dir=path.resolve().parent)


def _read_text(path: Path) -> str:
    """The config file's text: at most ``MAX_CONFIG_BYTES``, UTF-8; every failure a ``ConfigError`` naming ``path``."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{path}: is a folder, not a config file") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror or exc}") from exc
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{path}: the file is larger than {MAX_CONFIG_BYTES // 1024} KiB, the most a config file may be; "
            "is it the right file?"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}: is not UTF-8 text: byte {exc.start} (line {line}) is {data[exc.start:exc.start + 1]!r}; "
            "save the file as UTF-8"
        ) from None


def _parse_yaml(text: str, path: Path) -> Any:
    try:
        return _load_yaml(text)
    except _RefusedYaml as exc:
        raise ConfigError(f"{path}:{_where(exc.problem_mark)}: {exc.problem}") from None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(f"{path}:{_where(exc.problem_mark)} is not valid YAML: {exc.problem}") from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        raise ConfigError(
            f"{path}: line {line} is not valid YAML: the character U+{ord(char):04X} at position {exc.position} "
            "is not allowed (YAML accepts printable characters, tabs and line breaks only)"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: is not valid YAML: {show_value(str(exc), max_chars=300)}") from None


def _where(mark: Any) -> str:
    """`` line L, column C`` of a YAML error (1-based), or nothing when PyYAML gave no position."""
    return f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def parse_config(
    raw: dict[str, Any], *, source: str = "config", base_dir: Path | None = None, allow_benchmark_engine: bool = False
) -> PipelineConfig:
    """Validate an already-loaded mapping; relative paths are resolved against ``base_dir`` when given.

    ``model.arch: benchmark_fixed`` (the benchmark-only engine, which publishes fixed detections without
    running a model) is refused unless ``allow_benchmark_engine`` (only ``maskstream bench-pipeline`` sets it).
    """
    try:
        config = PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, raw, source)) from None
    if config.model.arch == BENCHMARK_ARCH and not allow_benchmark_engine:
        raise ConfigError(
            f"{source}: 1 problem\n  model.arch: {BENCHMARK_ARCH!r} is the benchmark-only engine: it publishes fixed "
            "detections without running a model, so its masks mean nothing. Only `maskstream bench-pipeline` runs it; "
            "choose maskrcnn_compact, maskrcnn_resnet50_fpn or maskrcnn_resnet50_fpn_v2"
        )
    return _resolve_paths(config, base_dir) if base_dir is not None else config


def format_validation_error(exc: ValidationError, raw: Any, source: str) -> str:
    problems = [_problem_line(error, raw) for error in exc.errors()]
    count = len(problems)
    header = f"{source}: {count} problem{'s' if count != 1 else ''}"
    shown = problems[:MAX_PROBLEMS_SHOWN]
    if count > len(shown):
        shown.append(f"... and {count - len(shown)} more")
    return header + "".join(f"\n  {p}" for p in shown)


def _problem_line(error: Any, raw: Any) -> str:
    """One problem: the YAML path, the value (cut short) and what was expected."""
    loc = [part for part in error["loc"] if not (isinstance(part, str) and part.startswith("function-"))]
    yaml_path = _yaml_path(loc)
    present, value = _lookup(raw, loc)
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        return f"{yaml_path}: required key is missing"
    if error["type"] == "extra_forbidden":
        return f"{yaml_path}: unknown key (value {show_value(value)}); check its spelling against pipeline.yaml"
    if not loc:
        return message  # a rule across sections: the message names the keys itself
    if present and not isinstance(value, (dict, list)):
        return f"{yaml_path}: {show_value(value)} is not valid: {message}"
    return f"{yaml_path}: {message}"


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Apply one ``path=value`` to the raw mapping; ``path`` is dotted with ``[i]`` list indexes."""
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {show_value(override)}: expected path=value, e.g. inference.replicas=2 or streams[0].url=clip.mp4")
    try:
        value = _load_yaml(text) if text.strip() else None
    except _RefusedYaml as exc:
        raise ConfigError(f"--set {show_value(override)}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {show_value(override)}: the value is not valid YAML: {show_value(str(exc), max_chars=300)}") from None
    parts = _split_path(key.strip(), override)
    node: Any = raw
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                have = len(node) if isinstance(node, list) else 0
                raise ConfigError(f"--set {show_value(override)}: {_yaml_path(parts[: i + 1])} does not exist (the list has {have} entries)")
            if last:
                node[part] = value
            else:
                node = node[part]
        else:
            if not isinstance(node, dict):
                raise ConfigError(f"--set {show_value(override)}: {_yaml_path(parts[:i])} is not a mapping")
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = [] if isinstance(parts[i + 1], int) else {}
                node = node[part]


def _split_path(key: str, override: str) -> list[str | int]:
    parts: list[str | int] = []
    for token in key.split("."):
        match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)", token)
        if match is None:
            raise ConfigError(f"--set {show_value(override)}: {show_value(token)} is not a key (letters, digits, '_', optional [index])")
        parts.append(match.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", match.group(2)))
    return parts


def _yaml_path(loc: list[Any] | tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            key = str(part)
            out += ("." if out else "") + (key if len(key) <= 60 else show_value(key, max_chars=60))
    return out or "(top level)"


def _lookup(raw: Any, loc: list[Any]) -> tuple[bool, Any]:
    node = raw
    for part in loc:
        if isinstance(part, int) and isinstance(node, list) and part < len(node):
            node = node[part]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return False, None
    return True, node


def _resolve_paths(config: PipelineConfig, base_dir: Path) -> PipelineConfig:
    def resolve(given: str | Path) -> Path:
        path = Path(given).expanduser()
        return path if path.is_absolute() else base_dir / path

    streams = [_resolve_stream_url(s, resolve) for s in config.streams]
    model = config.model
    if weights_is_path(model.weights):
        model = model.model_copy(update={"weights": str(resolve(str(model.weights).strip()))})
    sinks = config.sinks
    updates: dict[str, Any] = {}
    if sinks.video is not None:
        updates["video"] = sinks.video.model_copy(update={"dir": resolve(sinks.video.dir)})
    if sinks.jsonl is not None:
        updates["jsonl"] = sinks.jsonl.model_copy(update={"dir": resolve(sinks.jsonl.dir)})
    return config.model_copy(update={"streams": streams, "model": model, "sinks": sinks.model_copy(update=updates)})


def _resolve_stream_url(stream: StreamConfig, resolve: Callable[[str | Path], Path]) -> StreamConfig:
    """A file stream's url as an absolute plain path (``file://`` urls too); other urls unchanged."""
    path = local_path(stream.url)
    if path is None or (path == stream.url and Path(path).is_absolute()):
        return stream
    return stream.model_copy(update={"url": str(resolve(path))})
