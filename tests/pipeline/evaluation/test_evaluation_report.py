"""The report: targets (PASS/FAIL/SKIP), JSON + PNG files, rich tables, and the ``maskstream eval`` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from pipeline.evaluation import report as rep


def ap(v: float) -> dict:
    return {"segm": {"AP": v, "AP50": v, "AP75": v}, "bbox": {"AP": v, "AP50": v, "AP75": v}}


def mot(mota: float, idf1: float) -> dict:
    return {"MOTA": mota, "IDF1": idf1, "HOTA": 0.8, "IDSW": 1, "CLR_TP": 10, "CLR_FN": 1, "CLR_FP": 0}


def ood(precision: float, recall: float, mask_ap: float, duplicates: int) -> dict:
    """An ``ood`` section: 100 objects, and published instances making the given precision and recall."""
    tp = round(recall * 100)
    fp = round(tp / precision) - tp
    counts = {"published": tp + fp, "tp": tp, "fp": fp, "gt": 100, "missed": 100 - tp, "precision": precision,
              "recall": recall}
    none = {"published": 0, "tp": 0, "fp": 0, "gt": 0, "missed": 0, "precision": None, "recall": None}
    return {
        "frames": 25, "gt_instances": 100, "codec": "h264 (libx264 crf 23)", "score_threshold": 0.5, "match_iou": 0.5,
        **ap(mask_ap),
        "mask_breakdown": {"class_agnostic": 0.6, "small": 0.2, "medium": 0.5, "large": None,
                           "per_class": {"circle": 0.7, "square": 0.4, "triangle": 0.5, "star": 0.6}},
        "at_threshold": {
            "all": counts, "class_agnostic": {"tp": tp, "fp": fp, "precision": precision, "recall": recall},
            "per_class": {"circle": counts, "square": none, "triangle": none, "star": none},
            "by_size": {"small": counts, "medium": none, "large": none},
            "by_tag": {t: {"gt": 10, "missed": 1, "recall": 0.9} for t in ("plain", "low_contrast", "edge", "occluded")},
            "false_positives": {"duplicate": duplicates, "wrong_class": 0, "poor_mask": 0, "distractor": 0,
                                "background": fp - duplicates, "at_edge": 3},
            "duplicate_pairs": duplicates, "frames_with_duplicates": min(duplicates, 1),
        },
        "worst_frames": [{"frame": 3, "seed": 3, "false_positives": 2, "fp_kinds": ["background", "duplicate"],
                          "misses": 1, "gt": 4, "picture": "/tmp/x/ood_worst_1.png"}],
    }


def full_report() -> dict:
    return {
        "settings": {},
        "model": {"frames": 10, **ap(0.85), "at_threshold": {
            k: v for k, v in ood(0.97, 0.96, 0.85, 0)["at_threshold"].items() if k != "by_tag"}},
        "ood": ood(0.4, 0.92, 0.75, 2),
        "pipeline": {
            "videos": 1, "frames": 20, "pipeline": ap(0.70), "model_same_frames": ap(0.705),
            "ap_difference": {"segm": {"AP": -0.005}, "bbox": {"AP": -0.02}}, "tracking": mot(0.95, 0.89),
        },
        "tracker": {"clips": 1, "frames_per_clip": 10, "seed": 0, "levels": [
            {"level": 0, "jitter_px": 0.0, "miss_prob": 0.0, "fp_per_frame": 0.0, "ours": mot(1.0, 1.0), "peer": mot(0.98, 0.99)},
            {"level": 1, "jitter_px": 2.0, "miss_prob": 0.1, "fp_per_frame": 1.0, "ours": mot(0.8, 0.85), "peer": mot(0.8, 0.9)},
        ], "walkers": {"clips": 1, "frames_per_clip": 20, "seed": 0, "levels": [
            {"level": 0, "jitter_frac": 0.0, "miss_prob": 0.0, "fp_per_frame": 0.0, "ours": mot(0.93, 0.92), "peer": mot(0.92, 0.9)},
            {"level": 1, "jitter_frac": 0.02, "miss_prob": 0.05, "fp_per_frame": 0.5, "ours": mot(0.85, 0.8), "peer": mot(0.86, 0.79)},
        ]}},
    }


def test_targets_pass_and_fail() -> None:
    report = rep.finalize(full_report())
    status = {t["name"].split(" (peer")[0]: t["status"] for t in report["targets"]}
    assert status == {
        "model mask AP@[.5:.95] (held-out frames)": "PASS",
        "OOD precision (score >= 0.5, mask IoU 0.5)": "FAIL",
        "OOD recall (score >= 0.5, mask IoU 0.5)": "PASS",
        "OOD mask AP@[.5:.95]": "PASS",
        "OOD duplicate pairs (published, same frame, mask IoU > 0.5)": "FAIL",
        "pipeline mask AP - model mask AP (same frames)": "PASS",
        "pipeline box AP - model box AP (same frames)": "FAIL",
        "pipeline IDF1": "FAIL",
        "pipeline MOTA": "PASS",
        "tracker IDF1, noise level 0": "PASS",
        "tracker IDF1, noise level 1": "FAIL",
        "tracker IDF1 on walkers, noise level 0": "PASS",
        "tracker MOTA on walkers, noise level 0": "PASS",
        "tracker IDF1 on walkers, noise level 1": "PASS",
        "tracker MOTA on walkers, noise level 1": "FAIL",
    }
    assert report["passed"] is False


def test_skipped_sections_are_skip_not_fail() -> None:
    report = rep.finalize({"settings": {}, "model": None, "pipeline": None, "tracker": None})
    assert {t["status"] for t in report["targets"]} == {"SKIP"}
    assert report["passed"] is True
    assert sum(t["name"].startswith("OOD ") for t in report["targets"]) == 4


@pytest.mark.parametrize(("section", "passed"), [(ood(0.95, 0.9, 0.7, 0), True), (ood(0.95, 0.88, 0.7, 0), False),
                                                 (ood(0.95, 0.95, 0.69, 0), False), (ood(0.95, 0.95, 0.8, 1), False)])
def test_ood_targets_at_their_bounds(section: dict, passed: bool) -> None:
    targets = [t for t in rep.check_targets({"settings": {}, "ood": section}) if t["name"].startswith("OOD ")]
    assert len(targets) == 4 and all(t["status"] == "PASS" for t in targets) is passed
    assert {t["status"] for t in targets} <= {"PASS", "FAIL"}


def test_report_writes_json_and_png(tmp_path: Path) -> None:
    for name, report in (("full", full_report()), ("empty", {"settings": {}, "model": None, "pipeline": None, "tracker": None})):
        rep.finalize(report)
        j = rep.write_json(report, tmp_path / name / "report.json")
        p = rep.write_chart(report, tmp_path / name / "report.png")
        assert json.loads(j.read_text())["targets"] == report["targets"]
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
        console = Console(record=True, width=200)
        rep.render(report, console)
        text = console.export_text()
        assert "targets" in text and ("FAIL" in text if name == "full" else "SKIP" in text)
        if name == "full":
            assert "model, out-of-distribution frames" in text and "objects: low contrast" in text
            assert "/tmp/x/ood_worst_1.png" in text and "Duplicate pairs (mask IoU > 0.5): 2 in 1 frames" in text
            all_row = next(line for line in text.splitlines() if line.startswith("│ all  "))
            assert "0.9600" in all_row and "0.9700" in all_row and "0.9200" in all_row and "0.4000" in all_row
            assert "tracker vs roboflow ByteTrack on walkers" in text


def parse(argv: list[str]):
    """The ``eval`` subcommand's arguments, parsed by the parser ``pipeline.cli`` would build."""
    import argparse

    from pipeline.evaluation.cli import register

    parser = argparse.ArgumentParser(prog="maskstream")
    register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_eval_command_tracker_only(tmp_path: Path) -> None:
    args = parse(["eval", "--skip-model", "--skip-pipeline", "--skip-ood", "--tracker-clips", "1", "--tracker-frames",
                  "12", "--out", str(tmp_path)])
    assert args.func(args) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert [lvl["level"] for lvl in report["tracker"]["levels"]] == [0, 1, 2, 3]
    assert report["model"] is None and (tmp_path / "report.png").is_file()


