"""``pipeline.yaml`` parsed once into typed, validated objects.

``load_config(path, overrides)`` is the only entry point. Unknown keys, wrong types and
impossible values are refused here, before any actor starts, with one ``ConfigError``
whose lines each name the YAML path, the value and what was expected, e.g.::

    pipeline.yaml: 2 problems
      streams[1].url: field required
      inference.max_batch_size: 0 is not valid: Input should be greater than or equal to 1

Relative paths in the file (video files, checkpoint, sink folders) are resolved against
the folder of the config file, so a config works from any working directory.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.errors import ConfigError

_STREAM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "rtmps://", "http://", "https://", "udp://", "tcp://", "srt://", "synthetic:")


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

    @field_validator("id")
    @classmethod
    def _id_is_safe(cls, value: str) -> str:
        if not _STREAM_ID.match(value):
            raise ValueError("must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit (it names files and channels)")
        return value

    @field_validator("url")
    @classmethod
    def _url_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must be a file path, a stream URL (rtsp://, rtmp://, http(s)://, udp://) or synthetic:...")
        return value

    @property
    def is_file(self) -> bool:
        return not self.url.startswith(_URL_SCHEMES)


class ModelConfig(_Section):
    # maskrcnn_resnet50_fpn_v2 / maskrcnn_resnet50_fpn (torchvision, COCO), or maskrcnn_compact (ResNet-18, small and fast).
    arch: Literal["maskrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn_v2", "maskrcnn_compact"] = "maskrcnn_resnet50_fpn_v2"
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
    # Arithmetic of the forward pass: fp32, or fp16/bf16 autocast (fp16 needs a GPU; bf16 also speeds up CPUs).
    precision: Literal["fp32", "fp16", "bf16"] = "fp32"
    # Run the convolutions in channels-last (NHWC) memory layout: faster with bf16/fp16 on GPUs and on CPUs.
    channels_last: bool = False
    # torch.compile the backbone (with CUDA graphs on a GPU). Each new batch shape compiles once (tens of
    # seconds); off by default because a camera fleet of mixed sizes would compile many shapes.
    compile_backbone: bool = False

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
    # Batches queued on one replica at once: 2 keeps the GPU busy while the next batch is sent.
    max_batches_in_flight: int = Field(default=2, ge=1, le=16)
    # How decoded video frames travel to the model: yuv420 sends the decoder's own 4:2:0 planes
    # (1.5 bytes a pixel, no colour conversion on the decoding host; converted on the model's
    # device, within 2 grey levels of FFmpeg's RGB); rgb converts on the decoding host (3 bytes a pixel).
    transfer_format: Literal["yuv420", "rgb"] = "yuv420"


class TrackingConfig(_Section):
    enabled: bool = True
    # See pipeline.tracking.ByteTracker for the trade-off of each threshold.
    high_score_threshold: float = Field(default=0.6, ge=0.0, le=1.0)
    low_score_threshold: float = Field(default=0.1, ge=0.0, le=1.0)
    new_track_score_threshold: float = Field(default=0.7, ge=0.0, le=1.0)
    match_iou_threshold: float = Field(default=0.2, ge=0.0, le=1.0)
    low_match_iou_threshold: float = Field(default=0.3, ge=0.0, le=1.0)
    lost_track_buffer_frames: int = Field(default=30, ge=0)
    min_hits_to_confirm: int = Field(default=1, ge=1)
    use_mask_iou: bool = False
    class_aware: bool = False
    # A detection whose mask overlaps a higher-scoring one's by this mask IoU is a duplicate (Mask R-CNN
    # suppresses overlaps per class only) and gets no track; null: off. See ByteTracker for the trade-off.
    duplicate_mask_iou_threshold: float | None = Field(default=0.3, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> "TrackingConfig":
        if self.low_score_threshold > self.high_score_threshold:
            raise ValueError(
                f"low_score_threshold ({self.low_score_threshold}) must be <= high_score_threshold ({self.high_score_threshold})"
            )
        if self.new_track_score_threshold < self.high_score_threshold:
            raise ValueError(
                f"new_track_score_threshold ({self.new_track_score_threshold}) must be >= high_score_threshold "
                f"({self.high_score_threshold}): only high-score detections start tracks"
            )
        return self


class BackpressureConfig(_Section):
    # Frames of one stream between decoding and publishing; bounds memory and latency.
    max_in_flight_per_stream: int = Field(default=16, ge=1, le=1024)
    # Decoded frames a live source keeps waiting while the pool is behind; older ones are dropped (and counted).
    live_queue_frames: int = Field(default=2, ge=1, le=1024)


class RedisSinkConfig(_Section):
    url: str = "redis://127.0.0.1:6379/0"
    # Pub/sub channel per stream; {stream} is replaced by the stream id.
    channel: str = "masks:{stream}"
    # Also keep the last N messages of each stream in the Redis stream "<channel>:history" (0: off).
    history_maxlen: int = Field(default=0, ge=0)

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


class PipelineConfig(_Section):
    ray: RayConfig = Field(default_factory=RayConfig)
    streams: list[StreamConfig] = Field(min_length=1)
    model: ModelConfig = Field(default_factory=ModelConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    backpressure: BackpressureConfig = Field(default_factory=BackpressureConfig)
    sinks: SinksConfig = Field(default_factory=SinksConfig)
    run: RunConfig = Field(default_factory=RunConfig)

    @field_validator("streams")
    @classmethod
    def _unique_ids(cls, streams: list[StreamConfig]) -> list[StreamConfig]:
        seen: set[str] = set()
        for stream in streams:
            if stream.id in seen:
                raise ValueError(f"stream id {stream.id!r} is used twice; ids name channels and files, so they must be unique")
            seen.add(stream.id)
        return streams


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> PipelineConfig:
    """Read ``path``, apply ``--set`` overrides (``a.b[0].c=value``, value parsed as YAML), validate."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} is not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (ray, streams, model, ...), got {type(raw).__name__}")
    for override in overrides:
        apply_override(raw, override)
    return parse_config(raw, source=str(path), base_dir=path.resolve().parent)


