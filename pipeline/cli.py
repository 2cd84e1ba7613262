"""The ``maskstream`` command line: run, subscribe, and the tools around them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from rich.console import Console
from rich.markup import escape

from pipeline.errors import MaskstreamError

DEFAULT_CONFIG = "pipeline.yaml"


def _cmd_run(args: argparse.Namespace) -> int:
    from pipeline.config import load_config
    from pipeline.preflight import preflight

    config = load_config(args.config, args.set or [])
    # Missing files, unwritable folders, more streams than this machine holds: refused now, in a second,
    # rather than after Ray and the model started (imported only afterwards: importing Ray alone takes seconds).
    preflight(config, source=str(args.config))
    if args.no_progress:
        config = config.model_copy(update={"run": config.run.model_copy(update={"progress": False})})
    from actors.graph import PipelineRunner

    # Not a terminal (CI, a log file): a fixed, wide width so that tables are not cut to 80 columns.
    console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)
    report = PipelineRunner(config, console=console).run()
    return report.exit_code


def _cmd_subscribe(args: argparse.Namespace) -> int:
    from pipeline.client import Subscriber, format_frame_line

    with Subscriber(args.url, args.streams, channel=args.channel, idle_timeout_s=args.idle_timeout_s) as subscriber:
        print(f"subscribed to {', '.join(args.channel.format(stream=s) for s in args.streams)} on {args.url}", flush=True)
        for item in subscriber:
            print(format_frame_line(item), flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maskstream", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the pipeline described by a config file")
    run.add_argument("config", nargs="?", default=DEFAULT_CONFIG, help=f"the config file (default: {DEFAULT_CONFIG})")
    run.add_argument("--set", action="append", metavar="PATH=VALUE",
                     help="override one config value, e.g. --set inference.replicas=2 --set streams[0].max_fps=5")
    run.add_argument("--no-progress", action="store_true", help="status lines instead of progress bars")
    run.set_defaults(func=_cmd_run)

    sub = commands.add_parser("subscribe", help="print one line per frame published for the given streams")
    sub.add_argument("streams", nargs="+", help="stream ids")
    sub.add_argument("--url", default="redis://127.0.0.1:6379/0", help="Redis URL (default: %(default)s)")
    sub.add_argument("--channel", default="masks:{stream}", help="channel pattern (default: %(default)s)")
    sub.add_argument("--idle-timeout-s", type=float, default=None, help="stop after this many seconds without a message")
    sub.set_defaults(func=_cmd_subscribe)

    for register in _subcommand_modules():
        register(commands)
    return parser


# Modules that add a subcommand through a register(commands) function.
_SUBCOMMAND_MODULES = (
    "pipeline.scenes.cli", "pipeline.engine.cli", "pipeline.benchmark.cli", "pipeline.training.cli", "pipeline.evaluation.cli"
)


def _subcommand_modules() -> list[Callable[[argparse._SubParsersAction], None]]:
    import importlib

    found = []
    for module in _SUBCOMMAND_MODULES:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is not None and module.startswith(exc.name):
                continue  # that subcommand is not part of this installation
            raise
        found.append(mod.register)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except MaskstreamError as exc:
        Console(stderr=True).print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
