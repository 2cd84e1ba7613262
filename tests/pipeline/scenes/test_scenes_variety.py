"""The rich variety: exact GT with distractors, clipping at the frame's edge, determinism; the classic
variety unchanged."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest

from pipeline.errors import ConfigError
from pipeline.scenes import SceneConfig, SceneFrame, SceneGenerator
from pipeline.scenes.backdrops import BACKDROP_KINDS, draw_kind, make_backdrop
from pipeline.scenes.distractors import DISTRACTOR_KINDS, Distractor, random_distractor, rasterize_distractor
from pipeline.scenes.effects import object_contrast, toward
from pipeline.scenes.motion import SceneObject, World
from pipeline.scenes.shapes import SQUARE, random_appearance

SMALL = {"width": 96, "height": 64, "num_frames": 12, "min_objects": 3, "max_objects": 5}


def digest(frames: list[SceneFrame]) -> str:
    h = hashlib.sha256()
    for f in frames:
        h.update(f.image.tobytes())
        for g in f.instances:
            h.update(g.mask.tobytes())
            h.update(repr((g.track_id, g.label, g.box)).encode())
    return h.hexdigest()


def test_classic_is_the_generator_the_shipped_model_was_trained_on() -> None:
    # digest of the generator before the variety existed (commit 9f47b88), same config
    frames = list(SceneGenerator(SceneConfig(seed=5, variety="classic", **SMALL)))
    assert digest(frames) == "96a2d0bccff0f255118034935a42b4a4e07f04e9a8d981f606cdc595836cce42"


def test_classic_is_the_default_and_rich_is_deterministic_by_seed() -> None:
    assert SceneConfig().variety == "classic" and SceneConfig().size_range == (16.0, 90.0)
    assert SceneConfig(variety="rich").size_range == (8.0, 150.0)
    first = list(SceneGenerator(SceneConfig(seed=9, variety="rich", **SMALL)))
    assert digest(first) == digest(list(SceneGenerator(SceneConfig(seed=9, variety="rich", **SMALL))))
    assert digest(first) != digest(list(SceneGenerator(SceneConfig(seed=10, variety="rich", **SMALL))))
    assert digest(first) != digest(list(SceneGenerator(SceneConfig(seed=9, **SMALL))))


def test_variety_is_validated_and_in_the_url() -> None:
    assert SceneConfig.from_url("synthetic:variety=rich&sizes=20-40") == SceneConfig(
        variety="rich", min_size=20.0, max_size=40.0)
    assert SceneConfig.from_url("synthetic:variety=rich").max_size == 150.0
    with pytest.raises(ConfigError, match=r"SceneConfig\.variety: got 'fancy', expected one of classic, rich"):
        SceneConfig(variety="fancy")
    with pytest.raises(ConfigError, match=r"key 'variety' gives variety='x'"):
        SceneConfig.from_url("synthetic:variety=x")


def test_a_bar_distractor_covers_the_hand_computed_pixels() -> None:
    app = random_appearance(np.random.default_rng(0), 0, 10.0)
    bar = Distractor("bar", 10.0, 10.0, 10.0, 0.0, 0.5, app, (2.0,))  # 10 x 5 px about (10, 10)
    stamp = rasterize_distractor(bar, 40, 30)
    assert stamp is not None
    covered = np.zeros((30, 40), bool)
    covered[stamp.y0 : stamp.y1, stamp.x0 : stamp.x1] = stamp.mask
    expected = np.zeros((30, 40), bool)
    expected[7:13, 5:15] = True  # centres x in [5, 15], y in [7.5, 12.5]
    np.testing.assert_array_equal(covered, expected)
    assert stamp.colors.shape == (60, 3)


@pytest.mark.parametrize("kind", DISTRACTOR_KINDS)
def test_every_distractor_kind_rasterises_within_its_reach(kind: str) -> None:
    rng = np.random.default_rng(3)
    drawn = (random_distractor(rng, 200, 200, 20, 60) for _ in range(400))
    for d in [dataclasses.replace(d, x=100.0, y=100.0) for d in drawn if d.kind == kind][:5]:
        stamp = rasterize_distractor(d, 200, 200)
        assert stamp is not None and 0 < int(stamp.mask.sum()) < (2 * d.size + 3) ** 2
        ys, xs = np.nonzero(stamp.mask)
        reach = np.hypot(xs + stamp.x0 + 0.5 - d.x, ys + stamp.y0 + 0.5 - d.y).max()
        assert reach <= 0.75 * d.size + 1


def with_distractors(config: SceneConfig, front: Distractor, back: Distractor) -> SceneGenerator:
    """``config``'s generator with two distractors added: ``front`` above every object, ``back`` below."""
    gen = SceneGenerator(config)
    stamps = tuple((d.z, rasterize_distractor(d, config.width, config.height)) for d in (front, back))
    gen.style = dataclasses.replace(gen.style, distractors=stamps)  # type: ignore[arg-type]
    return gen


