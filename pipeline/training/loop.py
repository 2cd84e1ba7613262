"""The training loop: seeded, resumable, with a progress bar showing the losses."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from pipeline.errors import ConfigError
from pipeline.training.datasets import TrainingSample


TRAINING_PRECISIONS: tuple[str, ...] = ("fp32", "bf16")
"""``TrainingConfig.precision`` values (and ``maskstream train --precision`` choices)."""


@dataclass(frozen=True)
class TrainingConfig:
    steps: int = 2000
    batch_size: int = 4
    optimizer: Literal["sgd", "adamw"] = "adamw"
    lr: float = 1e-3
    momentum: float = 0.9  # SGD only
    weight_decay: float = 1e-4
    warmup_steps: int = 100  # linear ramp from lr/100, then cosine decay to lr/100 at the last step
    grad_clip_norm: float = 10.0  # clip the gradient norm: early steps from random weights can explode
    roi_samples_per_image: int | None = None  # proposals sampled per image for the box/mask heads; None: the model's
    #   own (torchvision: 512). Scenes with few objects need far fewer; the mask head costs in proportion to it.
    time_budget_s: float | None = None  # train for about this long: ``steps`` becomes an upper bound, lowered after
    #   ``calibration_steps`` to what the measured speed fits into the budget (the checkpoint records the count, so
    #   ``steps`` = that count reproduces the schedule when warmup_steps >= calibration_steps); the run also stops,
    #   saving, when the budget is spent (the checkpoint's step is then below its schedule's ``steps``). For a lent
    #   machine with a fixed time; None: exactly ``steps``.
    calibration_steps: int = 30  # steps timed (after 3 unmeasured ones) before the count is fixed by time_budget_s
    checkpoint_every: int = 250  # steps between resumable checkpoints (<out>.resume.pt)
    log_every: int = 25  # steps between log lines when the output is not a terminal
    seed: int = 0
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: the forward runs under torch.autocast (weights, gradients
    #   and the optimizer's state stay fp32); measured 1.5x faster steps on a CPU with AVX-512 BF16 (0.78 against
    #   1.18 s a step of 4 at 360x480). fp32: the shipped model's stages 1-6.

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every", "log_every", "calibration_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"training {name} must be >= 1, got {getattr(self, name)}")
        if self.roi_samples_per_image is not None and self.roi_samples_per_image < 4:
            raise ConfigError(f"training roi_samples_per_image must be >= 4, got {self.roi_samples_per_image}")
        if self.precision not in TRAINING_PRECISIONS:
            raise ConfigError(f"training precision must be {' or '.join(map(repr, TRAINING_PRECISIONS))}, "
                              f"got {self.precision!r}")
        if self.lr <= 0:
            raise ConfigError(f"training lr must be > 0, got {self.lr}")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ConfigError(f"training time_budget_s must be > 0 or None, got {self.time_budget_s}")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def learning_rate(config: TrainingConfig, step: int) -> float:
    """The learning rate at ``step`` (0-based): warm-up, then cosine to a hundredth of ``lr``."""
    floor = config.lr / 100
    if step < config.warmup_steps:
        return floor + (config.lr - floor) * step / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return floor + (config.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def endless(samples: Iterable[TrainingSample] | Sequence[TrainingSample], seed: int) -> Iterator[TrainingSample]:
    """Shuffled epochs of a dataset with ``len``, or the iterable itself when it is a stream."""
    if hasattr(samples, "__len__") and hasattr(samples, "__getitem__"):
        rng = np.random.default_rng(seed)
        if len(samples) == 0:  # type: ignore[arg-type]
            raise ConfigError("the training dataset has no images")
        while True:
            for i in rng.permutation(len(samples)):  # type: ignore[arg-type]
                yield samples[int(i)]  # type: ignore[index]
    else:
        yield from samples


def _make_optimizer(model: torch.nn.Module, config: TrainingConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def _to_device(sample: TrainingSample, device: torch.device) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    # .to() of a tensor already on ``device`` returns the tensor itself: nothing is copied on the CPU
    return (sample.image.to(device, non_blocking=True),
            {k: v.to(device, non_blocking=True) for k, v in sample.target.items()})


def _budgeted_steps(config: TrainingConfig, *, done: int, rate_steps_per_s: float, remaining_s: float) -> int:
    """The step count that fits ``remaining_s`` at ``rate_steps_per_s`` (kept below ``config.steps``, above ``done``)."""
    fitting = done + int(rate_steps_per_s * remaining_s * 0.97)  # 3% for checkpoints and jitter
    return max(done + 1, min(config.steps, fitting))


def train(
    model: torch.nn.Module,
    samples: Iterable[TrainingSample],
    config: TrainingConfig,
    *,
    save: Any,
    resume_path: Path | None = None,
    console: Console | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """Train ``model`` for ``config.steps`` steps on ``device``; returns the mean losses of the last 50 steps.

    ``save(model, step, final, optimizer, config)`` writes a checkpoint (the caller knows the format and
    path); ``config`` is the one in force, whose ``steps`` ``time_budget_s`` may have lowered.
    ``resume_path``: a ``.resume.pt`` written earlier; training continues from its step.
    The model is left on ``device``, in eval mode.
    """
    console = console or Console(stderr=True)
    device = torch.device(device)
    seed_everything(config.seed)
    model.to(device)
    optimizer = _make_optimizer(model, config)
    start_step = 0
    if resume_path is not None:
        state = torch.load(resume_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])  # moves the state to the parameters' device
        start_step = int(state["step"])
        seed_everything(config.seed + start_step)
        if hasattr(samples, "skipping"):  # a generated stream: go on past the samples already seen
            samples = samples.skipping(start_step * config.batch_size)
        console.print(f"resumed from {resume_path} at step {start_step}")
    stream = endless(samples, config.seed + start_step)
    if config.roi_samples_per_image is not None:
        model.roi_heads.fg_bg_sampler.batch_size_per_image = config.roi_samples_per_image
    model.train()
    recent: dict[str, list[float]] = {}
    bar = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[losses]}"),
                   TimeRemainingColumn(), console=console, disable=not console.is_terminal)
    started = time.monotonic()
    deadline = None if config.time_budget_s is None else started + config.time_budget_s
    calibration_start: tuple[int, float] | None = None
    done = start_step
    with bar:
        task = bar.add_task("train", total=config.steps, completed=start_step, losses="")
        while done < config.steps:
            step = done
            batch = [_to_device(next(stream), device) for _ in range(config.batch_size)]
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, step)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16"):
                losses = model([image for image, _ in batch], [target for _, target in batch])
            total = sum(losses.values())
            if not torch.isfinite(total):
                raise ConfigError(f"training diverged at step {step}: loss {float(total)}; lower the lr ({config.lr})")
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip_norm)
            optimizer.step()
            for name, value in {**losses, "loss": total}.items():
                recent.setdefault(name, []).append(float(value.detach()))  # float(): waits for the device
                del recent[name][:-50]
            shown = "  ".join(f"{k.removeprefix('loss_')} {np.mean(v):.3f}" for k, v in recent.items())
            done = step + 1
            now = time.monotonic()
            out_of_time = deadline is not None and now >= deadline
            if deadline is not None and done == start_step + 3:
                calibration_start = (done, now)
            elif calibration_start is not None and done == calibration_start[0] + config.calibration_steps:
                rate = config.calibration_steps / (now - calibration_start[1])
                config = replace(config, steps=_budgeted_steps(config, done=done, rate_steps_per_s=rate,
                                                               remaining_s=deadline - now))  # type: ignore[operator]
                calibration_start = None
                console.print(f"time budget {config.time_budget_s:.0f} s at {rate:.2f} steps/s: "
                              f"{config.steps} steps", highlight=False)
            elif out_of_time:  # the schedule (config.steps) stays as it was: the checkpoint says where it stopped
                console.print(f"time budget {config.time_budget_s:.0f} s spent at step {done} of {config.steps}",
                              highlight=False)
            final = done == config.steps or out_of_time
            bar.update(task, advance=1, total=config.steps, losses=shown)
            if not console.is_terminal and (done % config.log_every == 0 or final):
                rate = (done - start_step) / (now - started)
                console.print(f"step {done}/{config.steps}  lr {learning_rate(config, step):.2e}  {shown}  ({rate:.2f} steps/s)",
                              highlight=False)
            if done % config.checkpoint_every == 0 or final:
                save(model, done, final, optimizer, config)
            if out_of_time:
                break
    model.eval()
    return {k: float(np.mean(v)) for k, v in recent.items()}


def training_summary(config: TrainingConfig) -> dict[str, Any]:
    return asdict(config)
