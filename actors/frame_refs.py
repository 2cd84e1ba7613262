"""Reading frames back from the object store: each reference names a ``FrameBundle``, each meta its slot."""

from __future__ import annotations

from typing import Any

import ray

from pipeline.frames import Pixels, frame_in
from pipeline.messages import FrameMeta


def fetch_frames(metas: list[FrameMeta], frame_refs: list[Any]) -> list[Pixels | None]:
    """The pixels of each frame, in order: every distinct object read once, the frame taken at ``meta.slot``.

    A frame whose object is lost (its source's process died and took the object with it) is ``None``:
    the restarted source sends that frame again. The others are returned as usual.
    """
    if len(metas) != len(frame_refs):
        raise ValueError(f"fetch_frames: {len(metas)} metas but {len(frame_refs)} frame references")
    distinct = list(dict.fromkeys(frame_refs))
    objects = dict(zip(distinct, _get_each(distinct), strict=True))
    return [None if objects[ref] is None else frame_in(objects[ref], meta.slot)
            for meta, ref in zip(metas, frame_refs, strict=True)]


def _get_each(refs: list[Any]) -> list[Any]:
    try:
        return list(ray.get(refs))
    except ray.exceptions.ObjectLostError:
        pass
    objects: list[Any] = []
    for ref in refs:  # one or more is lost: keep the others
        try:
            objects.append(ray.get(ref))
        except ray.exceptions.ObjectLostError:
            objects.append(None)
    return objects
