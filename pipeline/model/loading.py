"""Load a model with weights: torchvision's pretrained weights, a maskstream checkpoint, or none.

``load_model(arch, weights, ...)`` with ``weights``:

- ``"DEFAULT"`` or a member name of the arch's torchvision weights enum (``"COCO_V1"``; the
  qualified ``"MaskRCNN_ResNet50_FPN_Weights.COCO_V1"`` works too): torchvision's weights API,
  class names from ``weights.meta["categories"]``. The file is looked for in torch.hub's cache
  (``torch.hub.get_dir()/checkpoints/<file name of weights.url>``, i.e. ``$TORCH_HOME/hub/checkpoints``).
  If absent, the download host is probed (DNS + TCP, ~3 s at most) and only then downloaded, with
  socket timeouts; offline, an :class:`InferenceError` says what to do instead. It never hangs.
- a path to a local checkpoint (``.pt`` written by ``maskstream train`` / :func:`save_checkpoint`).
- ``None`` or ``"none"``: random weights (``class_names`` gives the classes; without it, 91 classes
  named ``"__background__", "class_1", ...``).

``class_names`` are indexed by label, background included (``class_names[0]``), as torchvision's
``meta["categories"]``.

``min_size``/``max_size`` of ``None`` run the model at the input size its weights were trained at:
a checkpoint's own (``maskstream train`` records it), else the arch's default (:func:`input_size`).
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
import torchvision
from torchvision.models.detection import MaskRCNN

from pipeline.errors import InferenceError
from pipeline.model.builders import ARCHS, DEFAULT_SIZES, RUNTIME_KWARGS, build_model
from pipeline.model.checkpoint import apply_norm_eps, load_checkpoint, load_state_dict_into
from pipeline.naming import is_random_weights, weights_is_path

#: Seconds for the reachability probe of the weights' host (DNS and TCP connect together).
PROBE_TIMEOUT_S = 3.0
#: Socket timeout of each read while downloading weights.
DOWNLOAD_TIMEOUT_S = 30.0
DEFAULT_NUM_CLASSES = 91
_HASH_REGEX = re.compile(r"-([a-f0-9]*)\.")  # torch.hub's: file names end in -<sha256 prefix>.<ext>


@dataclass(frozen=True)
class LoadedModel:
    model: MaskRCNN
    class_names: tuple[str, ...]
    arch: str
    source: str  # where the weights came from: "random", "checkpoint:<path>", "torchvision:<Enum.MEMBER> (<file>)"


def default_class_names(num_classes: int) -> tuple[str, ...]:
    return ("__background__",) + tuple(f"class_{i}" for i in range(1, num_classes))


def hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _is_checkpoint_path(spec: str | None) -> bool:
    # The one rule, shared with the config (which resolves relative paths) and the preflight (which checks the file).
    return weights_is_path(spec)


def input_size(arch: str, weights: str | None, min_size: int | None, max_size: int | None) -> tuple[int, int]:
    """``(min_size, max_size)`` to run ``arch`` with ``weights`` at: each given value, else the size a
    checkpoint was trained at (its ``model_kwargs``), else the arch's default (:data:`DEFAULT_SIZES`).

    A model runs best at the scale it was trained at: the shipped compact model was trained on frames
    upscaled to 360/480, and runs markedly worse at its arch's default 240/320.
    """
    trained: dict[str, Any] = {}
    if (min_size is None or max_size is None) and _is_checkpoint_path(weights):
        trained = load_checkpoint(Path(str(weights).strip()).expanduser())["model_kwargs"]
    return _resolve_size(arch, trained, min_size, max_size)


def _resolve_size(arch: str, trained: dict[str, Any], min_size: int | None, max_size: int | None) -> tuple[int, int]:
    """:func:`input_size` once the checkpoint's ``model_kwargs`` (``trained``; ``{}`` for none) are read."""
    if arch not in ARCHS:
        raise InferenceError(f"unknown model arch {arch!r}; expected one of {', '.join(ARCHS)}")
    default_min, default_max = DEFAULT_SIZES[arch]
    resolved_min = int(min_size if min_size is not None else trained.get("min_size", default_min))
    resolved_max = int(max_size if max_size is not None else trained.get("max_size", default_max))
    if resolved_max < resolved_min:
        raise InferenceError(f"model input min_size {resolved_min} is above max_size {resolved_max} (the weights' "
                             f"own, or the arch's default); set max_size too")
    return resolved_min, resolved_max


