"""The report's out-of-distribution part: its targets and its tables (see :mod:`pipeline.evaluation.ood_eval`)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

# Issue 13 ("Masks a subscriber can trust"): what a subscriber should get on shapes the model did not train on.
OOD_PRECISION_TARGET = 0.90
OOD_RECALL_TARGET = 0.90
OOD_MASK_AP_TARGET = 0.70
OOD_DUPLICATES_TARGET = 0  # published instances of one frame overlapping another with mask IoU > 0.5


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "-"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def ood_target_rows(ood: dict[str, Any] | None, label: str = "OOD") -> list[tuple[str, Any, str, bool | None]]:
    """``(name, value, goal, passed)`` of the OOD targets, named from ``label``; ``passed`` None when the section was
    skipped."""
    at = (ood or {}).get("at_threshold") or {}
    thr = (ood or {}).get("score_threshold")
    where = f"score >= {thr:g}, mask IoU 0.5" if thr is not None else "the shipped score threshold, mask IoU 0.5"
    precision = (at.get("all") or {}).get("precision")
    recall = (at.get("all") or {}).get("recall")
    ap = ((ood or {}).get("segm") or {}).get("AP")
    dups = at.get("duplicate_pairs")

    def judged(value: Any, ok: bool) -> bool | None:
        return None if ood is None else (value is not None and ok)

    return [
        (f"{label} precision ({where})", precision, f">= {OOD_PRECISION_TARGET:.2f}",
         judged(precision, precision is not None and precision >= OOD_PRECISION_TARGET)),
        (f"{label} recall ({where})", recall, f">= {OOD_RECALL_TARGET:.2f}",
         judged(recall, recall is not None and recall >= OOD_RECALL_TARGET)),
        (f"{label} mask AP@[.5:.95]", ap, f">= {OOD_MASK_AP_TARGET:.2f}", judged(ap, ap is not None and ap >= OOD_MASK_AP_TARGET)),
        (f"{label} duplicate pairs (published, same frame, mask IoU > 0.5)", dups, f"= {OOD_DUPLICATES_TARGET}",
         judged(dups, dups is not None and dups <= OOD_DUPLICATES_TARGET)),
    ]


def _pr_cells(c: dict[str, Any] | None, *, full: bool) -> list[str]:
    """Table cells of one group's counts: objects, (missed,) recall, published, (false pos.,) precision."""
    c = c or {}
    keys = ("gt", "missed", "recall", "published", "fp", "precision") if full else ("gt", "recall", "published",
                                                                                      "precision")
    return [_fmt(c.get(k)) for k in keys]


