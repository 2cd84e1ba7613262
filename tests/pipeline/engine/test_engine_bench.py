"""``maskstream bench`` / ``python -m pipeline.engine.bench``: a tiny CPU run, its JSON and chart, and the
fallbacks without pycocotools, matplotlib and rich. No wall-clock assertions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from pipeline.cli import build_parser
from pipeline.engine import bench

TINY = ["--arch", "maskrcnn_compact", "--size", "96x96", "--frames", "2", "--iters", "1", "--warmup", "0",
        "--precisions", "fp32", "--device", "cpu"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, int]:
    out = tmp_path_factory.mktemp("bench")
    code = bench.main([*TINY, "--batch-sizes", "1", "2", "--instances", "both", "--out", str(out)])
    report = json.loads((out / "bench.json").read_text())
    return report, out, code


def test_json_structure(tiny_run: tuple[dict[str, Any], Path, int]) -> None:
    report, out, code = tiny_run
    assert code == 0
    assert report["schema"] == bench.SCHEMA_VERSION
    assert report["command"].startswith("python -m pipeline.engine.bench --arch maskrcnn_compact")
    assert report["argv"][:3] == ["python", "-m", "pipeline.engine.bench"]
    env = report["environment"]
    assert env["device"] == "cpu" and env["device_name"] and env["cuda"] is None
    assert env["torch"] and env["torchvision"] and env["pycocotools"]
    st = report["settings"]
    assert (st["arch"], st["width"], st["height"], st["frames"]) == ("maskrcnn_compact", 96, 96, 2)
    assert st["batch_sizes"] == [1, 2] and st["precisions_run"] == ["fp32"] and st["naive_rle"] == "pycocotools"
    assert st["modes"] == {"worst": {"name": "worst", "score_threshold": 0.0, "max_detections": 100},
                           "realistic": {"name": "realistic", "score_threshold": 0.0, "max_detections": 15}}
    assert report["chart"] == "bench.png"
    rows = report["rows"]
    assert [(r["mode"], r["path"], r["precision"], r["batch_size"]) for r in rows] == [
        (mode, path, "fp32", b)
        for mode in ("worst", "realistic")
        for path, b in (("naive", 1), ("engine", 1), ("engine", 2))
    ]
    for r in rows:
        assert r["error"] is None
        assert r["batches"] == 1 and r["frames"] == r["batch_size"]
        assert r["fps"] > 0 and 0 < r["p50_ms"] <= r["p99_ms"]
        assert r["peak_gpu_mib"] is None  # CPU
        assert len(r["frame_instances"]) == 2


def test_same_instances_and_consistent_ratios(tiny_run: tuple[dict[str, Any], Path, int]) -> None:
    report, _, _ = tiny_run
    expected = {"worst": 100, "realistic": 15}  # random weights, score threshold 0: the cap is reached
    assert report["fp32_instances_match_naive"] == {"worst": True, "realistic": True}
    for mode, cap in expected.items():
        rows = [r for r in report["rows"] if r["mode"] == mode]
        naive = rows[0]
        assert naive["path"] == "naive" and naive["ratio_to_naive"] == 1.0
        assert naive["frame_instances"][0] == cap and naive["instances_per_frame"] == cap
        for r in rows[1:]:
            assert r["instances_per_frame"] == cap
            seen = [(a, b) for a, b in zip(naive["frame_instances"], r["frame_instances"]) if a is not None and b is not None]
            assert seen and all(a == b for a, b in seen)  # same detections per frame as the naive loop
            assert r["ratio_to_naive"] == pytest.approx(r["fps"] / naive["fps"], rel=1e-12)
            assert r["fps"] == pytest.approx(r["frames"] / r["seconds"], rel=1e-12)


def test_png_and_table(tiny_run: tuple[dict[str, Any], Path, int]) -> None:
    _, out, _ = tiny_run
    png = (out / "bench.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def _without(missing: tuple[str, ...], calls: list[str]):  # type: ignore[no-untyped-def]
    real = bench._optional_import

    def fake(name: str) -> Any:
        calls.append(name)
        if name.split(".")[0] in missing or name.startswith("pipeline.scenes"):
            return None  # pipeline.scenes needs pycocotools (and PyAV): gone with it
        return real(name)

    return fake


def test_fallbacks_without_pycocotools_matplotlib_rich(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(bench, "_optional_import", _without(("pycocotools", "matplotlib", "rich"), calls))
    code = bench.main([*TINY, "--batch-sizes", "1", "--instances", "realistic", "--out", str(tmp_path)])
    assert code == 0
    assert {"pycocotools.mask", "matplotlib.figure", "rich.console"} <= set(calls)
    report = json.loads((tmp_path / "bench.json").read_text())
    assert not (tmp_path / "bench.png").exists() and report["chart"] is None
    assert report["settings"]["naive_rle"] == "numpy"
    assert report["settings"]["frame_source"].startswith("numpy")
    assert report["environment"]["pycocotools"] is None
    notes = " | ".join(report["notes"])
    assert "pure-numpy RLE" in notes and "skipped the chart" in notes
    assert [(r["mode"], r["path"]) for r in report["rows"]] == [("realistic", "naive"), ("realistic", "engine")]
    assert report["fp32_instances_match_naive"] == {"realistic": True}
    stdout = capsys.readouterr().out
    assert "skipped the chart" in stdout and "pure-numpy RLE" in stdout
    assert "frames/s" in stdout and "x naive" in stdout and "┃" not in stdout  # the plain table
    assert report["command"] in stdout


def test_numpy_rle_is_byte_identical_to_pycocotools() -> None:
    rng = np.random.default_rng(0)
    for k in range(200):
        h, w = (int(v) for v in rng.integers(1, 30, size=2))
        mask = rng.random((h, w)) < rng.random()
        if k % 10 == 0:
            mask[:] = k % 20 == 0
        ref = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
        ours = bench.numpy_rle_encode(mask)
        assert ours["counts"] == ref["counts"] and ours["size"] == list(ref["size"])


def test_frames_are_deterministic_and_fallback_frames_too(monkeypatch: pytest.MonkeyPatch) -> None:
    a, source = bench.make_frames(3, 64, 48)
    b, _ = bench.make_frames(3, 64, 48)
    assert source.startswith("pipeline.scenes")
    assert all(x.shape == (48, 64, 3) and x.dtype == np.uint8 and np.array_equal(x, y) for x, y in zip(a, b))
    monkeypatch.setattr(bench, "_optional_import", _without((), []))
    c, source = bench.make_frames(3, 64, 48)
    d, _ = bench.make_frames(3, 64, 48)
    assert source.startswith("numpy")
    assert all(np.array_equal(x, y) for x, y in zip(c, d)) and not np.array_equal(c[0], c[1])


def test_cli_subcommand_and_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["bench", "--arch", "maskrcnn_compact", "--batch-sizes", "1", "4",
                                      "--precisions", "fp32", "bf16", "--channels-last", "--out", "x"])
    assert args.func is not None and args.batch_sizes == [1, 4] and args.channels_last
    st = bench.settings_from_args(args)
    assert (st.width, st.height, st.modes, st.weights) == (320, 240, ["worst", "realistic"], None)
    coco = bench.settings_from_args(build_parser().parse_args(["bench"]))
    assert (coco.arch, coco.width, coco.height, coco.batch_sizes) == ("maskrcnn_resnet50_fpn", 1920, 1080,
                                                                     [1, 2, 4, 8, 16, 32])
    assert bench.main(["--arch", "maskrcnn_compact", "--size", "96by96"]) == 2
    assert bench.main(["--arch", "maskrcnn_compact", "--iters", "0"]) == 2
    err = capsys.readouterr().err
    assert "--size '96by96'" in err and "--iters must be >= 1" in err


def test_yuv420_transfer_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = bench.main([*TINY, "--batch-sizes", "2", "--instances", "realistic", "--transfer", "rgb", "yuv420",
                       "--out", str(tmp_path)])
    assert code == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    rows = report["rows"]
    assert [(r["path"], r["transfer"]) for r in rows] == [("naive", "rgb"), ("engine", "rgb"), ("engine", "yuv420")]
    assert all(r["error"] is None and r["instances_per_frame"] == 15 for r in rows)
    assert "engine yuv420" in capsys.readouterr().out  # the table names the row's input
    assert bench.main([*TINY, "--size", "95x96", "--transfer", "yuv420"]) == 2
    assert "--transfer yuv420 needs an even frame size, got --size 95x96" in capsys.readouterr().err


def test_instance_checks_want_equal_counts_or_with_the_duplicate_rule_at_most_the_naive_ones():
    Row, instance_checks = bench.Row, bench.instance_checks
    naive = Row(mode="m", path="naive", precision="fp32", batch_size=1, frame_instances=[3, 2, None])
    fewer = Row(mode="m", path="engine", precision="fp32", batch_size=4, frame_instances=[2, 2, 5])
    same = Row(mode="m", path="engine", precision="fp32", batch_size=4, frame_instances=[3, 2, 1])
    more = Row(mode="m", path="engine", precision="fp32", batch_size=4, frame_instances=[4, 2, None])
    assert instance_checks([naive, same]) == {"m": True}
    assert instance_checks([naive, fewer]) == {"m": False}
    assert instance_checks([naive, fewer], exact=False) == {"m": True}
    assert instance_checks([naive, more], exact=False) == {"m": False}
