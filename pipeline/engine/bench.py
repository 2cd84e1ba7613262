"""Benchmark: the naive torchvision + pycocotools loop against the engine, same frames, side by side.

    maskstream bench --arch maskrcnn_resnet50_fpn --out bench-out          # or:
    python -m pipeline.engine.bench --arch maskrcnn_compact --size 320x240 --batch-sizes 1 2 4 8 \\
        --precisions fp32 bf16 --frames 16 --iters 3 --warmup 1 --threads 2 --out /tmp/bench

Rows, for each ``--instances`` mode:

- ``naive``: what users write today: ``model([frame])`` per frame in fp32 (torchvision pastes every
  mask into a full frame), the thresholded masks moved to the host and ``pycocotools.mask.encode``
  per mask (a pure-numpy encoder with byte-identical output when pycocotools is not installed).
- ``engine``: :meth:`InferenceEngine.infer` (masks pasted in their boxes and run-length encoded on
  the device; only run lengths come to the host) at each ``--batch-sizes`` and ``--precisions``, and
  for each ``--transfer``: ``rgb`` frames, or ``yuv420`` planes (what a video decoder produces:
  half the bytes to copy to the device, converted there; made from the same RGB frames).

Each row times ``--iters`` calls (batches) after ``--warmup`` untimed ones, the full call from host
uint8 frames to host RLE results (``torch.cuda.synchronize()`` around it on CUDA). Batches cycle
through ``--frames`` distinct, deterministic frames: batch ``j`` of batch size ``B`` holds frames
``(j * B + k) % frames``. Reported: frames/s (frames timed / seconds timed), p50/p99 batch latency,
peak GPU memory of the row (``torch.cuda.max_memory_allocated``, reset per row), instances per
frame, and frames/s relative to the naive row of the same mode.

Random weights never score above a usual threshold, so the modes fix the instance count:
``worst`` (score threshold 0, at most 100 detections: 100 instances per frame) and ``realistic``
(score threshold 0, at most 15).

Imports only torch, torchvision and numpy at module level: pycocotools, rich (the table) and
matplotlib (the chart) are optional and imported when used.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import itertools
import json
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision

from pipeline.engine.duplicates import DEFAULT_DUPLICATE_MASK_IOU, parse_duplicate_iou
from pipeline.engine.engine import InferenceEngine, resolve_device
from pipeline.engine.rle import compress_counts
from pipeline.errors import ConfigError, InferenceError, MaskstreamError
from pipeline.frames import Yuv420Frame
from pipeline.model.builders import ARCHS
from pipeline.model.loading import load_model
from pipeline.precision import PRECISION_SETTINGS, ChannelsLastSetting

SCHEMA_VERSION = 1
DEFAULT_ARCH = "maskrcnn_resnet50_fpn"
DEFAULT_BATCH_SIZES = (1, 2, 4, 8, 16, 32)
PRECISIONS = ("fp32", "bf16", "fp16")  # the default rows; --precisions also takes auto (pipeline.precision)


@dataclass(frozen=True)
class Mode:
    """How many instances each frame gets: the model's score threshold and detection cap."""

    name: str
    score_threshold: float
    max_detections: int


MODES = {
    "worst": Mode("worst", 0.0, 100),
    "realistic": Mode("realistic", 0.0, 15),
}


def default_size(arch: str) -> tuple[int, int]:
    """``(width, height)`` of the frames when ``--size`` is not given."""
    return (320, 240) if arch == "maskrcnn_compact" else (1920, 1080)


