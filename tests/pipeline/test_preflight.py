from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest

from pipeline.config import PipelineConfig, load_config
from pipeline.errors import ConfigError
from pipeline.preflight import PER_STREAM_MEMORY_MB, machine_memory_bytes, memory_problem, preflight, preflight_problems

GIB = 1024**3


def config_at(tmp_path: Path, body: str) -> tuple[Path, PipelineConfig]:
    path = tmp_path / "pipeline.yaml"
    path.write_text(body)
    return path, load_config(path)


def test_a_config_whose_files_exist_passes(tmp_path: Path) -> None:
    (tmp_path / "clip.mp4").write_bytes(b"\0" * 16)
    (tmp_path / "model.pt").write_bytes(b"\0" * 16)
    _, config = config_at(
        tmp_path,
        "streams: [{id: a, url: clip.mp4}, {id: b, url: 'file://clip.mp4'}, {id: c, url: 'rtsp://cam/1'},"
        " {id: d, url: 'synthetic:seed=1&frames=5'}]\n"
        "model: {weights: model.pt}\nsinks: {video: {dir: out/videos}, jsonl: {dir: out}}\n",
    )
    assert preflight_problems(config, total_memory_bytes=64 * GIB) == []
    preflight(config, total_memory_bytes=64 * GIB)


def test_every_problem_is_listed_with_its_yaml_path(tmp_path: Path) -> None:
    (tmp_path / "clips").mkdir()
    (tmp_path / "weights").mkdir()
    (tmp_path / "taken").write_text("a file where a folder should be")
    path, config = config_at(
        tmp_path,
        "streams:\n"
        "  - {id: ok, url: 'synthetic:'}\n"
        "  - {id: missing, url: nope.mp4}\n"
        "  - {id: folder, url: clips}\n"
        "  - {id: fileurl, url: 'file:///nonexistent/cam.mp4'}\n"
        "  - {id: badscene, url: 'synthetic:fps=fast'}\n"
        "model: {weights: weights}\n"
        "sinks: {video: {dir: taken}, jsonl: {dir: taken/sub}}\n",
    )
    with pytest.raises(ConfigError) as err:
        preflight(config, source=str(path), total_memory_bytes=64 * GIB)
    lines = str(err.value).splitlines()
    assert lines[0] == f"{path}: 7 problems found before starting"
    assert lines[1] == f"  streams[1].url: file does not exist: {tmp_path / 'nope.mp4'}"
    assert lines[2] == f"  streams[2].url: is a folder, not a file: {tmp_path / 'clips'}"
    assert lines[3] == "  streams[3].url: file does not exist: /nonexistent/cam.mp4"
    assert lines[4].startswith("  streams[4].url: synthetic source url 'synthetic:fps=fast'") and "fps" in lines[4]
    assert lines[5] == f"  model.weights: is a folder, not a file: {tmp_path / 'weights'}"
    assert lines[6] == f"  sinks.video.dir: is a file, not a folder: {tmp_path / 'taken'}"
    assert lines[7] == f"  sinks.jsonl.dir: cannot be created: {tmp_path / 'taken'} is a file, not a folder"


def test_missing_weights_hint_at_what_a_weights_value_can_be(tmp_path: Path) -> None:
    _, config = config_at(tmp_path, "streams: [{id: a, url: 'synthetic:'}]\nmodel: {weights: Default}\n")
    (problem,) = preflight_problems(config, total_memory_bytes=64 * GIB)
    assert problem.startswith(f"model.weights: file does not exist: {tmp_path / 'Default'}")
    assert "named like DEFAULT or COCO_V1" in problem and "none: random weights" in problem
    _, named = config_at(tmp_path, "streams: [{id: a, url: 'synthetic:'}]\nmodel: {weights: DEFAULT}\n")
    assert preflight_problems(named, total_memory_bytes=64 * GIB) == []  # torchvision weights: the loader's to fetch


def test_an_unreadable_file_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\0")
    _, config = config_at(tmp_path, "streams: [{id: a, url: clip.mp4}]\n")
    real_open = os.open

    def refusing_open(path: object, flags: int, *args: object) -> int:
        if Path(str(path)) == clip:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)  # type: ignore[arg-type]

    # root reads a chmod-000 file all the same, so the refusal is simulated where the check asks the system
    monkeypatch.setattr(os, "open", refusing_open)
    assert preflight_problems(config, total_memory_bytes=64 * GIB) == [
        f"streams[0].url: cannot be read (Permission denied): {clip}"
    ]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read a file without read permission")
def test_a_file_without_read_permission_is_reported(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\0")
    clip.chmod(0)
    _, config = config_at(tmp_path, "streams: [{id: a, url: clip.mp4}]\n")
    assert preflight_problems(config, total_memory_bytes=64 * GIB) == [
        f"streams[0].url: cannot be read (Permission denied): {clip}"
    ]


def test_more_streams_than_a_local_ray_can_hold_are_refused(tmp_path: Path) -> None:
    streams = ", ".join(f"{{id: s{i}, url: 'synthetic:'}}" for i in range(1000))
    path, config = config_at(tmp_path, f"streams: [{streams}]\nrun: {{max_streams: 1000}}\n")
    with pytest.raises(ConfigError) as err:
        preflight(config, source=str(path), total_memory_bytes=24 * GIB)
    text = str(err.value)
    needed_gib = 1000 * PER_STREAM_MEMORY_MB / 1024
    assert text.startswith(f"{path}: 1 problem found before starting\n  streams: 1000 streams need about {needed_gib:.1f} GiB")
    assert f"an estimated {PER_STREAM_MEMORY_MB} MB per stream" in text
    fits = 24 * 1024 // PER_STREAM_MEMORY_MB
    assert "this machine's 24.0 GiB of memory" in text and f"at most {fits} streams here" in text
    assert "ray.address" in text
    # joining a cluster: the cluster's memory is not this machine's, so no estimate is made here
    joined = config.model_copy(update={"ray": config.ray.model_copy(update={"address": "auto"})})
    assert preflight_problems(joined, total_memory_bytes=24 * GIB) == []


def test_memory_problem_bounds() -> None:
    fits = 24 * 1024 // PER_STREAM_MEMORY_MB  # streams whose estimate fits in 24 GiB
    assert memory_problem(fits, 24 * GIB) is None
    assert memory_problem(fits + 1, 24 * GIB) is not None
    assert memory_problem(10_000, None) is None  # memory unknown: nothing is refused on a guess
    memory = machine_memory_bytes()
    assert memory is not None and memory > 256 * 1024 * 1024


def test_run_refuses_a_missing_file_before_ray_is_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli import main

    started: list[object] = []
    fake_graph = types.ModuleType("actors.graph")
    fake_graph.PipelineRunner = lambda *args, **kwargs: started.append(args)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "actors.graph", fake_graph)
    path = tmp_path / "pipeline.yaml"
    path.write_text("streams: [{id: a, url: 'synthetic:'}, {id: b, url: gone.mp4}]\n")
    assert main(["run", str(path), "--no-progress"]) == 2
    assert started == []
    err = capsys.readouterr().err
    assert "streams[1].url: file does not exist:" in err and "gone.mp4" in err