def parse_config(raw: dict[str, Any], *, source: str = "config", base_dir: Path | None = None) -> PipelineConfig:
    """Validate an already-loaded mapping; relative paths are resolved against ``base_dir`` when given."""
    try:
        config = PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, raw, source)) from None
    return _resolve_paths(config, base_dir) if base_dir is not None else config


def format_validation_error(exc: ValidationError, raw: Any, source: str) -> str:
    problems = []
    for error in exc.errors():
        loc = [part for part in error["loc"] if not (isinstance(part, str) and part.startswith("function-"))]
        yaml_path = _yaml_path(loc)
        present, value = _lookup(raw, loc)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            problems.append(f"{yaml_path}: required key is missing")
        elif error["type"] == "extra_forbidden":
            problems.append(f"{yaml_path}: unknown key (value {value!r}); check its spelling against pipeline.yaml")
        elif present and not isinstance(value, (dict, list)):
            problems.append(f"{yaml_path}: {value!r} is not valid: {message}")
        else:
            problems.append(f"{yaml_path}: {message}")
    count = len(problems)
    header = f"{source}: {count} problem{'s' if count != 1 else ''}"
    return header + "".join(f"\n  {p}" for p in problems)


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Apply one ``path=value`` to the raw mapping; ``path`` is dotted with ``[i]`` list indexes."""
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {override!r}: expected path=value, e.g. inference.replicas=2 or streams[0].url=clip.mp4")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {override!r}: the value is not valid YAML: {exc}") from exc
    parts = _split_path(key.strip(), override)
    node: Any = raw
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                have = len(node) if isinstance(node, list) else 0
                raise ConfigError(f"--set {override!r}: {_yaml_path(parts[: i + 1])} does not exist (the list has {have} entries)")
            if last:
                node[part] = value
            else:
                node = node[part]
        else:
            if not isinstance(node, dict):
                raise ConfigError(f"--set {override!r}: {_yaml_path(parts[:i])} is not a mapping")
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
            raise ConfigError(f"--set {override!r}: {token!r} is not a key (letters, digits, '_', optional [index])")
        parts.append(match.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", match.group(2)))
    return parts


def _yaml_path(loc: list[Any] | tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
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
    def resolve(p: Path) -> Path:
        return p if p.is_absolute() else base_dir / p

    streams = [
        s.model_copy(update={"url": str(resolve(Path(s.url)))}) if s.is_file and not Path(s.url).is_absolute() else s
        for s in config.streams
    ]
    model = config.model
    if model.weights is not None and _looks_like_path(model.weights):
        model = model.model_copy(update={"weights": str(resolve(Path(model.weights)))})
    sinks = config.sinks
    updates: dict[str, Any] = {}
    if sinks.video is not None:
        updates["video"] = sinks.video.model_copy(update={"dir": resolve(sinks.video.dir)})
    if sinks.jsonl is not None:
        updates["jsonl"] = sinks.jsonl.model_copy(update={"dir": resolve(sinks.jsonl.dir)})
    return config.model_copy(update={"streams": streams, "model": model, "sinks": sinks.model_copy(update=updates)})


def _looks_like_path(weights: str) -> bool:
    return "/" in weights or weights.endswith((".pt", ".pth"))
