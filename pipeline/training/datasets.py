"""Training samples: ``(image, target)`` pairs in torchvision's detection format.

``image``: float32 tensor ``(3, H, W)`` in ``[0, 1]``. ``target``: ``boxes`` float32 ``(N, 4)``
``(x1, y1, x2, y2)`` pixels, ``labels`` int64 ``(N,)``, ``masks`` uint8 ``(N, H, W)``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.errors import ConfigError


@dataclass(frozen=True)
class TrainingSample:
    image: torch.Tensor
    target: dict[str, torch.Tensor]


def sample_from_arrays(image: np.ndarray, masks: np.ndarray, labels: np.ndarray) -> TrainingSample:
    """``image`` uint8 (H, W, 3) RGB; ``masks`` bool (N, H, W); ``labels`` int (N,). Boxes come from the masks."""
    height, width = image.shape[:2]
    boxes = np.zeros((len(masks), 4), np.float32)
    for i, mask in enumerate(masks):
        ys, xs = np.nonzero(mask)
        boxes[i] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    return TrainingSample(
        image=torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0),
        target={
            "boxes": torch.from_numpy(boxes).reshape(-1, 4),
            "labels": torch.as_tensor(labels, dtype=torch.int64).reshape(-1),
            "masks": torch.from_numpy(np.asarray(masks, dtype=np.uint8)).reshape(-1, height, width),
        },
    )


class SceneSamples:
    """An endless, seeded stream of generated frames, clip after clip, each clip from its own seed.

    ``frame_stride`` keeps every n-th frame of a clip, so consecutive samples differ more.
    ``clips_interleaved``: this many clips are rendered side by side and their samples alternate
    (clip 0 frame 0, clip 1 frame 0, ..., clip 0 frame 1, ...), so that a batch mixes scenes
    instead of holding neighbouring frames of one clip; 1 gives the clip-after-clip stream.
    ``start_sample``: skip this many samples first (a resumed training continues the stream where
    the interrupted one stopped, instead of seeing its first clips again).
    ``workers``: processes that render groups of clips ahead (0: render in the caller's process).
    The stream is the same for every worker count: groups come back in order. A GPU trains far
    faster than one core renders (about 110 kept samples/s at 320x240 with stride 3 on this
    project's CPU machine), so a GPU training needs several.
    ``prefetch_groups``: groups rendered ahead per worker; bounds the memory held (a sample at
    320x240 is 230 KB of image plus 77 KB per object mask: a group of four 60-frame clips at stride
    3 holds 80 samples, about 40 MB with 4 objects a frame).
    ``scene_overrides``: ``SceneConfig`` fields for every clip; a tuple value cycles over the clips
    (``{"variety": ("classic", "rich")}``: even clips classic, odd ones rich).
    """

    def __init__(self, *, seed: int, width: int = 320, height: int = 240, clip_frames: int = 60,
                 frame_stride: int = 3, clips_interleaved: int = 1, scene_overrides: dict[str, Any] | None = None,
                 start_sample: int = 0, workers: int = 0, prefetch_groups: int = 2) -> None:
        if frame_stride < 1 or clip_frames < 1 or clips_interleaved < 1 or start_sample < 0:
            raise ConfigError(f"SceneSamples needs clip_frames >= 1, frame_stride >= 1, clips_interleaved >= 1 and "
                              f"start_sample >= 0, got {clip_frames}, {frame_stride}, {clips_interleaved}, {start_sample}")
        if workers < 0 or prefetch_groups < 1:
            raise ConfigError(f"SceneSamples needs workers >= 0 and prefetch_groups >= 1, got {workers}, {prefetch_groups}")
        self.seed = seed
        self.start_sample = start_sample
        self.width = width
        self.height = height
        self.clip_frames = clip_frames
        self.frame_stride = frame_stride
        self.clips_interleaved = clips_interleaved
        self.scene_overrides = dict(scene_overrides or {})
        self.workers = workers
        self.prefetch_groups = prefetch_groups

    @property
    def samples_per_clip(self) -> int:
        return -(-self.clip_frames // self.frame_stride)

    def skipping(self, count: int) -> SceneSamples:
        """The same stream, ``count`` samples further on."""
        return SceneSamples(seed=self.seed, width=self.width, height=self.height, clip_frames=self.clip_frames,
                            frame_stride=self.frame_stride, clips_interleaved=self.clips_interleaved,
                            scene_overrides=self.scene_overrides, start_sample=self.start_sample + count,
                            workers=self.workers, prefetch_groups=self.prefetch_groups)

    def __iter__(self) -> Iterator[TrainingSample]:
        first_group, skip = divmod(self.start_sample, self.samples_per_clip * self.clips_interleaved)
        for group in self._rendered_groups(first_group):
            for image, masks, labels in group[skip:]:
                yield sample_from_arrays(image, masks, labels)
            skip = 0

    def _rendered_groups(self, first_group: int) -> Iterator[list[FrameArrays]]:
        recipe = _GroupRecipe(self.seed, self.width, self.height, self.clip_frames, self.frame_stride,
                              self.clips_interleaved, tuple(sorted(self.scene_overrides.items())))
        if self.workers == 0:
            group = first_group
            while True:
                yield recipe.render(group)
                group += 1
        import multiprocessing
        from collections import deque

        # spawn, not fork: the training process may hold CUDA, which a forked child must not touch
        with multiprocessing.get_context("spawn").Pool(self.workers) as pool:
            pending: deque[Any] = deque()
            next_group = first_group
            while True:
                while len(pending) < self.workers * self.prefetch_groups:
                    pending.append(pool.apply_async(recipe.render, (next_group,)))
                    next_group += 1
                yield pending.popleft().get()


#: One generated frame's arrays: image uint8 (H, W, 3) RGB, masks bool (N, H, W), labels int64 (N,).
FrameArrays = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class _GroupRecipe:
    """How to render group ``g`` of a :class:`SceneSamples` stream (picklable, for worker processes)."""

    seed: int
    width: int
    height: int
    clip_frames: int
    frame_stride: int
    clips_interleaved: int
    scene_overrides: tuple[tuple[str, Any], ...]

    def render(self, group: int) -> list[FrameArrays]:
        """The kept frames of clips ``group * n .. group * n + n - 1`` (n = clips_interleaved), alternating."""
        clips = [self._kept_frames(group * self.clips_interleaved + j) for j in range(self.clips_interleaved)]
        return [self._arrays(frame) for frames in zip(*clips) for frame in frames]

    def scene_config(self, clip: int) -> Any:
        """The ``SceneConfig`` of clip number ``clip`` (a tuple override takes its value ``clip % len``; a ``None``
        value leaves the field at its default)."""
        from pipeline.scenes import SceneConfig

        picked = {k: v[clip % len(v)] if isinstance(v, tuple) else v for k, v in self.scene_overrides}
        overrides = {k: v for k, v in picked.items() if v is not None}
        return SceneConfig(seed=self.seed * 1_000_003 + clip, width=self.width, height=self.height,
                           num_frames=self.clip_frames, **overrides)

    def _kept_frames(self, clip: int) -> Iterator[Any]:
        from pipeline.scenes import SceneConfig, SceneGenerator

        config = self.scene_config(clip)
        # every frame is rendered (motion is stateful); only every frame_stride-th is kept
        return (frame for frame in SceneGenerator(config) if frame.index % self.frame_stride == 0)

    def _arrays(self, frame: Any) -> FrameArrays:
        masks = np.stack([g.mask for g in frame.instances]) if frame.instances else np.zeros(
            (0, self.height, self.width), bool
        )
        return frame.image, masks, np.array([g.label for g in frame.instances], np.int64)


class CocoFrames:
    """A COCO instance-segmentation dataset whose images are files, or frames of a video (``clip.mp4#17``).

    ``image_root`` is where ``file_name`` paths are relative to (default: the annotation file's folder).
    Category ids must be 1..K; the class names (background first) come from the categories.
    """

    def __init__(self, annotations: Path, *, image_root: Path | None = None) -> None:
        from pycocotools.coco import COCO

        annotations = Path(annotations)
        if not annotations.is_file():
            raise ConfigError(f"training data {annotations}: file not found")
        try:
            data = json.loads(annotations.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"training data {annotations}: not valid JSON: {exc}") from exc
        for key in ("images", "annotations", "categories"):
            if key not in data:
                raise ConfigError(f"training data {annotations}: not a COCO instances file (no {key!r})")
        self.root = Path(image_root) if image_root is not None else annotations.parent
        self.coco = COCO()
        self.coco.dataset = data
        self.coco.createIndex()
        categories = sorted(self.coco.loadCats(self.coco.getCatIds()), key=lambda c: c["id"])
        ids = [c["id"] for c in categories]
        if ids != list(range(1, len(ids) + 1)):
            raise ConfigError(f"training data {annotations}: category ids must be 1..{len(ids)}, got {ids}")
        self.class_names: tuple[str, ...] = ("background", *(c["name"] for c in categories))
        self.image_ids = sorted(self.coco.getImgIds())
        self._videos: dict[Path, list[np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, i: int) -> TrainingSample:
        info = self.coco.loadImgs(self.image_ids[i])[0]
        image = self._read_image(info)
        anns = [a for a in self.coco.loadAnns(self.coco.getAnnIds(imgIds=info["id"], iscrowd=False))]
        masks = np.stack([self.coco.annToMask(a).astype(bool) for a in anns]) if anns else np.zeros(
            (0, image.shape[0], image.shape[1]), bool
        )
        keep = masks.reshape(len(masks), -1).any(axis=1)
        labels = np.array([a["category_id"] for a in anns], np.int64)
        return sample_from_arrays(image, masks[keep], labels[keep])

    def _read_image(self, info: dict[str, Any]) -> np.ndarray:
        name = str(info["file_name"])
        path_text, _, frame = name.partition("#")
        path = self.root / path_text
        if frame:
            frames = self._videos.get(path)
            if frames is None:
                frames = self._videos[path] = _decode_all(path)
            index = int(info.get("frame_index", frame))
            if index >= len(frames):
                raise ConfigError(f"training image {name}: the video has {len(frames)} frames")
            return frames[index]
        from PIL import Image

        try:
            with Image.open(path) as img:
                return np.asarray(img.convert("RGB"))
        except OSError as exc:
            raise ConfigError(f"training image {path}: cannot be read: {exc}") from exc


def _decode_all(path: Path) -> list[np.ndarray]:
    import av

    try:
        with av.open(str(path)) as container:
            return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except (av.FFmpegError, OSError) as exc:
        raise ConfigError(f"training video {path}: cannot be decoded: {exc}") from exc