def _optional_import(name: str) -> Any | None:
    """The module ``name``, or ``None`` when it is not installed (the one place optional imports go through)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


# ----------------------------------------------------------------------------------------- frames


def _shape_frames(count: int, width: int, height: int, seed: int) -> list[np.ndarray]:
    """Seeded blocky colour fields with noise and a few filled rectangles and discs (numpy only)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    block = max(4, min(width, height) // 24)
    frames = []
    for _ in range(count):
        coarse = rng.integers(0, 256, size=(height // block + 1, width // block + 1, 3))
        img = np.kron(coarse, np.ones((block, block, 1)))[:height, :width]
        for _ in range(int(rng.integers(3, 9))):
            colour = rng.integers(0, 256, size=3)
            size = rng.uniform(0.05, 0.3) * min(width, height)
            cx, cy = rng.uniform(0, width), rng.uniform(0, height)
            if rng.random() < 0.5:
                inside = (np.abs(xx - cx) < size / 2) & (np.abs(yy - cy) < size / 2)
            else:
                inside = (xx - cx) ** 2 + (yy - cy) ** 2 < (size / 2) ** 2
            img[inside] = colour
        img = img + rng.normal(0.0, 6.0, size=img.shape)
        frames.append(np.ascontiguousarray(img.clip(0, 255).astype(np.uint8)))
    return frames


def make_frames(count: int, width: int, height: int, seed: int = 0) -> tuple[list[np.ndarray], str]:
    """``count`` distinct deterministic uint8 ``(H, W, 3)`` frames and where they came from:
    :mod:`pipeline.scenes` when importable (it needs PyAV and pycocotools), else numpy noise and shapes."""
    scenes = _optional_import("pipeline.scenes")
    if scenes is not None:
        try:
            config = scenes.SceneConfig(seed=seed, width=width, height=height, num_frames=count)
        except MaskstreamError:
            pass  # a size the scene generator refuses: the numpy frames below
        else:
            return [f.image for f in scenes.SceneGenerator(config)], f"pipeline.scenes (seed {seed})"
    return _shape_frames(count, width, height, seed), f"numpy noise + shapes (seed {seed})"


# ------------------------------------------------------------------------------------ naive path


def numpy_rle_encode(mask: np.ndarray) -> dict[str, Any]:
    """COCO compressed RLE of one ``(H, W)`` binary mask, as ``pycocotools.mask.encode`` returns it
    (``{"size": [H, W], "counts": bytes}``, byte-identical), in plain numpy."""
    height, width = mask.shape
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]]).astype(np.int64)
    counts = np.diff(bounds)
    if flat.size and flat[0]:
        counts = np.concatenate([[0], counts])  # COCO counts start with a run of zeros
    (string,) = compress_counts(counts, np.array([len(counts)]))
    return {"size": [int(height), int(width)], "counts": string.encode("ascii")}


def naive_encoder() -> tuple[Callable[[np.ndarray], dict[str, Any]], str]:
    """The per-mask RLE encoder of the naive path: pycocotools' when installed, else :func:`numpy_rle_encode`."""
    mask_utils = _optional_import("pycocotools.mask")
    if mask_utils is None:
        return numpy_rle_encode, "numpy"

    def encode(mask: np.ndarray) -> dict[str, Any]:
        return mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))

    return encode, "pycocotools"


class NaivePath:
    """The loop users write: one frame at a time through torchvision's ``model([frame])`` in fp32,
    full-frame masks thresholded and moved to the host, one ``encode`` per mask."""

    def __init__(self, model: torch.nn.Module, class_names: Sequence[str], device: torch.device,
                 mask_threshold: float, encode: Callable[[np.ndarray], dict[str, Any]]) -> None:
        self.model = model.eval().to(device)
        self.class_names = tuple(class_names)
        self.device = device
        self.mask_threshold = mask_threshold
        self.encode = encode

    def __call__(self, frame: np.ndarray) -> list[dict[str, Any]]:
        image = torch.from_numpy(frame).to(self.device).permute(2, 0, 1).float().div(255.0)
        with torch.inference_mode():
            output = self.model([image])[0]
        boxes = output["boxes"].cpu().numpy()
        scores = output["scores"].cpu().numpy()
        labels = output["labels"].cpu().numpy()
        masks = (output["masks"][:, 0] > self.mask_threshold).cpu().numpy()
        return [
            {"box": boxes[i].tolist(), "score": float(scores[i]), "label": self.class_names[int(labels[i])],
             "mask": self.encode(masks[i])}
            for i in range(len(scores))
        ]