def test_distractors_are_never_in_gt_and_hide_exactly_the_pixels_they_cover() -> None:
    config = SceneConfig(seed=4, width=96, height=64, num_frames=30, min_objects=4, max_objects=6,
                         variety="classic", min_visible_area=1)
    app = random_appearance(np.random.default_rng(1), 0, 40.0)
    front = Distractor("bar", 48.0, 32.0, 60.0, 0.0, 2.0, app, (2.0,))  # 60 x 30 px; objects' z is in [0, 1)
    back = Distractor("ring", 30.0, 30.0, 40.0, 0.0, -1.0, app, (0.5,))
    plain = list(SceneGenerator(config))
    mixed = list(with_distractors(config, front, back))
    cover = np.zeros((64, 96), bool)
    cover[17:47, 18:78] = True  # the front bar: pixel centres x + 0.5 in [18, 78], y + 0.5 in [17, 47]
    hidden_somewhere = False
    for a, b in zip(plain, mixed, strict=True):
        expected = {g.track_id: g.mask & ~cover for g in a.instances if (g.mask & ~cover).any()}
        assert {g.track_id: g.label for g in b.instances} == {
            g.track_id: g.label for g in a.instances if g.track_id in expected}
        for g in b.instances:
            np.testing.assert_array_equal(g.mask, expected[g.track_id])
            assert not (g.mask & cover).any()
        hidden_somewhere |= any((g.mask & cover).any() for g in a.instances)
        assert not np.array_equal(a.image, b.image)
    assert hidden_somewhere  # the front bar did hide object pixels


def test_an_object_across_the_frame_edge_is_clipped_exactly() -> None:
    config = SceneConfig(seed=0, width=40, height=40, num_frames=1, min_objects=1, max_objects=1, variety="classic")
    gen = SceneGenerator(config)
    world = World(config, np.random.default_rng(0))
    app = random_appearance(np.random.default_rng(2), SQUARE, 10.0)
    world.objects = [SceneObject(7, app, x=2.0, y=20.0, vx=0, vy=0, ax=0, ay=0, angle=0.0, spin=0.0, z=0.5)]
    frame = gen._render(0, world, np.random.default_rng(0))
    (inst,) = frame.instances
    expected = np.zeros((40, 40), bool)
    expected[15:25, 0:7] = True  # centres x in [-3, 7] clipped at 0 -> columns 0..6; y in [15, 25] -> rows 15..24
    np.testing.assert_array_equal(inst.mask, expected)
    assert inst.box == (0.0, 15.0, 7.0, 25.0) and inst.track_id == 7 and inst.area == 70


def test_rich_scenes_place_objects_across_edges_and_use_a_wide_range_of_sizes() -> None:
    touching, sizes = 0, []
    for seed in range(30):
        world = World(SceneConfig(seed=seed, num_frames=1, variety="rich"), np.random.default_rng(seed))
        for obj in world.objects:
            r = obj.appearance.radius
            touching += obj.x - r < 0 or obj.y - r < 0 or obj.x + r > 320 or obj.y + r > 240
            sizes.append(obj.appearance.size)
    assert touching >= 20
    assert min(sizes) < 12 and max(sizes) > 110


