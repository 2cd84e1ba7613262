"""maskstream's checkpoint format: one ``torch.save``-d dict, loadable with ``weights_only=True``.

Keys::

    format        "maskstream-checkpoint"
    version       1
    arch          one of pipeline.model.ARCHS
    class_names   list[str], indexed by label; class_names[0] is the background
    model_kwargs  dict: the architecture keywords of build_model (e.g. {"trunk_stages": 3});
                  runtime settings (num_classes, min_size, max_size, score_threshold,
                  max_detections) may be present but are overridden by whoever loads it
    state_dict    dict[str, Tensor]
    extra         dict: anything the writer wants to keep (training config, metrics, ...)

Optional keys (readers ignore what they do not know):

    state_dict_dtype  "float32" (default) or "float16": with ``half=True`` floating-point tensors are
                      stored as float16, halving the file; they are loaded back as float32. Weights
                      lose precision (~3 decimal digits), so outputs differ slightly from the fp32 model.
    norm_eps          {module name: eps} for normalisation layers whose eps differs from 1e-5
                      (torchvision's COCO_V1 ResNet-50 uses eps=0), re-applied on load.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.errors import InferenceError
from pipeline.model.builders import ARCHS

FORMAT = "maskstream-checkpoint"
VERSION = 1
_DEFAULT_EPS = 1e-5


def _norm_eps(model: nn.Module) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, module in model.named_modules():
        eps = getattr(module, "eps", None)
        if isinstance(eps, float) and "Norm" in type(module).__name__ and eps != _DEFAULT_EPS:
            out[name] = eps
    return out


def _not_plain(value: Any, where: str) -> str | None:
    """Why ``value`` would not load with ``torch.load(weights_only=True)``, or None."""
    if value is None or type(value) in (str, int, float, bool) or isinstance(value, torch.Tensor):  # not np.float64
        return None
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                return f"{where} has a key of type {type(k).__name__}"
            problem = _not_plain(v, f"{where}[{k!r}]")
            if problem:
                return problem
        return None
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            problem = _not_plain(v, f"{where}[{i}]")
            if problem:
                return problem
        return None
    return f"{where} is a {type(value).__name__}; only dicts, lists, tuples, str, int, float, bool and None can be stored"


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    *,
    arch: str,
    class_names: Sequence[str],
    model_kwargs: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
    half: bool = False,
) -> None:
    """Write ``model``'s weights and what is needed to rebuild it to ``path`` (atomically).

    ``half=True`` stores floating-point tensors as float16 (about half the size; loaded back as float32).
    """
    if arch not in ARCHS:
        raise InferenceError(f"cannot save checkpoint {path}: unknown arch {arch!r}; expected one of {', '.join(ARCHS)}")
    names = [str(n) for n in class_names]
    cls_score = getattr(getattr(getattr(model, "roi_heads", None), "box_predictor", None), "cls_score", None)
    if isinstance(cls_score, nn.Linear) and cls_score.out_features != len(names):
        raise InferenceError(
            f"cannot save checkpoint {path}: the model predicts {cls_score.out_features} classes "
            f"(background included) but {len(names)} class_names were given"
        )
    for field, value in (("model_kwargs", model_kwargs), ("extra", extra or {})):
        problem = _not_plain(value, field)
        if problem:
            raise InferenceError(f"cannot save checkpoint {path}: {problem} (checkpoints load with weights_only=True)")
    state_dict: dict[str, torch.Tensor] = {}
    for key, tensor in model.state_dict().items():
        tensor = tensor.detach().to("cpu")
        if half and tensor.is_floating_point():
            tensor = tensor.to(torch.float16)
        state_dict[key] = tensor.clone().contiguous()
    checkpoint: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "arch": arch,
        "class_names": names,
        "model_kwargs": dict(model_kwargs),
        "state_dict": state_dict,
        "extra": dict(extra or {}),
        "state_dict_dtype": "float16" if half else "float32",
    }
    eps = _norm_eps(model)
    if eps:
        checkpoint["norm_eps"] = eps
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(checkpoint, tmp)
        os.replace(tmp, path)
    except (OSError, pickle.PicklingError, TypeError) as exc:
        tmp.unlink(missing_ok=True)
        raise InferenceError(f"cannot save checkpoint {path}: {exc}") from exc


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a checkpoint written by :func:`save_checkpoint`; floating tensors come back float32."""
    path = Path(path)
    if not path.is_file():
        raise InferenceError(
            f"checkpoint {path} not found (model.weights must be a file written by `maskstream train`, "
            "a torchvision weights name such as DEFAULT, or none)"
        )
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the unpickler raises all kinds (UnpicklingError, IndexError, EOFError, ...) on garbage
        raise InferenceError(f"{path} is not a maskstream checkpoint (torch.load failed: {exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        what = f"format {data.get('format')!r}" if isinstance(data, dict) else type(data).__name__
        hint = ""
        if isinstance(data, dict) and data and all(isinstance(v, torch.Tensor) for v in data.values()):
            hint = " (it looks like a bare state_dict; maskstream needs the file `maskstream train` writes)"
        raise InferenceError(f"{path} is not a maskstream checkpoint: expected format {FORMAT!r}, found {what}{hint}")
    if data.get("version") != VERSION:
        raise InferenceError(
            f"checkpoint {path} has version {data.get('version')!r}; this maskstream reads version {VERSION}"
        )
    problems = []
    if not isinstance(data.get("arch"), str):
        problems.append("arch is not a string")
    names = data.get("class_names")
    if not isinstance(names, (list, tuple)) or len(names) < 2 or not all(isinstance(n, str) for n in names):
        problems.append("class_names is not a list of >= 2 strings")
    if not isinstance(data.get("model_kwargs"), dict):
        problems.append("model_kwargs is not a dict")
    state_dict = data.get("state_dict")
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        problems.append("state_dict is not a dict of tensors")
    if problems:
        raise InferenceError(f"checkpoint {path} is malformed: {'; '.join(problems)}")
    data["class_names"] = list(names)  # type: ignore[arg-type]
    data["state_dict"] = {k: (v.float() if v.is_floating_point() else v) for k, v in state_dict.items()}  # type: ignore[union-attr]
    data.setdefault("extra", {})
    return data


def load_state_dict_into(model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str) -> None:
    """Load ``state_dict`` into ``model`` strictly, except for BatchNorm's ``num_batches_tracked``
    (absent from FrozenBatchNorm2d); errors name ``source`` and the mismatching keys."""
    own = model.state_dict()

    def relevant(keys: set[str]) -> list[str]:
        return sorted(k for k in keys if not k.endswith("num_batches_tracked"))

    missing = relevant(set(own) - set(state_dict))
    unexpected = relevant(set(state_dict) - set(own))
    shapes = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state_dict))
        if tuple(own[k].shape) != tuple(state_dict[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches (e.g. {'; '.join(shapes[:3])})")
        raise InferenceError(f"weights from {source} do not fit the model: {'; '.join(parts)}")
    model.load_state_dict(dict(state_dict), strict=False)


def apply_norm_eps(model: nn.Module, norm_eps: Mapping[str, float] | None) -> None:
    if not norm_eps:
        return
    modules = dict(model.named_modules())
    for name, eps in norm_eps.items():
        module = modules.get(name)
        if module is not None and hasattr(module, "eps"):
            module.eps = float(eps)