# --------------------------------------------------------------------------------------- timing


@dataclass
class Row:
    mode: str
    path: str  # "naive" or "engine"
    precision: str  # what the engine ran in (auto resolved)
    batch_size: int
    channels_last: bool = False
    requested: str = ""  # the --precisions value of the row when it differs from precision (auto)
    compiled: bool = False  # the engine's backbone ran through torch.compile
    transfer: str = "rgb"  # the frames the engine gets: "rgb" (H, W, 3) arrays or "yuv420" planes (Yuv420Frame)
    batches: int = 0  # timed calls
    frames: int = 0  # frames timed
    seconds: float = 0.0  # time of the timed calls, summed
    fps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    peak_gpu_mib: float | None = None
    instances_per_frame: float | None = None
    frame_instances: list[int | None] = field(default_factory=list)  # per distinct frame, as last seen
    ratio_to_naive: float | None = None
    error: str | None = None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def batch_indices(batch: int, size: int, num_frames: int) -> list[int]:
    """Frames of batch number ``batch`` of a row of batch size ``size`` (cycling through the frames)."""
    return [(batch * size + k) % num_frames for k in range(size)]


def measure(
    row: Row,
    call: Callable[[list[Any]], list[int]],
    frames: Sequence[Any],
    *,
    iters: int,
    warmup: int,
    device: torch.device,
) -> Row:
    """Fill ``row``'s timings: ``warmup`` untimed then ``iters`` timed calls of ``call`` (instance counts per frame)."""
    size, n = row.batch_size, len(frames)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for j in range(warmup):
        call([frames[i] for i in batch_indices(j, size, n)])
    times: list[float] = []
    seen: list[int | None] = [None] * n
    total_instances = 0
    for j in range(iters):
        idx = batch_indices(j, size, n)
        batch = [frames[i] for i in idx]
        _sync(device)
        t0 = time.perf_counter()
        counts = call(batch)
        _sync(device)
        times.append(time.perf_counter() - t0)
        for i, c in zip(idx, counts):
            seen[i] = int(c)
        total_instances += sum(counts)
    lat = np.asarray(times) * 1000.0
    row.batches = iters
    row.frames = iters * size
    row.seconds = float(sum(times))
    row.fps = row.frames / row.seconds if row.seconds > 0 else math.inf
    row.p50_ms = float(np.percentile(lat, 50))
    row.p99_ms = float(np.percentile(lat, 99))
    row.instances_per_frame = total_instances / row.frames
    row.frame_instances = seen
    if device.type == "cuda":
        row.peak_gpu_mib = torch.cuda.max_memory_allocated(device) / 2**20
    return row


def _row_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


def _free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------------- run


@dataclass
class Settings:
    arch: str
    weights: str | None
    width: int
    height: int
    frames: int
    iters: int
    warmup: int
    batch_sizes: list[int]
    precisions: list[str]
    modes: list[str]
    device: str
    threads: int | None
    channels_last: ChannelsLastSetting
    compile_backbone: bool
    transfers: list[str]
    mask_threshold: float
    min_size: int
    max_size: int
    seed: int
    # The engine's duplicate rule (model.duplicate_mask_iou_threshold; None: off). The naive loop has none, so with
    # it on the engine may report fewer instances than the naive loop on a frame, never more.
    duplicate_mask_iou_threshold: float | None = DEFAULT_DUPLICATE_MASK_IOU


