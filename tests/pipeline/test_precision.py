"""precision: auto and channels_last: auto, resolved on given capabilities and on this machine's own."""

from __future__ import annotations

import pytest
import torch

from pipeline.errors import InferenceError
from pipeline.precision import Capabilities, probe_capabilities, resolve_precision

CPU_AMX = Capabilities("cpu", "AVX512", True, "AMX tiles")
CPU_PLAIN = Capabilities("cpu", "AVX2", False, "neither AMX nor AVX-512 BF16")
H100 = Capabilities("cuda", "NVIDIA H100", True, "compute capability 9.0")
T4 = Capabilities("cuda", "Tesla T4", False, "compute capability 7.5")


@pytest.mark.parametrize(
    ("capabilities", "precision", "channels_last", "why"),
    [
        (CPU_AMX, "bf16", True, "auto: the CPU computes bf16 natively: AMX tiles"),
        (CPU_PLAIN, "fp32", False, "auto: the CPU has neither AMX nor AVX-512 BF16, so bf16 would be emulated"),
        (H100, "bf16", True, "auto: the GPU computes bf16 natively: compute capability 9.0"),
        (T4, "fp16", True, "auto: no native bf16 on Tesla T4 (compute capability 7.5)"),
    ],
)
def test_auto_follows_the_device(capabilities: Capabilities, precision: str, channels_last: bool, why: str) -> None:
    choice = resolve_precision("auto", "auto", capabilities)
    assert (choice.precision, choice.channels_last) == (precision, channels_last)
    assert choice.reason.startswith(why)
    layout = f"on with {precision}" if channels_last else "off in fp32"
    assert choice.reason.endswith(f"channels-last auto: {layout}")


def test_forced_values_are_kept() -> None:
    assert resolve_precision("fp32", "auto", CPU_AMX).precision == "fp32"
    assert resolve_precision("fp32", "auto", CPU_AMX).channels_last is False
    assert resolve_precision("bf16", False, CPU_PLAIN).precision == "bf16"  # emulated, but asked for
    forced = resolve_precision("fp16", True, H100)
    assert (forced.precision, forced.channels_last, forced.reason) == ("fp16", True, "as set")
    assert resolve_precision("auto", False, CPU_AMX).channels_last is False
    assert resolve_precision("auto", True, CPU_PLAIN).channels_last is True


def test_refusals_name_the_value_and_the_fix() -> None:
    with pytest.raises(InferenceError, match="fp16 is not supported on the CPU; use bf16, fp32 or auto"):
        resolve_precision("fp16", "auto", CPU_AMX)
    with pytest.raises(InferenceError, match=r"precision 'fp8' is not one of auto, fp32, fp16, bf16"):
        resolve_precision("fp8", "auto", CPU_AMX)  # type: ignore[arg-type]
    with pytest.raises(InferenceError, match="channels_last 'yes' is not one of true, false, auto"):
        resolve_precision("auto", "yes", CPU_AMX)  # type: ignore[arg-type]


def test_the_start_line_wording() -> None:
    assert resolve_precision("auto", "auto", CPU_AMX).describe() == (
        "bf16 + channels-last (auto: the CPU computes bf16 natively: AMX tiles; channels-last auto: on with bf16)"
    )
    assert resolve_precision("fp32", False, CPU_AMX).describe() == "fp32 (as set)"


def test_this_machine_is_probed_with_torchs_own_queries() -> None:
    probed = probe_capabilities(torch.device("cpu"))
    assert probed.device_type == "cpu" and probed.name == torch.backends.cpu.get_cpu_capability()
    native = torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
    assert probed.native_bf16 == native
    choice = resolve_precision("auto", "auto", probed)
    assert choice.precision == ("bf16" if native else "fp32")
    assert choice.channels_last == native
