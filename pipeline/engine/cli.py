"""``maskstream bench``: the naive torchvision + pycocotools loop against the engine (see :mod:`pipeline.engine.bench`).

    maskstream bench --arch maskrcnn_compact --size 320x240 --batch-sizes 1 2 4 8 --precisions fp32 bf16 --out /tmp/b

``python -m pipeline.engine.bench`` takes the same options, for machines with only torch, torchvision and numpy.
"""

from __future__ import annotations

import argparse
import sys


def register(commands: argparse._SubParsersAction) -> None:
    from pipeline.engine import bench

    p = commands.add_parser(
        "bench",
        help="frames/s of the engine (batch sizes x precisions) against the naive torchvision + pycocotools loop",
        description=bench.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_arguments(p)
    p.set_defaults(func=_run)


def _command(args: argparse.Namespace) -> list[str]:
    """The command line as typed when this process is ``maskstream bench ...``; else an equivalent one."""
    if sys.argv[1:2] == ["bench"]:
        return ["maskstream", *sys.argv[1:]]
    words = ["maskstream", "bench"]
    for key, value in vars(args).items():
        if key in ("command", "func") or value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            words.append(flag)
        elif isinstance(value, list):
            words += [flag, *(str(v) for v in value)]
        else:
            words += [flag, str(value)]
    return words


def _run(args: argparse.Namespace) -> int:
    from pipeline.engine import bench

    return bench.run(args, command=_command(args))