def settings_from_args(args: argparse.Namespace) -> Settings:
    if args.arch not in ARCHS:
        raise ConfigError(f"--arch {args.arch!r}: expected one of {', '.join(ARCHS)}")
    if args.size is None:
        width, height = default_size(args.arch)
    else:
        try:
            width, height = (int(v) for v in str(args.size).lower().split("x"))
        except ValueError:
            raise ConfigError(f"--size {args.size!r}: expected WIDTHxHEIGHT, e.g. 1920x1080") from None
        if width < 1 or height < 1:
            raise ConfigError(f"--size {args.size!r}: width and height must be >= 1")
    for name in ("frames", "iters"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        raise ConfigError(f"--warmup must be >= 0, got {args.warmup}")
    if not args.batch_sizes or min(args.batch_sizes) < 1:
        raise ConfigError(f"--batch-sizes must be >= 1, got {args.batch_sizes}")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    transfers = list(dict.fromkeys(args.transfer))
    if "yuv420" in transfers and (width % 2 or height % 2):
        raise ConfigError(f"--transfer yuv420 needs an even frame size, got --size {width}x{height}")
    weights = args.weights
    if weights is None or str(weights).strip().lower() in ("", "none", "random"):
        weights = None
    from pipeline.model import input_size

    # the size the weights were trained at unless given (a random-weights model: the arch's default)
    min_size, max_size = input_size(args.arch, weights, args.min_size, args.max_size)
    return Settings(
        arch=args.arch,
        weights=weights,
        width=width,
        height=height,
        frames=args.frames,
        iters=args.iters,
        warmup=args.warmup,
        batch_sizes=list(dict.fromkeys(args.batch_sizes)),
        precisions=list(dict.fromkeys(args.precisions)),
        modes=list(MODES) if args.instances == "both" else [args.instances],
        device=args.device,
        threads=args.threads,
        channels_last=args.channels_last,
        compile_backbone=bool(args.compile_backbone),
        transfers=transfers,
        mask_threshold=float(args.mask_threshold),
        min_size=min_size,
        max_size=max_size,
        seed=int(args.seed),
        duplicate_mask_iou_threshold=args.duplicate_mask_iou,
    )


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name} ({os.cpu_count()} cores)"


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "installed"


def environment(device: torch.device) -> dict[str, Any]:
    return {
        "device": str(device),
        "device_name": device_name(device),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "pycocotools": _version("pycocotools") if _optional_import("pycocotools.mask") is not None else None,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
    }


