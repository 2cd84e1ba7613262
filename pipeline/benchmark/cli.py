"""``maskstream bench-pipeline``: frames/s of the real actor graph (model not run) against decoding alone.

    maskstream bench-pipeline --sizes 1280x720 1920x1080 --streams 1 8 --frames 600 \\
        --redis redis://127.0.0.1:6379/0 --out docs/bench/pipeline

For each size and stream count: the same N H.264 files decoded by N processes at once (the host's limit), then
the whole actor graph on them (real Ray, sources, dispatcher, inference actors, output actors tracking and
publishing) with the model replaced by a benchmark-only engine that returns 15 fixed detections with masks
per frame without computing anything. Writes OUT/bench.json and OUT/bench.png. The files are generated once
into --videos-dir (moving shapes, libx264 crf 23).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pipeline.errors import ConfigError


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("bench-pipeline", help="frames/s of the actor graph (model NOT run) against decoding alone",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", type=_size, default=[(1280, 720), (1920, 1080)], metavar="WxH",
                   help="frame sizes (default: 1280x720 1920x1080)")
    p.add_argument("--streams", nargs="+", type=int, default=[1, 8], metavar="N", help="stream counts (default: 1 8)")
    p.add_argument("--frames", type=int, default=600, help="frames per file (default: %(default)s)")
    p.add_argument("--instances", type=int, default=15, help="fixed detections per frame (default: %(default)s)")
    p.add_argument("--replicas", type=int, default=1, help="inference actors (default: %(default)s)")
    p.add_argument("--max-batch-size", type=int, default=8, help="inference.max_batch_size (default: %(default)s)")
    p.add_argument("--transfer", choices=("yuv420", "rgb"), default="yuv420",
                   help="inference.transfer_format, and what decoding alone converts to (default: %(default)s)")
    p.add_argument("--redis", default=None, metavar="URL", help="also publish to this Redis (default: JSON Lines only)")
    p.add_argument("--video", action="store_true", help="also write the annotated video (drawing + H.264 encoding)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    p.add_argument("--videos-dir", type=Path, default=Path(".bench-videos"),
                   help="where the generated H.264 files are cached (default: %(default)s)")
    p.add_argument("--out", type=Path, default=None, help="folder for bench.json and bench.png")
    p.set_defaults(func=_run)


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 1280x720, got {text!r}") from None
    return width, height


def _run(args: argparse.Namespace) -> int:
    from pipeline.benchmark import report as rep

    for name in ("frames", "replicas", "max_batch_size"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if any(n < 1 for n in args.streams):
        raise ConfigError(f"--streams: every count must be >= 1, got {args.streams}")
    settings = rep.BenchSettings(sizes=list(args.sizes), streams=list(args.streams), frames=args.frames,
                                 instances=args.instances, replicas=args.replicas, max_batch_size=args.max_batch_size,
                                 transfer=args.transfer, redis_url=args.redis, video_sink=args.video,
                                 num_cpus=args.num_cpus, videos_dir=args.videos_dir)
    console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
    console.print(f"[bold red]{rep.MODEL_NOT_RUN}[/bold red]", highlight=False, soft_wrap=True)
    from actors.bench import run_bench  # Ray and the actors: only when the bench runs

    cases = run_bench(settings, console=console, log=lambda line: console.print(line, highlight=False))
    command = shlex.join(["maskstream", *sys.argv[1:]]) if sys.argv[1:2] == ["bench-pipeline"] else "maskstream bench-pipeline"
    report = rep.report_dict(settings, cases, command)
    table = Table(title="maskstream bench-pipeline (the model was NOT run)")
    for column in rep.TABLE_COLUMNS:
        table.add_column(column)
    for row in rep.table_rows(report):
        table.add_row(*row)
    console.print(table)
    console.print(f"[bold red]{rep.MODEL_NOT_RUN}[/bold red]", highlight=False, soft_wrap=True)
    errors = [e for c in report["cases"] for e in c["graph"]["errors"]]
    for error in errors:
        console.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
    if args.out is not None:
        json_path = rep.write_json(report, args.out / "bench.json")
        drawn = rep.write_chart(report, args.out / "bench.png")
        console.print(f"wrote {json_path}" + (f" and {args.out / 'bench.png'}" if drawn else ""), highlight=False)
    return 1 if errors else 0
