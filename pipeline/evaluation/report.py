"""The evaluation report: targets with PASS/FAIL, JSON, a PNG chart and rich tables.

A report is a plain dict: ``{"settings", "model", "model_fp32", "ood", "ood_issue_case", "pipeline", "tracker",
"targets"}``, each
section ``None`` (or absent) when skipped (see :mod:`model_ap`, :mod:`ood_eval`, :mod:`pipeline_eval`,
:mod:`tracker_eval` for their contents). :func:`check_targets` fills ``targets``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from pipeline.evaluation.ood_report import (
    ISSUE_CASE_LABEL,
    draw_ood_panel,
    ood_target_rows,
    render_issue_case,
    render_ood,
)

MODEL_MASK_AP_TARGET = 0.80
PIPELINE_AP_TOLERANCE = 0.01
PIPELINE_IDF1_TARGET = 0.90
# precision: auto must not move accuracy: its mask AP within this of fp32's on the same frames (issue "Speed").
PRECISION_AP_TOLERANCE = 0.005
PIPELINE_MOTA_TARGET = 0.90


def _get(d: Any, *keys: Any) -> Any:
    for k in keys:
        if d is None:
            return None
        d = d.get(k) if isinstance(d, dict) else None
    return d


def _target(name: str, value: float | None, goal: str, passed: bool | None) -> dict[str, Any]:
    status = "SKIP" if passed is None else ("PASS" if passed else "FAIL")
    return {"name": name, "value": value, "target": goal, "status": status}


def check_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets the report is judged by, each with ``status`` PASS, FAIL or SKIP (section skipped)."""
    targets = []
    ap = _get(report, "model", "segm", "AP")
    targets.append(_target("model mask AP@[.5:.95] (held-out frames)", ap, f">= {MODEL_MASK_AP_TARGET:.2f}",
                           None if report.get("model") is None else (ap is not None and ap >= MODEL_MASK_AP_TARGET)))
    reference = _get(report, "model_fp32", "segm", "AP")
    if reference is not None and ap is not None:
        chosen = str(_get(report, "model", "precision") or "").split(" ")[0]
        targets.append(_target(f"model mask AP in {chosen} - in fp32 (same frames)", ap - reference,
                               f"|d| <= {PRECISION_AP_TOLERANCE}", abs(ap - reference) <= PRECISION_AP_TOLERANCE + 1e-12))
    targets += [_target(*row) for row in ood_target_rows(report.get("ood"))]
    if report.get("ood_issue_case") is not None:
        targets += [_target(*row) for row in ood_target_rows(report["ood_issue_case"], ISSUE_CASE_LABEL)]
    pipe = report.get("pipeline")
    for iou_type, label in (("segm", "mask"), ("bbox", "box")):
        diff = _get(pipe, "ap_difference", iou_type, "AP")
        targets.append(_target(f"pipeline {label} AP - model {label} AP (same frames)", diff,
                               f"|d| <= {PIPELINE_AP_TOLERANCE:.2f}",
                               None if pipe is None or "ap_difference" not in pipe
                               else (diff is not None and abs(diff) <= PIPELINE_AP_TOLERANCE + 1e-12)))
    for key, goal in (("IDF1", PIPELINE_IDF1_TARGET), ("MOTA", PIPELINE_MOTA_TARGET)):
        value = _get(pipe, "tracking", key)
        targets.append(_target(f"pipeline {key}", value, f">= {goal:.2f}",
                               None if pipe is None else (value is not None and value >= goal)))
    tracker = report.get("tracker")
    if tracker is None:
        targets.append(_target("tracker IDF1 >= peer IDF1 (every noise level)", None, ">= peer", None))
    else:
        for lvl in tracker["levels"]:
            ours, peer = lvl["ours"]["IDF1"], lvl["peer"]["IDF1"]
            targets.append(_target(f"tracker IDF1, noise level {lvl['level']} (peer {peer:.4f})", ours,
                                   ">= peer", ours >= peer - 1e-12))
        walkers = tracker.get("walkers")
        for lvl in [] if walkers is None else walkers["levels"]:
            for key in ("IDF1", "MOTA"):
                ours, peer = lvl["ours"][key], lvl["peer"][key]
                targets.append(_target(f"tracker {key} on walkers, noise level {lvl['level']} (peer {peer:.4f})",
                                       ours, ">= peer", ours >= peer - 1e-12))
    return targets


