"""Frames to float ``(3, H, W)`` RGB tensors in ``[0, 1]`` on the device.

A frame is a uint8 ``(H, W, 3)`` RGB numpy array or a :class:`~pipeline.frames.Yuv420Frame`
(4:2:0 planes, half the bytes). Only uint8 crosses the host-device boundary (4x less than float32
for RGB, 8x less for YUV 4:2:0); the conversion to float (and from YUV) runs on the device. On
CUDA, all of a batch's frames are packed into one reusable pinned host buffer and
copied with a single ``non_blocking`` transfer. The model's ``GeneralizedRCNNTransform`` then
normalises, resizes and batches them on the device.

The torch YUV 4:2:0 -> RGB conversion lives here (:func:`yuv420_to_rgb`, with :func:`read_only_view`),
not in ``pipeline.frames``, so that the per-stream actors, which import ``pipeline.frames``, never
import torch. ``pipeline.frames.yuv420_to_rgb_numpy`` is the host (numpy) twin used for drawing.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch

from pipeline.errors import InferenceError
from pipeline.frames import (
    CHROMA_ZERO,
    LUMA_WEIGHTS,
    TV_CHROMA_STEPS,
    TV_LUMA_OFFSET,
    TV_LUMA_STEPS,
    Matrix,
    Pixels,
    Yuv420Frame,
)


def read_only_view(array: np.ndarray) -> torch.Tensor:
    """A tensor sharing ``array``'s memory, also when it is read-only (a frame read zero-copy from Ray's
    object store). Only for tensors that are read, never written."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


def yuv420_to_rgb(data: torch.Tensor, height: int, width: int, matrix: Matrix = "bt601",
                  full_range: bool = False) -> torch.Tensor:
    """I420 bytes (uint8, ``height * width * 3 // 2`` values, on any device) -> float32 ``(3, H, W)``
    RGB in ``[0, 1]`` on the same device. Chroma is repeated over its 2x2 block, as swscale does.
    ``data`` is only read (it may be a :func:`read_only_view`)."""
    flat = data.reshape(-1)
    area, quarter = height * width, (height // 2) * (width // 2)
    y = flat[:area].view(height, width).to(torch.float32)
    uv = flat[area : area + 2 * quarter].view(2, height // 2, width // 2).to(torch.float32) - CHROMA_ZERO
    uv = uv.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
    if full_range:
        y = y.div_(255.0)
        uv = uv.div_(255.0)
    else:
        y = y.sub_(TV_LUMA_OFFSET).mul_(1.0 / TV_LUMA_STEPS)
        uv = uv.mul_(1.0 / TV_CHROMA_STEPS)
    u, v = uv[0], uv[1]
    kr, kb = LUMA_WEIGHTS[matrix]
    kg = 1.0 - kr - kb
    r = y + (2 * (1 - kr)) * v
    g = y - (2 * kb * (1 - kb) / kg) * u - (2 * kr * (1 - kr) / kg) * v
    b = y + (2 * (1 - kb)) * u
    return torch.stack([r, g, b]).clamp_(0.0, 1.0)


def check_images(images: Sequence[Pixels]) -> list[Pixels]:
    """Each image must be a uint8 ``(H, W, 3)`` numpy array with ``H, W >= 1`` or a ``Yuv420Frame``;
    returns them with C-contiguous arrays."""
    out: list[Pixels] = []
    for i, img in enumerate(images):
        if isinstance(img, Yuv420Frame):
            out.append(img)
            continue
        if not isinstance(img, np.ndarray):
            raise InferenceError(
                f"image {i} of the batch is a {type(img).__name__}, expected a numpy uint8 (H, W, 3) array or a Yuv420Frame"
            )
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or img.shape[0] < 1 or img.shape[1] < 1:
            raise InferenceError(
                f"image {i} of the batch has dtype {img.dtype} and shape {img.shape}, expected uint8 (H, W, 3) RGB"
            )
        out.append(np.ascontiguousarray(img))
    return out


def to_float_chw(image_hwc: torch.Tensor) -> torch.Tensor:
    """uint8 ``(H, W, 3)`` tensor -> contiguous float32 ``(3, H, W)`` in ``[0, 1]`` (on the tensor's device)."""
    return image_hwc.permute(2, 0, 1).to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)


class Preprocessor:
    """Moves batches of frames to ``device`` as float CHW tensors (see the module docstring)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._pinned: torch.Tensor | None = None
        self._copied: torch.cuda.Event | None = None

    def __call__(self, images: Sequence[Pixels]) -> list[torch.Tensor]:
        frames = check_images(images)
        arrays = [f.data if isinstance(f, Yuv420Frame) else f for f in frames]
        if self.device.type != "cuda":
            uploaded = [read_only_view(a).to(self.device) for a in arrays]
        else:
            uploaded = self._upload_cuda(arrays)
        return [_to_float_rgb(f, t) for f, t in zip(frames, uploaded, strict=True)]

    def _upload_cuda(self, arrays: list[np.ndarray]) -> list[torch.Tensor]:
        sizes = [a.size for a in arrays]
        total = sum(sizes)
        if self._copied is not None:
            self._copied.synchronize()  # the previous batch's transfer has left the pinned buffer
        if self._pinned is None or self._pinned.numel() < total:
            self._pinned = torch.empty(max(total, 2 * (0 if self._pinned is None else self._pinned.numel())),
                                       dtype=torch.uint8, pin_memory=True)
        host = self._pinned[:total]
        host_np = host.numpy()
        offset = 0
        for a, n in zip(arrays, sizes):
            host_np[offset : offset + n] = a.reshape(-1)
            offset += n
        device_buf = torch.empty(total, dtype=torch.uint8, device=self.device)
        device_buf.copy_(host, non_blocking=True)
        self._copied = torch.cuda.Event()
        self._copied.record(torch.cuda.current_stream(self.device))
        out = []
        offset = 0
        for a, n in zip(arrays, sizes):
            out.append(device_buf[offset : offset + n].view(a.shape))
            offset += n
        return out


def _to_float_rgb(frame: Pixels, uploaded: torch.Tensor) -> torch.Tensor:
    if isinstance(frame, Yuv420Frame):
        return yuv420_to_rgb(uploaded, frame.height, frame.width, frame.matrix, frame.full_range)
    return to_float_chw(uploaded)