def test_camera_effects_change_pixels_never_gt() -> None:
    config = SceneConfig(seed=12, variety="rich", **SMALL)
    rich = SceneGenerator(config)
    rich.style = dataclasses.replace(rich.style, jpeg_quality=20)
    bare = SceneGenerator(config)
    bare.style = dataclasses.replace(bare.style, jpeg_quality=None, lighting=None)
    for a, b in zip(rich, bare, strict=True):
        assert [g.track_id for g in a.instances] == [g.track_id for g in b.instances]
        assert all(np.array_equal(g.mask, h.mask) for g, h in zip(a.instances, b.instances))
        assert not np.array_equal(a.image, b.image)


def test_low_contrast_objects_and_colour_pull() -> None:
    factors = [object_contrast(3, i) for i in range(1, 401)]
    low = [f for f in factors if f < 1.0]
    assert 60 <= len(low) <= 140 and all(0.15 <= f <= 0.4 for f in low)
    assert object_contrast(3, 5) == object_contrast(3, 5)
    pulled = toward(np.array([[200, 100, 0]], np.uint8), np.array([100.0, 100.0, 100.0], np.float32), 0.25)
    np.testing.assert_array_equal(pulled, [[125, 100, 75]])


@pytest.mark.parametrize("kind", BACKDROP_KINDS)
def test_every_backdrop_kind_is_a_deterministic_uint8_image(kind: str) -> None:
    a = make_backdrop(np.random.default_rng(8), 64, 48, 0.2, kind)
    b = make_backdrop(np.random.default_rng(8), 64, 48, 0.2, kind)
    assert a.dtype == np.uint8 and a.shape == (48, 64, 3) and a.flags.c_contiguous
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, make_backdrop(np.random.default_rng(9), 64, 48, 0.2, kind))


def test_the_even_backdrop_mix_is_the_rich_scenes_before_mixes_existed() -> None:
    # the digest of these frames from the generator at commit 3d27c32, before SceneConfig.backdrops existed:
    # the stage 7 and 8 training commands (pipeline/models/README.md) still make the same scenes
    frames = list(SceneGenerator(SceneConfig(seed=3, variety="rich", **SMALL)))
    assert SceneConfig().backdrops == "even"
    assert digest(frames) == "cf4d96c5e08a61eeda65e30ab81237b2fdc392d7763162d90683f0c0527a2ac1"


def test_the_plain_backdrop_mix_draws_plain_kinds_by_its_weights() -> None:
    rng = np.random.default_rng(0)
    counts = {kind: 0 for kind in BACKDROP_KINDS}
    for _ in range(6000):
        counts[draw_kind(rng, "plain")] += 1
    # weights 1, 3, 2, 2, 1, 1 of 10 (classic, flat, gradient, noise, texture, clutter); 3 sigma is about 0.018
    shares = {kind: n / 6000 for kind, n in counts.items()}
    expected = {"classic": 0.1, "flat": 0.3, "gradient": 0.2, "noise": 0.2, "texture": 0.1, "clutter": 0.1}
    assert all(abs(shares[k] - expected[k]) < 0.025 for k in BACKDROP_KINDS), shares
    even = np.random.default_rng(0)
    assert all(draw_kind(even) == BACKDROP_KINDS[i] for i in np.random.default_rng(0).integers(6, size=300))


def test_backdrops_is_validated_and_in_the_url() -> None:
    with pytest.raises(ConfigError, match=r"SceneConfig.backdrops: got 'busy', expected one of even, plain"):
        SceneConfig(variety="rich", backdrops="busy")
    assert SceneConfig.from_url("synthetic:variety=rich,backdrops=PLAIN").backdrops == "plain"
    rich = [SceneGenerator(SceneConfig(seed=s, variety="rich", backdrops="plain", **SMALL)).background for s in range(4)]
    even = [SceneGenerator(SceneConfig(seed=s, variety="rich", **SMALL)).background for s in range(4)]
    assert any(not np.array_equal(a, b) for a, b in zip(rich, even))