def run_benchmark(s: Settings, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every row; the report (what ``bench.json`` holds, without ``command``)."""
    if s.threads:
        torch.set_num_threads(s.threads)
    device = resolve_device(s.device)
    notes: list[str] = []
    precisions = []
    for p in s.precisions:
        if p == "fp16" and device.type == "cpu":
            notes.append("fp16 skipped: not supported on the CPU (use bf16)")
        elif p == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            notes.append(f"bf16 skipped: {device_name(device)} does not support it")
        else:
            precisions.append(p)
    encode, rle_impl = naive_encoder()
    if rle_impl != "pycocotools":
        notes.append("pycocotools not installed: the naive path used a pure-numpy RLE (byte-identical output)")

    first = MODES[s.modes[0]]
    torch.manual_seed(s.seed)  # random weights: the same model every run
    loaded = load_model(s.arch, s.weights, min_size=s.min_size, max_size=s.max_size,
                        score_threshold=first.score_threshold, max_detections=first.max_detections)
    base = loaded.model.eval()
    names = loaded.class_names
    frames, frame_source = make_frames(s.frames, s.width, s.height, s.seed)
    # the engine's input per transfer form: YUV 4:2:0 planes are what a decoder hands over (no host conversion)
    engine_frames: dict[str, list[Any]] = {"rgb": list(frames)}
    if "yuv420" in s.transfers:
        engine_frames["yuv420"] = [Yuv420Frame.from_rgb(f) for f in frames]
    log(f"{s.arch} ({loaded.source}), {s.frames} frames {s.width}x{s.height} from {frame_source}, "
        f"on {device_name(device)}, {torch.get_num_threads()} threads")

    rows: list[Row] = []
    for mode_name in s.modes:
        mode = MODES[mode_name]
        base.roi_heads.score_thresh = mode.score_threshold
        base.roi_heads.detections_per_img = mode.max_detections

        naive_row = Row(mode=mode.name, path="naive", precision="fp32", batch_size=1)
        naive: NaivePath | None = None
        try:
            naive = NaivePath(copy.deepcopy(base), names, device, s.mask_threshold, encode)
            measure(naive_row, lambda batch, path=naive: [len(path(f)) for f in batch], frames,
                    iters=s.iters, warmup=s.warmup, device=device)
        except (InferenceError, RuntimeError) as exc:  # CUDA out of memory is a RuntimeError
            naive_row.error = _row_error(exc)
        del naive
        _free(device)
        naive_row.ratio_to_naive = 1.0 if naive_row.fps else None
        rows.append(naive_row)
        log(_progress(naive_row))

        for precision in precisions:
            engine: InferenceEngine | None = None
            try:
                engine = InferenceEngine(copy.deepcopy(base), names, device=device, precision=precision,  # type: ignore[arg-type]
                                         mask_threshold=s.mask_threshold, channels_last=s.channels_last,
                                         compile_backbone=s.compile_backbone,
                                         duplicate_mask_iou_threshold=s.duplicate_mask_iou_threshold)
            except (InferenceError, RuntimeError) as exc:
                for b in s.batch_sizes:
                    row = Row(mode=mode.name, path="engine", precision=precision, batch_size=b,
                              channels_last=s.channels_last is True, compiled=s.compile_backbone, error=_row_error(exc))
                    rows.append(row)
                    log(_progress(row))
                continue
            choice = engine.choice
            if "auto" in (precision, s.channels_last):
                note = f"{precision} / channels-last {s.channels_last}: {choice.describe()}"
                if note not in notes:
                    notes.append(note)
                    log("  " + note)
            for transfer, b in itertools.product(s.transfers, s.batch_sizes):
                row = Row(mode=mode.name, path="engine", precision=choice.precision, batch_size=b,
                          channels_last=choice.channels_last, compiled=s.compile_backbone, transfer=transfer,
                          requested=precision if precision != choice.precision else "")
                try:
                    measure(row, lambda batch, path=engine: [len(d) for d in path.infer(batch)],
                            engine_frames[transfer], iters=s.iters, warmup=s.warmup, device=device)
                except (InferenceError, RuntimeError) as exc:
                    row.error = _row_error(exc)
                    _free(device)
                if row.fps and naive_row.fps:
                    row.ratio_to_naive = row.fps / naive_row.fps
                rows.append(row)
                log(_progress(row))
            engine.close()
            del engine
            _free(device)

    exact = s.duplicate_mask_iou_threshold is None
    checks = instance_checks(rows, exact=exact)
    for mode_name, ok in checks.items():
        if ok is False:
            notes.append(f"{mode_name}: the fp32 engine rows saw other instance counts than the naive row"
                         + ("" if exact else " (more on a frame: the duplicate rule only removes)"))
    return {
        "schema": SCHEMA_VERSION,
        "environment": environment(device),
        "settings": {**asdict(s), "frame_source": frame_source, "model_source": loaded.source,
                     "naive_rle": rle_impl, "precisions_run": precisions,
                     "modes": {m: asdict(MODES[m]) for m in s.modes}},
        "notes": notes,
        "fp32_instances_match_naive": checks,
        "rows": [asdict(r) for r in rows],
    }


def instance_checks(rows: Sequence[Row], *, exact: bool = True) -> dict[str, bool | None]:
    """Per mode: do the fp32 RGB engine rows report the naive row's instance count on every frame both saw
    (``exact``), or at most that many (the engine's duplicate rule on: it only removes)? (``None``: nothing to
    compare.)"""
    out: dict[str, bool | None] = {}
    for mode in dict.fromkeys(r.mode for r in rows):
        naive = next((r for r in rows if r.mode == mode and r.path == "naive" and r.error is None), None)
        engines = [r for r in rows if r.mode == mode and r.path == "engine" and r.precision == "fp32"
                   and r.transfer == "rgb" and r.error is None]
        if naive is None or not engines:
            out[mode] = None
            continue
        out[mode] = all(
            (b == a if exact else b <= a)
            for r in engines
            for a, b in zip(naive.frame_instances, r.frame_instances)
            if a is not None and b is not None
        )
    return out


# ------------------------------------------------------------------------------------ reporting


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


TABLE_COLUMNS = ("mode", "path", "precision", "batch", "frames/s", "p50 ms", "p99 ms", "peak GPU MiB",
                 "inst/frame", "x naive")


def _path_label(row: dict[str, Any]) -> str:
    """``naive``, ``engine``, ``engine yuv420``, ``engine (NHWC)``..."""
    label = row["path"]
    if row["path"] == "engine" and row.get("transfer", "rgb") != "rgb":
        label += " " + row["transfer"]
    if row.get("compiled"):
        label += " compiled"
    return label + (" (NHWC)" if row["channels_last"] else "")


def _precision_label(row: dict[str, Any]) -> str:
    """``bf16``, or ``auto=bf16`` for a row that asked for auto."""
    requested = row.get("requested") or ""
    return f"{requested}={row['precision']}" if requested else row["precision"]


def table_cells(row: dict[str, Any]) -> list[str]:
    if row["error"]:
        return [row["mode"], _path_label(row), _precision_label(row), str(row["batch_size"]),
                "error: " + row["error"][:60], "", "", "", "", ""]
    return [
        row["mode"], _path_label(row), _precision_label(row), str(row["batch_size"]),
        _fmt(row["fps"], ".2f"), _fmt(row["p50_ms"], ".1f"), _fmt(row["p99_ms"], ".1f"),
        _fmt(row["peak_gpu_mib"], ".0f"), _fmt(row["instances_per_frame"], ".1f"),
        _fmt(row["ratio_to_naive"], ".2f"),
    ]


def header_lines(report: dict[str, Any]) -> list[str]:
    env, st = report["environment"], report["settings"]
    lines = [
        f"device: {env['device_name']} [{env['device']}]  threads: {env['threads']}",
        f"torch {env['torch']}  torchvision {env['torchvision']}  numpy {env['numpy']}"
        + (f"  CUDA {env['cuda']}" if env["cuda"] else "")
        + f"  pycocotools {env['pycocotools'] or '(not installed)'}",
        f"command: {report.get('command', '')}",
        f"model: {st['arch']} ({st['model_source']}), input {st['min_size']}/{st['max_size']}; "
        f"frames: {st['frames']} x {st['width']}x{st['height']} ({st['frame_source']}); "
        f"{st['iters']} timed + {st['warmup']} warm-up batches per row",
    ]
    lines += [f"note: {n}" for n in report["notes"]]
    return lines


def plain_table(report: dict[str, Any]) -> str:
    cells = [list(TABLE_COLUMNS)] + [table_cells(r) for r in report["rows"]]
    widths = [max(len(c[i]) for c in cells) for i in range(len(TABLE_COLUMNS))]
    lines = []
    for k, c in enumerate(cells):
        lines.append("  ".join(v.ljust(w) if i < 3 else v.rjust(w) for i, (v, w) in enumerate(zip(c, widths))).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_report(report: dict[str, Any], out: Any = None) -> None:
    """Header and table: with rich when installed, else plain text."""
    out = sys.stdout if out is None else out
    rich_console = _optional_import("rich.console")
    rich_table = _optional_import("rich.table")
    if rich_console is None or rich_table is None:
        print("\n".join(header_lines(report)), file=out)
        print(plain_table(report), file=out, flush=True)
        return
    console = rich_console.Console(file=out, width=None if getattr(out, "isatty", lambda: False)() else 150)
    for line in header_lines(report):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    table = rich_table.Table(show_edge=False)
    for i, name in enumerate(TABLE_COLUMNS):
        table.add_column(name, justify="left" if i < 3 else "right", no_wrap=True)
    previous = None
    for r in report["rows"]:
        if previous is not None and r["mode"] != previous:
            table.add_section()
        previous = r["mode"]
        table.add_row(*table_cells(r), style="bold" if r["path"] == "naive" else None)
    console.print(table)


def write_chart(report: dict[str, Any], path: Path) -> bool:
    """``bench.png``: frames/s by batch size, one line per precision, the naive row as a dashed line;
    one panel per mode. ``False`` when matplotlib is not installed."""
    figure_mod = _optional_import("matplotlib.figure")
    agg = _optional_import("matplotlib.backends.backend_agg")
    if figure_mod is None or agg is None:
        return False
    rows = [r for r in report["rows"] if r["error"] is None]
    modes = list(dict.fromkeys(r["mode"] for r in report["rows"]))
    fig = figure_mod.Figure(figsize=(6.0 * len(modes), 4.5), layout="constrained")
    agg.FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(modes), squeeze=False)[0]
    env, st = report["environment"], report["settings"]
    for ax, mode in zip(axes, modes):
        naive = next((r for r in rows if r["mode"] == mode and r["path"] == "naive"), None)
        lines = dict.fromkeys((_precision_label(r), r.get("transfer", "rgb"), r["channels_last"])
                              for r in rows if r["path"] == "engine")
        for k, (precision, transfer, nhwc) in enumerate(lines):
            pts = sorted((r["batch_size"], r["fps"], r["ratio_to_naive"]) for r in rows
                         if r["mode"] == mode and r["path"] == "engine" and _precision_label(r) == precision
                         and r.get("transfer", "rgb") == transfer and r["channels_last"] == nhwc)
            if not pts:
                continue
            xs, ys, ratios = zip(*pts)
            label = f"engine {precision}" + ("" if transfer == "rgb" else f" {transfer}")
            label += " compiled" if st.get("compile_backbone") else ""
            ax.plot(xs, ys, marker="o", label=label + (" NHWC" if nhwc else ""))
            for x, y, ratio in zip(xs, ys, ratios):
                if ratio is not None:
                    ax.annotate(f"{ratio:.1f}x", (x, y), textcoords="offset points",  # x naive; alternately above/below
                                xytext=(0, 6 if k % 2 == 0 else -12), ha="center", fontsize=7)
        if naive is not None:
            ax.axhline(naive["fps"], color="black", linestyle="--", label=f"naive fp32 ({naive['fps']:.2f}/s)")
        ax.set_xscale("log", base=2)
        sizes = sorted({r["batch_size"] for r in rows if r["mode"] == mode and r["path"] == "engine"})
        if sizes:
            ax.set_xticks(sizes, [str(b) for b in sizes])
        top = max([r["fps"] for r in rows if r["mode"] == mode], default=1.0)
        ax.set_ylim(0, top * 1.15)
        ax.set_xlabel("batch size (frames per call)")
        ax.set_ylabel("frames/s")
        m = st["modes"][mode]
        ax.set_title(f"{mode}: at most {m['max_detections']} instances/frame", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{st['arch']} {st['width']}x{st['height']} on {env['device_name']}, torch {env['torch']}",
                 fontsize=10)
    fig.savefig(path, dpi=110)
    return True


def write_outputs(report: dict[str, Any], out_dir: Path) -> None:
    """``bench.png`` (if matplotlib is installed; a note otherwise) and ``bench.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if write_chart(report, out_dir / "bench.png"):
        report["chart"] = "bench.png"
    else:
        report["chart"] = None
        report["notes"].append("matplotlib not installed: skipped the chart (bench.png)")
    text = json.dumps(report, indent=2, allow_nan=False)
    tmp = out_dir / "bench.json.tmp"
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, out_dir / "bench.json")