def finalize(report: dict[str, Any]) -> dict[str, Any]:
    report["targets"] = check_targets(report)
    report["passed"] = all(t["status"] != "FAIL" for t in report["targets"])
    return report


def write_json(report: dict[str, Any], path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=_json_default, allow_nan=False) + "\n")
    return path


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _num(v: float | None) -> float:
    return float("nan") if v is None else float(v)


def write_chart(report: dict[str, Any], path: Path) -> Path:
    """Four panels: AP (model, OOD, pipeline), pipeline MOTA/IDF1/HOTA, tracker vs peer per noise level, OOD
    precision/recall at the shipped threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 4, figsize=(22, 4.8))
    # 1. AP
    ax = axes[0]
    metrics = [("segm", "AP"), ("segm", "AP50"), ("segm", "AP75"), ("bbox", "AP"), ("bbox", "AP50"), ("bbox", "AP75")]
    series = [("model, held-out frames", report.get("model")),
              ("model in fp32, held-out frames", report.get("model_fp32")),
              ("model, out-of-distribution frames", report.get("ood")),
              ("model, pipeline's frames", _get(report, "pipeline", "model_same_frames")),
              ("pipeline", _get(report, "pipeline", "pipeline"))]
    series = [(n, s) for n, s in series if s is not None]
    x = np.arange(len(metrics))
    width = 0.8 / max(1, len(series))
    for i, (name, sec) in enumerate(series):
        vals = [_num(_get(sec, t, k)) for t, k in metrics]
        ax.bar(x + (i - (len(series) - 1) / 2) * width, vals, width, label=name)
    ax.axhline(MODEL_MASK_AP_TARGET, color="grey", ls="--", lw=1)
    ax.set_xticks(x, [f"{'mask' if t == 'segm' else 'box'}\n{k}" for t, k in metrics])
    ax.set_ylim(0, 1.05)
    ax.set_title("COCO AP: model vs pipeline")
    if series:
        ax.legend(fontsize=8, loc="lower left")
    else:
        ax.text(0.5, 0.5, "skipped", ha="center", transform=ax.transAxes)
        ax.set_xticks([])
    # 2. pipeline tracking
    ax = axes[1]
    tracking = _get(report, "pipeline", "tracking")
    if tracking is not None:
        keys = ["MOTA", "IDF1", "HOTA"]
        bars = ax.bar(keys, [_num(tracking.get(k)) for k in keys], color=["C0", "C1", "C2"])
        ax.bar_label(bars, fmt="%.3f")
        ax.axhline(PIPELINE_IDF1_TARGET, color="grey", ls="--", lw=1)
    else:
        ax.text(0.5, 0.5, "skipped", ha="center", transform=ax.transAxes)
        ax.set_xticks([])
    ax.set_ylim(0, 1.05)
    ax.set_title("pipeline tracking (MOT GT, box IoU)")
    # 3. tracker vs peer
    ax = axes[2]
    tracker = report.get("tracker")
    if tracker is not None:
        levels = tracker["levels"]
        x = np.arange(len(levels))
        for i, (who, key) in enumerate([("ours", "MOTA"), ("peer", "MOTA"), ("ours", "IDF1"), ("peer", "IDF1")]):
            vals = [_num(lvl[who][key]) for lvl in levels]
            ax.bar(x + (i - 1.5) * 0.2, vals, 0.2, label=f"{'ByteTracker' if who == 'ours' else 'roboflow ByteTrack'} {key}",
                   color=f"C{i}", alpha=1.0 if who == "ours" else 0.6)
        labels = [f"level {lvl['level']}\nσ={lvl['jitter_px']:g}px miss={lvl['miss_prob']:g}\n"
                  f"fp/frame={lvl['fp_per_frame']:g}" for lvl in levels]
        walkers = (tracker.get("walkers") or {}).get("levels", [])
        for j, lvl in enumerate(walkers):  # the walkers' levels to the right of the shapes' ones
            for i, (who, key) in enumerate([("ours", "MOTA"), ("peer", "MOTA"), ("ours", "IDF1"), ("peer", "IDF1")]):
                ax.bar(len(levels) + j + (i - 1.5) * 0.2, _num(lvl[who][key]), 0.2, color=f"C{i}",
                       alpha=1.0 if who == "ours" else 0.6)
            labels.append(f"walkers {lvl['level']}\njitter {lvl['jitter_frac']:.0%}\nfp/frame={lvl['fp_per_frame']:g}")
        levels = levels + walkers
        ax.set_xticks(np.arange(len(levels)), labels, fontsize=7)
        lows = [_num(lvl[w][k]) for lvl in levels for w in ("ours", "peer") for k in ("MOTA", "IDF1")]
        low = min([v for v in lows if not math.isnan(v)] + [0.0])
        ax.set_ylim(min(0.0, low - 0.05), 1.05)
        ax.legend(fontsize=7, loc="lower left")
    else:
        ax.text(0.5, 0.5, "skipped", ha="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_ylim(0, 1.05)
    ax.set_title("tracker vs peer on noisy GT boxes (shapes, walkers)")
    draw_ood_panel(axes[3], report.get("ood"), report.get("model"))
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def render(report: dict[str, Any], console: Console) -> None:
    """Print the report's tables: AP, tracking, tracker vs peer, and the targets."""
    model, pipe, tracker = report.get("model"), report.get("pipeline"), report.get("tracker")
    if model is not None or pipe is not None or report.get("ood") is not None:
        t = Table(title="COCO AP (mask | box)")
        t.add_column("evaluated")
        t.add_column("frames", justify="right")
        for name in ("mask AP", "mask AP50", "mask AP75", "box AP", "box AP50", "box AP75"):
            t.add_column(name, justify="right")
        rows = []
        if model is not None:
            chosen = model.get("precision", "")
            rows.append((f"model, held-out frames ({chosen.split(' (')[0]})" if chosen else "model, held-out frames",
                         model.get("frames"), model))
        reference = report.get("model_fp32")
        if reference is not None:
            rows.append(("model, held-out frames (fp32)", reference.get("frames"), reference))
        if report.get("ood") is not None:
            rows.append(("model, out-of-distribution frames", report["ood"].get("frames"), report["ood"]))
        if report.get("ood_issue_case") is not None:
            rows.append((f"model, {ISSUE_CASE_LABEL}", report["ood_issue_case"].get("frames"), report["ood_issue_case"]))
        if pipe is not None:
            if "model_same_frames" in pipe:
                rows.append(("model, pipeline's frames", pipe["frames"], pipe["model_same_frames"]))
            rows.append(("pipeline (JSON Lines)", pipe["frames"], pipe["pipeline"]))
            if "ap_difference" in pipe:
                rows.append(("pipeline - model", pipe["frames"], pipe["ap_difference"]))
        for name, frames, sec in rows:
            t.add_row(name, _fmt(frames), *[_fmt(_get(sec, ty, k)) for ty in ("segm", "bbox") for k in ("AP", "AP50", "AP75")])
        console.print(t)
    breakdown = _get(model, "mask_breakdown")
    if breakdown is not None:
        per_class = ", ".join(f"{name} {_fmt(v)}" for name, v in breakdown["per_class"].items())
        console.print(
            f"model mask AP breakdown: class-agnostic {_fmt(breakdown['class_agnostic'])}, small objects "
            f"{_fmt(breakdown['small'])}, medium {_fmt(breakdown['medium'])}, large {_fmt(breakdown['large'])}; "
            f"per class: {per_class}", highlight=False)
    if report.get("ood") is not None:
        render_ood(report["ood"], console, model)
    if report.get("ood_issue_case") is not None:
        render_issue_case(report["ood_issue_case"], console)
    agreement = _get(pipe, "agreement")
    if agreement is not None:
        console.print(
            f"pipeline vs model on the same frames: {agreement['matched']} of {agreement['pipeline_instances']} "
            f"published instances are the model's own detections ({agreement['model_detections']} detections; "
            f"same class, score within 1e-4, mask IoU >= 0.99)", highlight=False)
    if pipe is not None:
        tr = pipe["tracking"]
        t = Table(title=f"pipeline tracking ({pipe['videos']} videos, {pipe['frames']} frames)")
        for k in ("MOTA", "IDF1", "HOTA", "IDSW", "CLR_TP", "CLR_FN", "CLR_FP"):
            t.add_column(k, justify="right")
        t.add_row(*[_fmt(tr[k]) for k in ("MOTA", "IDF1", "HOTA", "IDSW", "CLR_TP", "CLR_FN", "CLR_FP")])
        console.print(t)
    if tracker is not None:
        t = Table(title=f"tracker vs roboflow ByteTrack ({tracker['clips']} clips x {tracker['frames_per_clip']} frames, seed {tracker['seed']})")
        for name in ("level", "jitter px", "miss", "fp/frame", "MOTA ours", "MOTA peer", "IDF1 ours", "IDF1 peer",
                     "HOTA ours", "HOTA peer", "IDSW ours", "IDSW peer"):
            t.add_column(name, justify="right")
        for lvl in tracker["levels"]:
            o, p = lvl["ours"], lvl["peer"]
            t.add_row(str(lvl["level"]), _fmt(lvl["jitter_px"], 1), _fmt(lvl["miss_prob"], 2), _fmt(lvl["fp_per_frame"], 1),
                      _fmt(o["MOTA"]), _fmt(p["MOTA"]), _fmt(o["IDF1"]), _fmt(p["IDF1"]), _fmt(o["HOTA"]), _fmt(p["HOTA"]),
                      _fmt(o["IDSW"]), _fmt(p["IDSW"]))
        console.print(t)
        walkers = tracker.get("walkers")
        if walkers is not None:
            t = Table(title=f"tracker vs roboflow ByteTrack on walkers ({walkers['clips']} clips x "
                            f"{walkers['frames_per_clip']} frames, seed {walkers['seed']})")
            for name in ("level", "jitter", "miss", "fp/frame", "MOTA ours", "MOTA peer", "IDF1 ours", "IDF1 peer",
                         "HOTA ours", "HOTA peer", "IDSW ours", "IDSW peer"):
                t.add_column(name, justify="right")
            for lvl in walkers["levels"]:
                o, p = lvl["ours"], lvl["peer"]
                t.add_row(str(lvl["level"]), f"{lvl['jitter_frac']:.0%}", _fmt(lvl["miss_prob"], 2),
                          _fmt(lvl["fp_per_frame"], 1), _fmt(o["MOTA"]), _fmt(p["MOTA"]), _fmt(o["IDF1"]),
                          _fmt(p["IDF1"]), _fmt(o["HOTA"]), _fmt(p["HOTA"]), _fmt(o["IDSW"]), _fmt(p["IDSW"]))
            console.print(t)
    t = Table(title="targets")
    t.add_column("check")
    t.add_column("value", justify="right")
    t.add_column("target")
    t.add_column("status")
    colours = {"PASS": "green", "FAIL": "red", "SKIP": "yellow"}
    for tg in report.get("targets", []):
        t.add_row(tg["name"], _fmt(tg["value"]), tg["target"], f"[{colours[tg['status']]}]{tg['status']}[/]")
    console.print(t)