def test_eval_command_refuses_a_missing_checkpoint(tmp_path: Path) -> None:
    from pipeline.errors import ConfigError

    args = parse(["eval", "--weights", str(tmp_path / "nope.pt"), "--out", str(tmp_path)])
    with pytest.raises(ConfigError, match="no such checkpoint"):
        args.func(args)


def test_eval_is_registered_with_maskstream() -> None:
    from pipeline import cli

    args = cli.build_parser().parse_args(["eval", "--out", "x", "--frames", "8", "--skip-pipeline"])
    assert (args.frames, args.skip_pipeline, args.arch, args.score_threshold) == (8, True, "maskrcnn_compact", 0.05)


@pytest.mark.parametrize(("fp32_ap", "status"), [(0.853, "PASS"), (0.86, "FAIL")])
def test_auto_precision_is_held_to_fp32s_ap(fp32_ap: float, status: str) -> None:
    report = full_report()
    report["model"]["precision"] = "bf16 + channels-last (auto: ...)"
    report["model_fp32"] = {"frames": 10, "precision": "fp32 (as set)", **ap(fp32_ap)}
    targets = {t["name"]: t for t in rep.finalize(report)["targets"]}
    target = targets["model mask AP in bf16 - in fp32 (same frames)"]
    assert target["status"] == status and target["value"] == pytest.approx(0.85 - fp32_ap)
    console = Console(record=True, width=200)
    rep.render(report, console)
    text = console.export_text()
    assert "model, held-out frames (bf16 + channels-last)" in text and "model, held-out frames (fp32)" in text


