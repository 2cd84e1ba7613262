"""Names of a run's actors: the actors find each other by name, so a restarted actor is found again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ray


@dataclass(frozen=True)
class RunNames:
    """Actor names and state keys of one run (``run_id`` keeps two runs on one cluster apart)."""

    run_id: str

    def source(self, stream_id: str) -> str:
        return f"maskstream:{self.run_id}:source:{stream_id}"

    def output(self, stream_id: str) -> str:
        return f"maskstream:{self.run_id}:output:{stream_id}"

    def dispatcher(self) -> str:
        return f"maskstream:{self.run_id}:dispatcher"

    def inference(self, replica: int) -> str:
        return f"maskstream:{self.run_id}:inference:{replica}"

    def checkpoint_key(self, stream_id: str) -> bytes:
        """Where a stream output keeps its checkpoint in Ray's GCS key-value store (outlives any worker)."""
        return f"maskstream:{self.run_id}:checkpoint:{stream_id}".encode()


class HandleCache:
    """Actor handles looked up by name once (a handle stays valid across the actor's restarts)."""

    def __init__(self) -> None:
        self._handles: dict[str, Any] = {}

    def get(self, name: str) -> Any | None:
        handle = self._handles.get(name)
        if handle is None:
            try:
                handle = ray.get_actor(name)
            except ValueError:  # not created yet, or dead for good
                return None
            self._handles[name] = handle
        return handle

    def forget(self, name: str) -> None:
        self._handles.pop(name, None)


def kv_get(key: bytes) -> bytes | None:
    from ray.experimental.internal_kv import _internal_kv_get

    return _internal_kv_get(key)


def kv_put(key: bytes, value: bytes) -> None:
    from ray.experimental.internal_kv import _internal_kv_put

    _internal_kv_put(key, value, overwrite=True)


def kv_del(key: bytes) -> None:
    from ray.experimental.internal_kv import _internal_kv_del

    _internal_kv_del(key)