def load_model(
    arch: str,
    weights: str | None,
    *,
    class_names: Sequence[str] | None = None,
    min_size: int | None = None,
    max_size: int | None = None,
    score_threshold: float,
    max_detections: int,
    **arch_kwargs: Any,
) -> LoadedModel:
    """Build ``arch`` and load ``weights`` into it (see the module docstring); eval mode, on the CPU.

    ``arch_kwargs`` only apply to random weights (a checkpoint brings its own ``model_kwargs``).
    ``min_size``/``max_size`` of ``None``: see :func:`input_size`.
    """
    if arch not in ARCHS:
        raise InferenceError(f"unknown model arch {arch!r}; expected one of {', '.join(ARCHS)}")
    runtime: dict[str, Any] = dict(
        min_size=min_size, max_size=max_size, score_threshold=score_threshold, max_detections=max_detections
    )
    names = None if class_names is None else tuple(str(n) for n in class_names)
    spec = None if weights is None else str(weights).strip()
    if _is_checkpoint_path(spec):  # the sizes are resolved from the checkpoint it reads anyway
        return _load_local_checkpoint(arch, Path(str(spec)).expanduser(), names, runtime)
    runtime["min_size"], runtime["max_size"] = _resolve_size(arch, {}, min_size, max_size)

    if is_random_weights(spec):
        if names is None:
            names = default_class_names(DEFAULT_NUM_CLASSES)
        if len(names) < 2:
            raise InferenceError(f"class_names must have >= 2 entries (background first), got {list(names)}")
        model = build_model(arch, num_classes=len(names), **runtime, **arch_kwargs)
        return LoadedModel(model=model, class_names=names, arch=arch, source="random")

    return _load_torchvision(arch, spec, names, runtime)


def _load_local_checkpoint(
    arch: str, path: Path, names: tuple[str, ...] | None, runtime: dict[str, Any]
) -> LoadedModel:
    ckpt = load_checkpoint(path)
    if ckpt["arch"] != arch:
        raise InferenceError(
            f"checkpoint {path} holds a {ckpt['arch']!r} model but model.arch is {arch!r}; "
            f"set model.arch: {ckpt['arch']} or use a checkpoint trained as {arch}"
        )
    ckpt_names = tuple(ckpt["class_names"])
    if names is not None and len(names) != len(ckpt_names):
        raise InferenceError(
            f"checkpoint {path} has {len(ckpt_names)} classes (background included) but "
            f"{len(names)} class_names were given"
        )
    model_kwargs = {k: v for k, v in ckpt["model_kwargs"].items() if k not in RUNTIME_KWARGS}
    runtime = {**runtime}
    runtime["min_size"], runtime["max_size"] = _resolve_size(arch, ckpt["model_kwargs"], runtime["min_size"],
                                                            runtime["max_size"])
    try:
        model = build_model(arch, num_classes=len(ckpt_names), **runtime, **model_kwargs)
    except InferenceError as exc:
        raise InferenceError(f"cannot rebuild the model of checkpoint {path}: {exc}") from exc
    load_state_dict_into(model, ckpt["state_dict"], source=f"checkpoint {path}")
    apply_norm_eps(model, ckpt.get("norm_eps"))
    return LoadedModel(
        model=model.eval(), class_names=names or ckpt_names, arch=arch, source=f"checkpoint:{path}"
    )