def render_ood(ood: dict[str, Any], console: Console, model: dict[str, Any] | None = None) -> None:
    """Precision/recall at the threshold per class, size and tag, beside the held-out frames' (``model``, when it
    has ``at_threshold``); false-positive kinds; the AP breakdown; the worst frames' pictures."""
    at = ood["at_threshold"]
    held = (model or {}).get("at_threshold")
    t = Table(title=f"precision / recall at score >= {ood['score_threshold']:g}, mask IoU {ood['match_iou']:g}: "
                    f"held-out generated frames ({(model or {}).get('frames', '-')}) | out-of-distribution frames "
                    f"({ood['frames']}, PIL renderer, {ood['codec'].split(' (')[0]})")
    t.add_column("group")
    for name in ("held-out objects", "recall", "published", "precision", "| OOD objects", "missed", "recall",
                 "published", "false pos.", "precision"):
        t.add_column(name, justify="right")
    t.add_row("all", *_pr_cells(held and held["all"], full=False), *_pr_cells(at["all"], full=True))
    ag, hag = at["class_agnostic"], (held or {}).get("class_agnostic") or {}
    t.add_row("all, class-agnostic", "", _fmt(hag.get("recall")), "", _fmt(hag.get("precision")),
              "", "", _fmt(ag["recall"]), "", _fmt(ag["fp"]), _fmt(ag["precision"]))
    for group, label in (("per_class", "class"), ("by_size", "size")):
        for name, c in at[group].items():
            t.add_row(f"{label} {name}", *_pr_cells(((held or {}).get(group) or {}).get(name), full=False),
                      *_pr_cells(c, full=True))
    for tag, c in at["by_tag"].items():
        t.add_row(f"objects: {tag.replace('_', ' ')}", "", "", "", "", _fmt(c["gt"]), _fmt(c["missed"]),
                  _fmt(c["recall"]), "", "", "")
    console.print(t)
    if held is not None:
        console.print(f"held-out frames: duplicate pairs (mask IoU > 0.5) {held['duplicate_pairs']}; false positives "
                      f"{held['all']['fp']} ({held['false_positives']['at_edge']} at a frame edge)", highlight=False)
    fp = at["false_positives"]
    console.print(
        f"OOD false positives: background {fp['background']}, poor mask {fp['poor_mask']}, wrong class "
        f"{fp['wrong_class']}, duplicate {fp['duplicate']}, on distractors {fp['distractor']}; {fp['at_edge']} of them "
        f"at a frame edge. Duplicate pairs (mask IoU > 0.5): {at['duplicate_pairs']} in "
        f"{at['frames_with_duplicates']} frames.", highlight=False)
    b = ood.get("mask_breakdown") or {}
    if b:
        per_class = ", ".join(f"{name} {_fmt(v)}" for name, v in b["per_class"].items())
        console.print(f"OOD mask AP breakdown: class-agnostic {_fmt(b['class_agnostic'])}, small {_fmt(b['small'])}, "
                      f"medium {_fmt(b['medium'])}, large {_fmt(b['large'])}; per class: {per_class}", highlight=False)
    for w in ood.get("worst_frames", []):
        console.print(f"OOD worst frame {w['frame']} (seed {w['seed']}): {w['false_positives']} false positives "
                      f"({', '.join(w['fp_kinds']) or '-'}), missed {w['misses']} of {w['gt']}: {w['picture']}",
                      highlight=False)


ISSUE_CASE_LABEL = "OOD, the issue's plain case"


def render_issue_case(case: dict[str, Any], console: Console) -> None:
    """One line: the issue's plain case (``ood_issue_case``) at the threshold, beside its AP."""
    a, fp, scene = case["at_threshold"]["all"], case["at_threshold"]["false_positives"], case["scene_config"]
    console.print(
        f"{ISSUE_CASE_LABEL} ({case['frames']} frames: {', '.join(scene['classes'])}, {scene['min_size']:g}-"
        f"{scene['max_size']:g} px on {', '.join(scene['backgrounds'])}, {case['codec'].split(' (')[0]}): mask AP {_fmt(case['segm']['AP'])}; at score >= {case['score_threshold']:g} "
        f"{a['published']} published for {a['gt']} objects, precision {_fmt(a['precision'])}, recall "
        f"{_fmt(a['recall'])} (false positives: background {fp['background']}, wrong class {fp['wrong_class']}, "
        f"poor mask {fp['poor_mask']})", highlight=False)


def draw_ood_panel(ax: Any, ood: dict[str, Any] | None, model: dict[str, Any] | None = None) -> None:
    """Chart panel: precision and recall at the threshold, all objects and per class, against the targets; first the
    held-out frames' (``model``'s ``at_threshold``) when there are."""
    import numpy as np

    ax.set_title("out-of-distribution frames: precision / recall at threshold")
    ax.set_ylim(0, 1.05)
    if ood is None:
        ax.text(0.5, 0.5, "skipped", ha="center", transform=ax.transAxes)
        ax.set_xticks([])
        return
    at = ood["at_threshold"]
    held = (model or {}).get("at_threshold")
    groups = ([("held-out\nall", held["all"])] if held else []) + [("OOD\nall", at["all"])] + list(at["per_class"].items())
    x = np.arange(len(groups))
    for i, key in enumerate(("precision", "recall")):
        vals = [float("nan") if c.get(key) is None else float(c[key]) for _, c in groups]
        bars = ax.bar(x + (i - 0.5) * 0.4, vals, 0.4, label=key, color=f"C{i}")
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.axhline(OOD_PRECISION_TARGET, color="grey", ls="--", lw=1)
    ax.set_xticks(x, [name for name, _ in groups])
    ax.legend(fontsize=8, loc="lower left")