def test_eval_command_reports_the_chosen_precision_beside_fp32(tmp_path: Path) -> None:
    import torch

    from pipeline.precision import probe_capabilities, resolve_precision

    args = parse(["eval", "--weights", "none", "--frames", "2", "--skip-pipeline", "--skip-tracker", "--skip-ood",
                  "--out", str(tmp_path)])
    assert args.precision == "auto"
    assert args.func(args) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    chosen = resolve_precision("auto", "auto", probe_capabilities(torch.device("cpu")))
    assert report["model"]["precision"] == chosen.describe()
    if chosen.precision == "fp32":
        assert report["model_fp32"] is None
    else:
        assert report["model_fp32"]["precision"] == "fp32 (as set)" and report["model_fp32"]["frames"] == 2
        names = [t["name"] for t in report["targets"]]
        assert f"model mask AP in {chosen.precision} - in fp32 (same frames)" in names


def test_eval_command_ood_only(tmp_path: Path) -> None:
    """Random weights on 3 OOD frames: the section, its targets and the worst frame's picture are written; the
    published score defaults to the shipped pipeline.yaml's."""
    args = parse(["eval", "--weights", "none", "--skip-model", "--skip-pipeline", "--skip-tracker",
                  "--ood-frames", "3", "--ood-worst", "1", "--out", str(tmp_path)])
    assert args.func(args) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["model"] is None and report["tracker"] is None
    ood = report["ood"]
    assert ood["frames"] == 3 and ood["score_threshold"] == 0.5 and ood["codec"].startswith("h264")
    assert ood["at_threshold"]["all"]["gt"] == ood["gt_instances"] > 0
    assert report["settings"]["ood"]["frames"] == 3
    assert [t["status"] for t in report["targets"] if t["name"].startswith("OOD ")] != ["SKIP"] * 4
    for w in ood["worst_frames"]:
        assert Path(w["picture"]).parent == tmp_path and Path(w["picture"]).is_file()
    assert len(ood["worst_frames"]) == 1  # random weights miss objects in every frame
    case = report["ood_issue_case"]  # the plain scenes beside them, judged by the same targets
    assert case["frames"] == 3 and case["worst_frames"] == [] and case["scene_config"]["backgrounds"] == ["grey"]
    assert case["at_threshold"]["all"]["gt"] == case["gt_instances"] > 0
    assert sum(t["name"].startswith("OOD, the issue's plain case") for t in report["targets"]) == 4


def test_eval_builds_its_engine_with_the_duplicate_rule_it_was_given() -> None:
    from pipeline.config import ModelConfig
    from pipeline.errors import ConfigError
    from pipeline.evaluation.cli import _settings
    from pipeline.evaluation.model_ap import build_engine

    def settings(*flags: str):
        return _settings(parse(["eval", "--weights", "none", "--out", "x", *flags]), need_model=False)

    shipped = ModelConfig.model_fields["duplicate_mask_iou_threshold"].default
    assert settings().duplicate_mask_iou_threshold == shipped is not None
    off = settings("--duplicate-mask-iou", "off")
    assert off.duplicate_mask_iou_threshold is None and off.model_section()["duplicate_mask_iou_threshold"] is None
    assert build_engine(off).duplicate_mask_iou_threshold is None
    assert build_engine(settings("--duplicate-mask-iou", "0.3")).duplicate_mask_iou_threshold == 0.3
    with pytest.raises(ConfigError, match=r"--duplicate-mask-iou: expected an IoU in \(0, 1\] or off, got '2'"):
        settings("--duplicate-mask-iou", "2")