def _resolve_torchvision_weights(arch: str, spec: str) -> Any:
    try:
        enum = torchvision.models.get_model_weights(arch)
    except (ValueError, KeyError):
        raise InferenceError(
            f"model.weights {spec!r} names torchvision weights, but arch {arch!r} has none; "
            "use model.weights: /path/to/model.pt (from `maskstream train`) or none"
        ) from None
    member = spec.split(".", 1)[1] if "." in spec else spec
    if "." in spec and spec.split(".", 1)[0] != enum.__name__:
        raise InferenceError(f"model.weights {spec!r} are not weights of {arch} (those are {enum.__name__}.*)")
    if member == "DEFAULT":
        return enum.DEFAULT
    try:
        return enum[member]
    except KeyError:
        options = ", ".join(["DEFAULT"] + [m.name for m in enum])
        raise InferenceError(
            f"model.weights {spec!r} is neither an existing file nor a weights name of {arch} ({options})"
        ) from None


def _load_torchvision(
    arch: str, spec: str, names: tuple[str, ...] | None, runtime: dict[str, Any]
) -> LoadedModel:
    weights = _resolve_torchvision_weights(arch, spec)
    categories = tuple(str(c) for c in weights.meta["categories"])
    if names is not None and len(names) != len(categories):
        raise InferenceError(
            f"{weights} have {len(categories)} classes (background included) but {len(names)} class_names were given"
        )
    filename = os.path.basename(urlparse(weights.url).path)
    cached = hub_checkpoint_dir() / filename
    if not cached.is_file():
        _download(weights, cached)
    builder = torchvision.models.get_model_builder(arch)
    try:
        model = builder(
            weights=weights,
            weights_backbone=None,
            progress=False,
            min_size=int(runtime["min_size"]),
            max_size=int(runtime["max_size"]),
            box_score_thresh=float(runtime["score_threshold"]),
            box_detections_per_img=int(runtime["max_detections"]),
        )
    except Exception as exc:  # a corrupt cache file: torch.load / load_state_dict errors of any kind
        raise InferenceError(f"cannot load {weights} from {cached}: {exc}; delete the file and retry") from exc
    return LoadedModel(
        model=model.eval(), class_names=names or categories, arch=arch, source=f"torchvision:{weights} ({cached})"
    )


def _offline_message(weights: Any, cached: Path, why: str) -> str:
    return (
        f"model.weights asks for torchvision's {weights}, which are not in the torch.hub cache "
        f"(looked for {cached}) and cannot be downloaded from {weights.url}: {why}. Either "
        f"set model.weights: /path/to/model.pt (a checkpoint written by `maskstream train`), or put "
        f"{cached.name} in {cached.parent} (set TORCH_HOME to choose the cache; torch.hub uses $TORCH_HOME/hub), "
        f"or use model.weights: none (random weights, for testing only)"
    )


def probe_host(host: str, port: int, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """``None`` if a TCP connection to ``host:port`` opens within ``timeout_s`` (DNS included), else why not."""
    result: list[str | None] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                result.append(None)
        except OSError as exc:
            result.append(f"{host}:{port} is unreachable ({exc})")

    thread = threading.Thread(target=attempt, name=f"probe-{host}", daemon=True)
    thread.start()
    thread.join(timeout_s)  # getaddrinfo ignores socket timeouts; the daemon thread is abandoned if stuck
    if not result:
        return f"no connection to {host}:{port} within {timeout_s:g} s"
    return result[0]


def _download(weights: Any, dest: Path) -> None:
    url = weights.url
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    why = probe_host(parsed.hostname or "", port)
    if why is not None:
        raise InferenceError(_offline_message(weights, dest, why))
    tmp = dest.with_name(dest.name + f".partial-{os.getpid()}")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        sha = hashlib.sha256()
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(tmp, "wb") as out:
            while chunk := response.read(1 << 20):
                sha.update(chunk)
                out.write(chunk)
        match = _HASH_REGEX.search(dest.name)
        if match and not sha.hexdigest().startswith(match.group(1)):
            raise InferenceError(f"downloaded {url} has sha256 {sha.hexdigest()[:12]}..., expected {match.group(1)}...")
        os.replace(tmp, dest)
    except (OSError, urllib.error.URLError) as exc:
        raise InferenceError(_offline_message(weights, dest, f"download failed ({exc})")) from exc
    finally:
        tmp.unlink(missing_ok=True)
