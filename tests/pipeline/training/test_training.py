"""``maskstream train`` on a tiny COCO-format dataset written by the scene generator (real video, real model)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipeline.cli import main
from pipeline.errors import ConfigError
from pipeline.model import build_model, load_checkpoint, load_model
from pipeline.scenes import CLASS_NAMES, SceneConfig, write_dataset
from pipeline.training import CocoFrames, TrainingConfig, train


@pytest.fixture(scope="module")
def coco(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data")
    paths = write_dataset(SceneConfig(seed=3, width=96, height=64, num_frames=6, min_objects=2, max_objects=3), out,
                          name="tiny")
    return paths.coco


def test_coco_frames_reads_video_frames_with_their_masks(coco: Path) -> None:
    data = CocoFrames(coco)
    assert data.class_names == CLASS_NAMES
    assert len(data) == 6
    sample = data[0]
    assert sample.image.shape == (3, 64, 96) and sample.image.dtype == torch.float32
    assert 0.0 <= float(sample.image.min()) and float(sample.image.max()) <= 1.0
    masks, boxes = sample.target["masks"], sample.target["boxes"]
    assert masks.shape[0] == boxes.shape[0] == sample.target["labels"].shape[0]
    for mask, box in zip(masks, boxes):
        ys, xs = torch.nonzero(mask, as_tuple=True)
        assert box.tolist() == [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]


def test_train_writes_a_loadable_checkpoint_and_resumes(coco: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.pt"
    common = ["train", "--data", str(coco), "--out", str(out), "--batch-size", "1", "--min-size", "64",
              "--max-size", "96", "--checkpoint-every", "1", "--warmup-steps", "1", "--seed", "1"]
    assert main([*common, "--steps", "2"]) == 0
    assert load_checkpoint(out)["extra"]["step"] == 2
    assert main([*common, "--steps", "3", "--resume"]) == 0
    checkpoint = load_checkpoint(out)
    assert checkpoint["extra"]["step"] == 3
    assert checkpoint["class_names"] == list(CLASS_NAMES)
    loaded = load_model("maskrcnn_compact", str(out), min_size=64, max_size=96, score_threshold=0.0, max_detections=5)
    assert loaded.class_names == CLASS_NAMES
    # --resume without a resume file is refused with the fix
    assert main(["train", "--data", str(coco), "--out", str(tmp_path / "other.pt"), "--steps", "1", "--resume"]) == 2


def test_training_is_seeded(coco: Path) -> None:
    def one_run() -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model = build_model("maskrcnn_compact", num_classes=len(CLASS_NAMES), min_size=64, max_size=96)
        train(model, CocoFrames(coco), TrainingConfig(steps=2, batch_size=2, warmup_steps=1, seed=5),
              save=lambda *args: None)
        return {k: v.clone() for k, v in model.state_dict().items()}

    first, second = one_run(), one_run()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_bad_dataset_is_refused_with_its_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": []}')
    with pytest.raises(ConfigError, match=r"bad\.json: not a COCO instances file \(no 'annotations'\)"):
        CocoFrames(bad)


def test_scene_samples_skipping_continues_the_same_stream() -> None:
    from itertools import islice

    from pipeline.training import SceneSamples

    samples = SceneSamples(seed=4, width=64, height=48, clip_frames=6, frame_stride=2)  # 3 samples per clip
    full = list(islice(iter(samples), 8))
    later = list(islice(iter(samples.skipping(4)), 4))  # starts inside the second clip
    for a, b in zip(full[4:], later):
        assert torch.equal(a.image, b.image)
        assert torch.equal(a.target["masks"], b.target["masks"])
    assert not torch.equal(full[0].image, later[0].image)


def test_scene_samples_interleave_clips_and_skip_into_a_group() -> None:
    from itertools import islice

    from pipeline.training import SceneSamples

    plain = SceneSamples(seed=4, width=64, height=48, clip_frames=6, frame_stride=2)  # clips of 3 samples
    by_clip = list(islice(iter(plain), 9))  # clips 0, 1, 2
    mixed = SceneSamples(seed=4, width=64, height=48, clip_frames=6, frame_stride=2, clips_interleaved=2)
    got = list(islice(iter(mixed), 9))  # group 0 = clips 0 and 1 alternating, then group 1 starts with clip 2
    expected = [by_clip[0], by_clip[3], by_clip[1], by_clip[4], by_clip[2], by_clip[5], by_clip[6]]
    for a, b in zip(got, expected):
        assert torch.equal(a.image, b.image)
        assert torch.equal(a.target["masks"], b.target["masks"])
    later = list(islice(iter(mixed.skipping(3)), 5))  # from inside group 0 into group 1
    for a, b in zip(got[3:], later):
        assert torch.equal(a.image, b.image)
    with pytest.raises(ConfigError, match="clips_interleaved >= 1"):
        SceneSamples(seed=4, clips_interleaved=0)


def test_roi_samples_per_image_is_set_on_the_model_and_checked(coco: Path) -> None:
    model = build_model("maskrcnn_compact", num_classes=len(CLASS_NAMES), min_size=64, max_size=96)
    train(model, CocoFrames(coco), TrainingConfig(steps=1, batch_size=1, warmup_steps=1, roi_samples_per_image=32),
          save=lambda *args: None)
    assert model.roi_heads.fg_bg_sampler.batch_size_per_image == 32
    with pytest.raises(ConfigError, match="roi_samples_per_image must be >= 4, got 2"):
        TrainingConfig(roi_samples_per_image=2)


def test_scene_samples_rendered_by_workers_are_the_same_stream() -> None:
    from itertools import islice

    from pipeline.training import SceneSamples

    serial = SceneSamples(seed=6, width=64, height=48, clip_frames=4, frame_stride=2, clips_interleaved=2)
    parallel = SceneSamples(seed=6, width=64, height=48, clip_frames=4, frame_stride=2, clips_interleaved=2,
                            workers=2, prefetch_groups=1)
    expected = list(islice(iter(serial), 11))  # groups of 4 samples: three groups, the last one partly
    got = list(islice(iter(parallel.skipping(1)), 10))  # the skip lands inside a group rendered by a worker
    for a, b in zip(expected[1:], got, strict=True):
        assert torch.equal(a.image, b.image)
        assert torch.equal(a.target["masks"], b.target["masks"])
        assert torch.equal(a.target["labels"], b.target["labels"])
    with pytest.raises(ConfigError, match="workers >= 0 and prefetch_groups >= 1, got -1, 2"):
        SceneSamples(seed=6, workers=-1)


def test_time_budget_fits_the_step_count_and_a_spent_budget_stops_the_run(coco: Path) -> None:
    from pipeline.training.loop import _budgeted_steps

    config = TrainingConfig(steps=1000, time_budget_s=60)
    assert _budgeted_steps(config, done=30, rate_steps_per_s=2.0, remaining_s=50) == 30 + 97  # 3% kept back
    assert _budgeted_steps(config, done=30, rate_steps_per_s=100.0, remaining_s=50) == 1000  # never above steps
    assert _budgeted_steps(config, done=30, rate_steps_per_s=0.001, remaining_s=5) == 31  # at least one more

    saved: list[tuple[int, bool, int]] = []
    model = build_model("maskrcnn_compact", num_classes=len(CLASS_NAMES), min_size=64, max_size=96)
    train(model, CocoFrames(coco), TrainingConfig(steps=50, batch_size=1, warmup_steps=1, time_budget_s=1e-3),
          save=lambda m, step, final, optimizer, in_force: saved.append((step, final, in_force.steps)))
    assert saved == [(1, True, 50)]  # spent during the first step: it stops there, saves, and keeps the schedule
    with pytest.raises(ConfigError, match="time_budget_s must be > 0 or None, got 0"):
        TrainingConfig(time_budget_s=0)


def test_a_tuple_scene_override_cycles_over_the_clips():
    from pipeline.training.datasets import _GroupRecipe

    recipe = _GroupRecipe(4, 64, 48, 6, 2, 2, (("variety", ("classic", "rich")), ("max_objects", 3)))
    configs = [recipe.scene_config(clip) for clip in range(4)]
    assert [c.variety for c in configs] == ["classic", "rich", "classic", "rich"]
    assert {c.max_objects for c in configs} == {3} and len({c.seed for c in configs}) == 4


def test_bf16_training_runs_the_forward_in_bf16_and_keeps_fp32_weights(coco: Path) -> None:
    torch.manual_seed(0)
    model = build_model("maskrcnn_compact", num_classes=len(CLASS_NAMES), min_size=64, max_size=96)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen: list[torch.dtype] = []
    first_conv = next(m for m in model.backbone.modules() if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    losses = train(model, CocoFrames(coco), TrainingConfig(steps=2, batch_size=2, warmup_steps=1, precision="bf16"),
                   save=lambda *args: None)
    assert seen and set(seen) == {torch.bfloat16}
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    after = model.state_dict()
    assert all(after[k].dtype == before[k].dtype for k in before)
    assert any(not torch.equal(after[k], before[k]) for k in before if before[k].is_floating_point())
    with pytest.raises(ConfigError, match="precision must be 'fp32' or 'bf16', got 'fp16'"):
        TrainingConfig(precision="fp16")  # type: ignore[arg-type]


def test_train_on_rich_scenes_with_the_plain_backdrop_mix_and_large_sizes_records_them(tmp_path: Path) -> None:
    out = tmp_path / "plain.pt"
    assert main(["train", "--synthetic", "3", "--variety", "rich", "--backdrops", "plain", "--rich-sizes", "24-150",
                 "--rich-objects", "4-8", "--out", str(out), "--steps", "1", "--batch-size", "1", "--min-size", "64", "--max-size", "96",
                 "--warmup-steps", "1"]) == 0
    assert ("rich, plain backdrops, rich sizes 24-150 px, rich objects 4-8"
            in load_checkpoint(out)["extra"]["training"]["source"])
    for bad in (["--backdrops", "busy"], ["--rich-sizes", "150-24"], ["--rich-sizes", "big"], ["--rich-objects", "8-4"],
                ["--rich-objects", "2.5"], ["--rich-objects", "65"]):
        with pytest.raises(SystemExit):  # argparse names the choices, or the size rule broken
            main(["train", "--synthetic", "3", *bad, "--out", str(tmp_path / "x.pt")])


def test_rich_sizes_and_counts_apply_to_the_rich_clips_of_a_mixed_stream_only() -> None:
    import argparse

    from pipeline.training.cli import _scene_overrides
    from pipeline.training.datasets import _GroupRecipe

    overrides = _scene_overrides(argparse.Namespace(variety="mixed", backdrops="plain", rich_sizes=(24.0, 150.0),
                                                    rich_objects=(4, 8)))
    recipe = _GroupRecipe(4, 320, 240, 3, 3, 2, tuple(sorted(overrides.items())))
    configs = [recipe.scene_config(c) for c in range(4)]
    assert [(c.variety, c.size_range) for c in configs] == [("classic", (16.0, 90.0)), ("rich", (24.0, 150.0))] * 2
    assert [(c.min_objects, c.max_objects) for c in configs] == [(2, 6), (4, 8)] * 2
    assert {c.backdrops for c in configs} == {"plain"}