def run(args: argparse.Namespace, command: Sequence[str]) -> int:
    """Run the benchmark ``args`` describe (from :func:`add_arguments`); print the table, write ``--out``.
    ``command``: the command line as typed (its words), recorded in ``bench.json``."""
    settings = settings_from_args(args)
    report = run_benchmark(settings, log=lambda line: print(line, file=sys.stderr, flush=True))
    report = {"schema": report.pop("schema"), "command": shlex.join(command), "argv": list(command), **report}
    if args.out is not None:
        write_outputs(report, Path(args.out))
    print_report(report)
    if args.out is not None:
        print(f"wrote {Path(args.out) / 'bench.json'}" + (f" and {Path(args.out) / 'bench.png'}" if report["chart"] else ""))
    return 0


# -------------------------------------------------------------------------------- command line


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``maskstream bench`` and ``python -m pipeline.engine.bench`` (the same)."""
    p.add_argument("--arch", default=DEFAULT_ARCH, choices=ARCHS, help="model architecture (default: %(default)s)")
    p.add_argument("--weights", default="none", help="none (random weights, the default) or a checkpoint path")
    p.add_argument("--size", default=None, metavar="WxH",
                   help="frame size (default: 1920x1080 for the COCO archs, 320x240 for maskrcnn_compact)")
    p.add_argument("--frames", type=int, default=16, help="distinct frames, generated deterministically (default: %(default)s)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=list(DEFAULT_BATCH_SIZES), metavar="B",
                   help="engine batch sizes (default: %(default)s)")
    p.add_argument("--precisions", nargs="+", choices=PRECISION_SETTINGS, default=list(PRECISIONS),
                   help="engine precisions (default: %(default)s; fp16 is skipped on the CPU; auto: what "
                        "model.precision: auto chooses on this device, the shipped default)")
    p.add_argument("--channels-last", nargs="?", type=_layout, const=True, default=False, metavar="auto|true|false",
                   help="run the engine's backbone in NHWC (--channels-last alone: true; auto: on with bf16/fp16, "
                        "the shipped default; default: false)")
    p.add_argument("--compile-backbone", action="store_true",
                   help="torch.compile the engine's backbone (CUDA graphs on a GPU); --warmup >= 1 keeps the "
                        "compilation out of the timings")
    p.add_argument("--transfer", nargs="+", choices=("rgb", "yuv420"), default=["rgb"],
                   help="the engine's input: RGB arrays, and/or YUV 4:2:0 planes as decoders produce them "
                        "(half the bytes; converted on the device) (default: %(default)s)")
    p.add_argument("--instances", choices=(*MODES, "both"), default="both",
                   help="worst: score threshold 0, max 100 detections; realistic: score threshold 0, max 15 "
                        "(default: %(default)s)")
    p.add_argument("--iters", type=int, default=10, help="timed batches per row (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=2, help="untimed batches per row before timing (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:<i> (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--out", type=Path, default=None, help="folder for bench.json and bench.png")
    p.add_argument("--mask-threshold", type=float, default=0.5, help="mask probability threshold (default: %(default)s)")
    p.add_argument("--min-size", type=int, default=None, help="model input short side (default: the weights' training size, else the arch's)")
    p.add_argument("--max-size", type=int, default=None, help="model input long side at most (default: the weights' training size, else the arch's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the frames and of random weights (default: %(default)s)")
    p.add_argument("--duplicate-mask-iou", type=parse_duplicate_iou, default=DEFAULT_DUPLICATE_MASK_IOU, metavar="IOU|off",
                   help="the engine's duplicate rule, model.duplicate_mask_iou_threshold (default: %(default)s; off: none)")


def _layout(text: str) -> ChannelsLastSetting:
    value = text.strip().lower()
    if value == "auto":
        return "auto"
    if value in ("true", "on", "yes", "1"):
        return True
    if value in ("false", "off", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"--channels-last takes auto, true or false, got {text!r}")


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser("python -m pipeline.engine.bench").parse_args(argv)
    try:
        return run(args, command=["python", "-m", "pipeline.engine.bench", *argv])
    except MaskstreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _progress(row: Row) -> str:
    if row.error:
        return f"  {row.mode:9s} {_path_label(asdict(row)):6s} {_precision_label(asdict(row))} batch {row.batch_size:3d}: error: {row.error}"
    return (f"  {row.mode:9s} {_path_label(asdict(row)):6s} {_precision_label(asdict(row))} batch {row.batch_size:3d}: {row.fps:8.2f} frames/s, "
            f"p50 {row.p50_ms:.1f} ms, {row.instances_per_frame:.1f} instances/frame")


if __name__ == "__main__":
    sys.exit(main())
