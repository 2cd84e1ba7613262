"""YUV 4:2:0 transfer: the host (numpy) and device (torch) conversions against PyAV's (swscale's) own RGB, on real decoded video."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from pipeline.errors import DecodeError
from pipeline.engine.preprocess import read_only_view, yuv420_to_rgb
from pipeline.frames import FrameBundle, Yuv420Frame, as_rgb, frame_in, frame_size, pixels_from_av, yuv420_to_rgb_numpy
from pipeline.scenes import SceneConfig, SceneGenerator


def _scene_images(n: int, width: int = 96, height: int = 64) -> list[np.ndarray]:
    return [f.image for f in SceneGenerator(SceneConfig(seed=11, width=width, height=height, num_frames=n))]


def _encode(path: Path, images: list[np.ndarray], codec: str, pix_fmt: str, colorspace: int | None = None) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.height, stream.width = images[0].shape[:2]
        stream.pix_fmt = pix_fmt
        if colorspace is not None:
            stream.codec_context.colorspace = colorspace
        for image in images:
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if colorspace is not None:
                frame = frame.reformat(format=pix_fmt, dst_colorspace=colorspace)
                frame.colorspace = colorspace
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _decoded(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return list(container.decode(video=0))


@pytest.mark.parametrize(
    ("name", "codec", "pix_fmt", "colorspace", "matrix", "full_range"),
    [
        ("h264.mp4", "libx264", "yuv420p", None, "bt601", False),  # untagged: swscale assumes BT.601
        ("h264-709.mp4", "libx264", "yuv420p", 1, "bt709", False),  # tagged BT.709 (HD cameras)
        ("mjpeg.avi", "mjpeg", "yuvj420p", None, "bt601", True),  # full range (MJPEG cameras)
    ],
)
def test_yuv420_frames_convert_like_pyav(tmp_path: Path, name: str, codec: str, pix_fmt: str,
                                         colorspace: int | None, matrix: str, full_range: bool) -> None:
    frames = _decoded(_encode(tmp_path / name, _scene_images(3), codec, pix_fmt, colorspace))
    assert len(frames) == 3
    for frame in frames:
        pixels = pixels_from_av(frame, "yuv420")
        assert isinstance(pixels, Yuv420Frame)
        assert (pixels.matrix, pixels.full_range) == (matrix, full_range)
        assert pixels.nbytes == 96 * 64 * 3 // 2  # half of RGB's 3 bytes a pixel
        assert frame_size(pixels) == (64, 96)
        reference = frame.to_ndarray(format="rgb24").astype(np.int16)
        diff = np.abs(pixels.to_rgb().astype(np.int16) - reference)
        assert diff.max() <= 3 and diff.mean() < 1.0, (diff.max(), diff.mean())
        # the float conversion the engine runs on the device, before any rounding
        as_float = yuv420_to_rgb(torch.from_numpy(pixels.data), 64, 96, pixels.matrix, pixels.full_range)
        assert as_float.shape == (3, 64, 96) and as_float.dtype == torch.float32
        assert float((as_float.permute(1, 2, 0) * 255 - torch.from_numpy(reference)).abs().max()) <= 3.5


def test_rgb_transfer_and_other_pixel_formats_give_rgb(tmp_path: Path) -> None:
    path = _encode(tmp_path / "444.mp4", _scene_images(2), "libx264", "yuv444p")
    frame = _decoded(path)[0]
    assert frame.format.name == "yuv444p"
    for transfer in ("rgb", "yuv420"):  # 4:4:4 is not sent as planes: RGB, converted by PyAV
        pixels = pixels_from_av(frame, transfer)
        assert isinstance(pixels, np.ndarray) and pixels.shape == (64, 96, 3) and pixels.dtype == np.uint8
        np.testing.assert_array_equal(as_rgb(pixels), frame.to_ndarray(format="rgb24"))


def test_from_rgb_round_trip_is_close() -> None:
    image = _scene_images(1, 64, 48)[0]
    yuv = Yuv420Frame.from_rgb(image)
    assert (yuv.width, yuv.height, yuv.data.size) == (64, 48, 64 * 48 * 3 // 2)
    diff = np.abs(yuv.to_rgb().astype(np.int16) - image)
    assert np.median(diff) <= 2  # chroma is shared by 2x2 blocks: edges differ more, flat areas hardly


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 5, "height": 4}, r"size must be even and >= 2, got 5x4"),
        ({"width": 4, "height": 4, "matrix": "bt2020"}, r"matrix must be one of bt601, bt709, got 'bt2020'"),
        ({"width": 4, "height": 2}, r"4x2 frame needs 12 uint8 values, got uint8 array of 24 values"),
    ],
)
def test_bad_yuv_frames_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        Yuv420Frame(data=np.zeros(24, np.uint8), **kwargs)


def test_read_only_planes_convert_without_copy_or_warning() -> None:
    """Frames read zero-copy from Ray's object store are read-only arrays."""
    import warnings

    yuv = Yuv420Frame.from_rgb(_scene_images(1, 64, 48)[0])
    yuv.data.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rgb = yuv.to_rgb()
    assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8


@pytest.mark.parametrize(("matrix", "full_range"), [("bt601", False), ("bt709", False), ("bt601", True), ("bt709", True)])
def test_numpy_and_torch_conversions_agree(matrix: str, full_range: bool) -> None:
    """The host conversion (drawing, no torch) and the engine's (torch, on the device) are the same arithmetic."""
    rng = np.random.default_rng(5)
    h, w = 38, 54
    data = rng.integers(0, 256, h * w * 3 // 2, dtype=np.uint8)  # every corner of the colour cube, clipped or not
    data.setflags(write=False)
    host = yuv420_to_rgb_numpy(data, h, w, matrix, full_range)  # type: ignore[arg-type]
    assert host.shape == (h, w, 3) and host.dtype == np.uint8 and host.flags.c_contiguous
    device = yuv420_to_rgb(read_only_view(data), h, w, matrix, full_range)  # type: ignore[arg-type]
    device_u8 = (device * 255).floor().to(torch.uint8).permute(1, 2, 0).numpy().astype(np.int16)
    diff = np.abs(host.astype(np.int16) - device_u8)
    assert diff.max() <= 1 and diff.mean() < 0.01, (diff.max(), diff.mean())  # float32 rounding at integer edges only


def test_frame_in_takes_a_bundles_slot_and_passes_a_single_frame_through():
    frames = tuple(np.full((4, 6, 3), value, np.uint8) for value in (10, 20, 30))
    bundle = FrameBundle(frames)
    assert [int(frame_in(bundle, slot)[0, 0, 0]) for slot in range(3)] == [10, 20, 30]
    assert frame_in(frames[1], 0) is frames[1]


@pytest.mark.parametrize("slot", [-1, 3])
def test_frame_in_refuses_a_slot_outside_the_bundle_naming_both(slot: int):
    bundle = FrameBundle(tuple(np.zeros((2, 2, 3), np.uint8) for _ in range(3)))
    with pytest.raises(DecodeError, match=f"slot {slot} is outside a bundle of 3 frames"):
        frame_in(bundle, slot)


def test_frame_in_refuses_a_slot_other_than_0_of_a_single_frame():
    with pytest.raises(DecodeError, match="frame slot 2 of an object holding one frame"):
        frame_in(np.zeros((2, 2, 3), np.uint8), 2)


def test_an_empty_bundle_is_refused():
    with pytest.raises(DecodeError, match="at least one frame"):
        FrameBundle(())
