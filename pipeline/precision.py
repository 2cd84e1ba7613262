"""The arithmetic a replica runs in: ``precision: auto`` and ``channels_last: auto`` resolved on its device.

The one owner of the precision names (config validation, the engine, ``maskstream eval`` and the bench all
use them) and of the rule ``auto`` follows. Importing this module does not import torch (the driver and the
per-stream actors read the config without torch); :func:`probe_capabilities` imports it when called.

The rule, with why:

- **GPU**: bf16 where the GPU computes it natively (compute capability 8.0 and newer: A100, H100, L4, ...),
  else fp16. Both run on tensor cores; bf16 has fp32's exponent range, so nothing overflows, and the engine
  keeps box coordinates in fp32 either way (see :mod:`pipeline.engine.engine`).
- **CPU**: bf16 where the CPU has bf16 instructions (AMX tiles or AVX-512 BF16, as torch itself reports
  them), else fp32: without them torch emulates bf16 and is slower than fp32. fp16 is never chosen on a
  CPU (torch's CPU fp16 autocast is slow and incomplete) and is refused when asked for.
- **channels-last** (NHWC convolutions) with ``auto``: on wherever the precision is bf16 or fp16, where
  oneDNN's and cuDNN's reduced-precision convolutions want NHWC (measured on this project's CPU: bf16 20.70
  frames/s, bf16 + channels-last 23.35, README Performance); off in fp32, where it was not measured to pay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

from pipeline.errors import InferenceError

if TYPE_CHECKING:
    import torch

Precision = Literal["fp32", "fp16", "bf16"]
"""A precision the engine runs in: fp32, or fp16/bf16 autocast."""

PrecisionSetting = Literal["auto", "fp32", "fp16", "bf16"]
"""What a config or a command line may ask for: a precision, or ``auto`` (the rule in the module docstring)."""

ChannelsLastSetting = bool | Literal["auto"]
"""``true``/``false``, or ``auto``: on with bf16/fp16, off with fp32."""

PRECISIONS: tuple[str, ...] = get_args(Precision)
PRECISION_SETTINGS: tuple[str, ...] = get_args(PrecisionSetting)


@dataclass(frozen=True)
class Capabilities:
    """What a device computes natively, as torch reports it.

    ``device_type``: ``"cpu"`` or ``"cuda"``; ``name``: the CPU's capability level or the GPU's name;
    ``native_bf16``: bf16 arithmetic in hardware; ``bf16_source``: which feature says so (for the start line),
    or why not.
    """

    device_type: str
    name: str
    native_bf16: bool
    bf16_source: str


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision and memory layout a replica runs in, and a sentence saying why (shown at start)."""

    precision: Precision
    channels_last: bool
    reason: str

    def describe(self) -> str:
        """``bf16 + channels-last (auto: ...)``: the start line's wording."""
        layout = " + channels-last" if self.channels_last else ""
        return f"{self.precision}{layout} ({self.reason})"


def probe_capabilities(device: torch.device) -> Capabilities:
    """Ask torch what ``device`` computes natively (CPU: AMX / AVX-512 BF16; CUDA: bf16 support)."""
    import torch

    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        name = torch.cuda.get_device_name(index)
        major, minor = torch.cuda.get_device_capability(index)
        native = bool(torch.cuda.is_bf16_supported(including_emulation=False))
        return Capabilities("cuda", name, native, f"compute capability {major}.{minor}")
    level = torch.backends.cpu.get_cpu_capability()
    if torch.cpu._is_amx_tile_supported():
        return Capabilities("cpu", level, True, "AMX tiles")
    if torch.cpu._is_avx512_bf16_supported():
        return Capabilities("cpu", level, True, "AVX-512 BF16")
    return Capabilities("cpu", level, False, "neither AMX nor AVX-512 BF16")


def check_supported(precision: str, device_type: str, *, where: str = "") -> None:
    """Refuse a precision the device type cannot run (fp16 on a CPU); ``where`` names the setting that chose
    the device, for the message. The config (before Ray starts) and :func:`resolve_precision` both use it."""
    if precision == "fp16" and device_type == "cpu":
        raise InferenceError(
            f"precision fp16 is not supported on the CPU{where}; use bf16, fp32 or auto (or a CUDA device)"
        )


def resolve_precision(
    precision: PrecisionSetting, channels_last: ChannelsLastSetting, capabilities: Capabilities
) -> PrecisionChoice:
    """Apply the rule of the module docstring; forced values are kept (fp16 on a CPU is refused)."""
    if precision not in PRECISION_SETTINGS:
        raise InferenceError(f"precision {precision!r} is not one of {', '.join(PRECISION_SETTINGS)}")
    if channels_last not in (True, False, "auto"):
        raise InferenceError(f"channels_last {channels_last!r} is not one of true, false, auto")
    on_cpu = capabilities.device_type == "cpu"
    check_supported(precision, capabilities.device_type)
    if precision == "auto":
        chosen: Precision
        if capabilities.native_bf16:
            chosen = "bf16"
            why = f"the {'CPU' if on_cpu else 'GPU'} computes bf16 natively: {capabilities.bf16_source}"
        elif on_cpu:
            chosen, why = "fp32", f"the CPU has {capabilities.bf16_source}, so bf16 would be emulated"
        else:
            chosen, why = "fp16", f"no native bf16 on {capabilities.name} ({capabilities.bf16_source})"
        reason = f"auto: {why}"
    else:
        chosen, reason = precision, "as set"
    layout = chosen != "fp32" if channels_last == "auto" else bool(channels_last)
    if channels_last == "auto":
        reason += "; channels-last auto: " + ("on with " + chosen if layout else "off in fp32")
    return PrecisionChoice(precision=chosen, channels_last=layout, reason=reason)
