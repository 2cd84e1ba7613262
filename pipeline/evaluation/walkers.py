"""Ground truth of human-like motion for the tracker benchmark: pedestrians on a ground plane seen in perspective.

The shapes clips of :mod:`pipeline.evaluation.tracker_eval` move at constant velocity and bounce; people
do not. Here each walker is a point ``(X, Z)`` on a flat ground (``X`` metres to the right of the camera
axis, ``Z`` metres away from the camera) with a body height of 1.55-1.95 m, seen by a pinhole camera
(:class:`Camera`) mounted above the ground and looking along ``Z``. A walker's box is upright (width about
0.4 of its height) and grows as it comes closer, its feet lower in the image. Walkers:

- walk at their own preferred speed (0.8-1.8 m/s), accelerating and slowing smoothly (no jumps);
- stop now and then for 1-5 s, and turn by 30-150 degrees (within about a second); their heading wanders a little;
- come in groups of 2-3 walking side by side or one behind the other (the followers stop and turn with
  their leader);
- enter from the sides, from the far end or from below the frame, and leave the same ways;
- cross each other at different depths: the nearer one hides the farther one.

Occlusion: a walker's *visibility* is the part of its full (unclipped) box that is inside the frame and
not covered by the boxes of walkers nearer to the camera (``Z`` smaller), as MOTChallenge's visibility
ratio. :func:`visibility` computes it exactly (union of rectangles on a compressed grid).

Scoring follows MOTChallenge's handling of objects that should not be asked of a tracker: a walker whose
visibility is below :data:`MIN_SCORED_VISIBILITY` is an *ignore* box in its frame. :func:`drop_ignored`
removes it from the ground truth, together with the predicted box matched to it (IoU >= 0.5, optimal
matching against all the frame's GT boxes, as TrackEval's MOT17 preprocessing does with distractors),
so that tracking a barely visible walker is neither rewarded nor punished.

Simulated detections (:func:`walker_detections`) use :class:`WalkerNoiseLevel`: jitter proportional to
the box's size (a detector's error on a person scales with the person), misses more likely and scores
lower the more a walker is hidden, and person-shaped false positives standing on the ground.

Everything is drawn from ``numpy.random.default_rng``: the ground truth from ``[seed]``, the detections
from ``[seed, level, clip]``; the same seeds give the same clip and detections.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from pipeline.errors import MaskstreamError
from pipeline.evaluation.metrics import MOT_IOU_THRESHOLD, MotFrame
from pipeline.evaluation.tracker_eval import FP_SCORE, LOW_SCORE, TRUE_SCORE, NoisyFrame


class WalkerError(MaskstreamError):
    """A walker clip was asked for with impossible settings (no frames, a camera that sees no ground)."""


# ----------------------------------------------------------------------------- camera


@dataclass(frozen=True)
class Camera:
    """A pinhole camera ``height_m`` above flat ground, looking horizontally along ``Z``.

    A ground point ``(X, Z)`` (metres) projects to column ``width / 2 + focal_px * X / Z`` and row
    ``horizon_y + focal_px * height_m / Z``; an upright body of ``H`` metres standing there is
    ``focal_px * H / Z`` pixels tall. With the defaults (640x360, focal 420 px, 3 m up, horizon at row 40)
    a walker 4 m away stands on the bottom row and is about 180 px tall, one 22 m away about 33 px.
    """

    width: int = 640
    height: int = 360
    focal_px: float = 420.0
    height_m: float = 3.0
    horizon_y: float = 40.0

    def box(self, x_m: float, z_m: float, body_height_m: float, body_width_m: float) -> np.ndarray:
        """The full (unclipped) xyxy box, pixels, ``(4,)`` float64, of a body standing at ``(x_m, z_m)``."""
        scale = self.focal_px / z_m
        cx = self.width / 2 + scale * x_m
        feet = self.horizon_y + scale * self.height_m
        half_w = scale * body_width_m / 2
        return np.array([cx - half_w, feet - scale * body_height_m, cx + half_w, feet])

    def half_view_m(self, z_m: float) -> float:
        """Half the width of ground seen at depth ``z_m``, metres."""
        return (self.width / 2) / self.focal_px * z_m


# ----------------------------------------------------------------------------- motion parameters

FPS = 25.0  # frames per second of the simulated clips (MOT17's sequences run at 14-30)
NEAR_Z_M = 4.0  # nearest depth where walkers start or come from below the frame (feet on the bottom row)
FAR_Z_M = 22.0  # farthest depth where walkers start (boxes about 33 px tall: small but detectable)
EXIT_NEAR_Z_M = 2.2  # a walker this close has walked out of the bottom of the frame
EXIT_FAR_Z_M = 28.0  # a walker this far has walked off into the distance
SPEED_M_S = (0.8, 1.8)  # preferred walking speeds, slow stroll to brisk walk
SPEED_TAU_S = 0.6  # time constant of speeding up and slowing down (people do not stop dead)
HEADING_NOISE_RAD = 0.12  # heading random walk, radians per sqrt(second): paths wander, not straight lines
STOP_RATE_PER_S = 0.04  # a walker stops about once every 25 s ...
STOP_DURATION_S = (1.0, 5.0)  # ... for this long (talking, looking at a phone, waiting)
TURN_RATE_PER_S = 0.06  # a turn about every 15 s ...
TURN_ANGLE_RAD = (math.radians(30), math.radians(150))  # ... by this much, left or right ...
TURN_SPEED_RAD_S = math.radians(120)  # ... done at this rate (a 90-degree turn takes 0.75 s)
BODY_HEIGHT_M = (1.55, 1.95)
BODY_ASPECT = (0.36, 0.44)  # box width over height, standing (MOT17 pedestrians: about 0.4)
GAIT_WIDTH = 0.12  # the box widens this much (relative) when the legs are apart, twice per stride
STRIDE_HZ = 0.9  # strides per second at 1.4 m/s (scales with speed)
GROUP_PROB = 0.3  # chance that an arrival is a group (of 2 or, one time in 3, 3 walkers)
GROUP_SPACING_M = 0.7  # side-by-side distance in a group (behind: the same distance back)
ENTRY_SPREAD_RAD = math.radians(40)  # an entering walker's heading is within this of straight in
OUTSIDE_MARGIN_M = 3.0  # a walker this far beyond the side of the view is gone, even one that never came in
INITIAL_WALKERS = (6, 14)  # walkers already in view on the first frame (per clip, uniform)
ARRIVALS_PER_S = (0.4, 1.2)  # arrivals (single walkers or groups) per second (per clip, uniform)


# ----------------------------------------------------------------------------- ground truth


@dataclass(frozen=True)
class WalkerFrame:
    """One frame's ground truth: ``ids`` int64 ``(N,)``, ``boxes`` float64 ``(N, 4)`` xyxy pixels clipped to the
    frame, ``visibility`` float64 ``(N,)`` in ``[0, 1]`` (see the module docstring), ``depth_m`` float64 ``(N,)``.

    Every walker whose box overlaps the frame is listed, however hidden.
    """

    ids: np.ndarray
    boxes: np.ndarray
    visibility: np.ndarray
    depth_m: np.ndarray

    def scored(self, min_visibility: float) -> np.ndarray:
        """bool ``(N,)``: the boxes that count in the scores (visibility at least ``min_visibility``)."""
        return self.visibility >= min_visibility

    def mot(self, min_visibility: float) -> MotFrame:
        """The scored boxes as a :class:`MotFrame` (ids and xyxy boxes)."""
        keep = self.scored(min_visibility)
        return MotFrame.of(self.ids[keep], self.boxes[keep])


@dataclass(frozen=True)
class WalkerClip:
    """A generated clip: ``frames`` in order, the frame size in pixels, the frame rate and the camera."""

    frames: list[WalkerFrame]
    width: int
    height: int
    fps: float
    camera: Camera


@dataclass
class Walker:
    """One walker's state (metres, radians, seconds). ``leader`` is set for a group's followers, with their
    ``offset_m`` ``(forward, left)`` in the leader's frame; they copy the leader's heading and speed."""

    walker_id: int
    x_m: float
    z_m: float
    heading: float  # radians; 0 walks towards +X (right in the image), pi / 2 away from the camera
    preferred_speed: float
    body_height_m: float
    aspect: float
    speed: float = 0.0
    target_heading: float | None = None
    stop_left_s: float = 0.0
    gait_phase: float = 0.0
    leader: Walker | None = None
    offset_m: tuple[float, float] = (0.0, 0.0)
    entered: bool = field(default=False)

    def box(self, camera: Camera) -> np.ndarray:
        """The full (unclipped) xyxy box, pixels ``(4,)``; the width breathes with the gait."""
        width_m = self.body_height_m * self.aspect * (1.0 + GAIT_WIDTH * abs(math.sin(self.gait_phase)))
        return camera.box(self.x_m, self.z_m, self.body_height_m, width_m)


def _step_leader(w: Walker, rng: np.random.Generator, dt: float) -> None:
    """Advance a leader (or a walker alone) by ``dt`` seconds: stops, turns, heading noise, smooth speed."""
    if w.stop_left_s > 0:
        w.stop_left_s -= dt
    elif rng.random() < STOP_RATE_PER_S * dt:
        w.stop_left_s = float(rng.uniform(*STOP_DURATION_S))
    if w.target_heading is None and rng.random() < TURN_RATE_PER_S * dt:
        w.target_heading = w.heading + float(rng.choice([-1.0, 1.0]) * rng.uniform(*TURN_ANGLE_RAD))
    if w.target_heading is not None:
        delta = w.target_heading - w.heading
        step = math.copysign(min(abs(delta), TURN_SPEED_RAD_S * dt), delta)
        w.heading += step
        if abs(delta) <= TURN_SPEED_RAD_S * dt:
            w.target_heading = None
    w.heading += float(rng.normal(0.0, HEADING_NOISE_RAD * math.sqrt(dt)))
    target = 0.0 if w.stop_left_s > 0 else w.preferred_speed
    w.speed += (target - w.speed) * min(1.0, dt / SPEED_TAU_S)
    w.x_m += w.speed * math.cos(w.heading) * dt
    w.z_m += w.speed * math.sin(w.heading) * dt


def _place_follower(w: Walker) -> None:
    """Put a follower at its offset from its leader, with the leader's heading and speed."""
    lead = w.leader
    if lead is None:
        return
    forward, left = w.offset_m
    c, s = math.cos(lead.heading), math.sin(lead.heading)
    w.x_m = lead.x_m + forward * c - left * s
    w.z_m = max(lead.z_m + forward * s + left * c, EXIT_NEAR_Z_M + 0.1)
    w.heading, w.speed = lead.heading, lead.speed


def _advance_gait(w: Walker, dt: float) -> None:
    w.gait_phase += math.pi * STRIDE_HZ * (w.speed / 1.4) * dt * 2


def _new_group(rng: np.random.Generator, camera: Camera, next_id: int, *, inside: bool) -> list[Walker]:
    """A walker, or a group (leader first), placed inside the view (``inside``) or entering it."""
    if inside:
        z = float(rng.uniform(NEAR_Z_M, FAR_Z_M))
        x = float(rng.uniform(-0.9, 0.9) * camera.half_view_m(z))
        heading = float(rng.uniform(-math.pi, math.pi))
    else:
        side = int(rng.integers(4))  # 0 left, 1 right, 2 far end, 3 below the frame
        spread = float(rng.uniform(-ENTRY_SPREAD_RAD, ENTRY_SPREAD_RAD))
        if side < 2:
            z = float(rng.uniform(NEAR_Z_M, FAR_Z_M))
            x = (camera.half_view_m(z) + 0.5) * (-1 if side == 0 else 1)
            heading = (0.0 if side == 0 else math.pi) + spread
        else:
            z = FAR_Z_M if side == 2 else EXIT_NEAR_Z_M + 0.2
            x = float(rng.uniform(-0.7, 0.7) * camera.half_view_m(max(z, NEAR_Z_M)))
            heading = (-math.pi / 2 if side == 2 else math.pi / 2) + spread
    leader = Walker(next_id, x, z, heading, float(rng.uniform(*SPEED_M_S)), float(rng.uniform(*BODY_HEIGHT_M)),
                    float(rng.uniform(*BODY_ASPECT)), gait_phase=float(rng.uniform(0, math.pi)))
    leader.speed = leader.preferred_speed
    group = [leader]
    if rng.random() < GROUP_PROB:
        size = 3 if rng.random() < 1 / 3 else 2
        offsets = [(0.0, GROUP_SPACING_M), (-GROUP_SPACING_M, 0.0), (0.0, -GROUP_SPACING_M)]
        for k in range(size - 1):
            f = Walker(next_id + 1 + k, x, z, heading, leader.preferred_speed, float(rng.uniform(*BODY_HEIGHT_M)),
                       float(rng.uniform(*BODY_ASPECT)), gait_phase=float(rng.uniform(0, math.pi)),
                       leader=leader, offset_m=offsets[k])
            _place_follower(f)
            group.append(f)
    return group


def _gone(w: Walker, camera: Camera) -> bool:
    """Has the walker left for good (off a side once it had been in view, too near, or too far)?"""
    if w.z_m < EXIT_NEAR_Z_M or w.z_m > EXIT_FAR_Z_M or abs(w.x_m) > camera.half_view_m(w.z_m) + OUTSIDE_MARGIN_M:
        return True
    box = w.box(camera)
    inside = box[2] > 0 and box[0] < camera.width and box[1] < camera.height
    if inside:
        w.entered = True
    return w.entered and not inside


def simulate_walkers(n_frames: int, seed: int, camera: Camera = Camera(), fps: float = FPS) -> WalkerClip:
    """A clip of ``n_frames`` frames of walkers, deterministic in ``seed`` (see the module docstring)."""
    if n_frames < 1 or fps <= 0:
        raise WalkerError(f"a walker clip needs n_frames >= 1 and fps > 0, got {n_frames} and {fps}")
    if camera.height_m <= 0 or camera.focal_px <= 0:
        raise WalkerError(f"the camera must be above the ground with a positive focal length: {camera}")
    rng = np.random.default_rng([seed])
    dt = 1.0 / fps
    walkers: list[Walker] = []
    next_id = 1
    for _ in range(int(rng.integers(INITIAL_WALKERS[0], INITIAL_WALKERS[1] + 1))):
        group = _new_group(rng, camera, next_id, inside=True)
        walkers += group
        next_id += len(group)
    arrival_rate = float(rng.uniform(*ARRIVALS_PER_S))
    frames = []
    for t in range(n_frames):
        if t > 0:
            for w in walkers:
                if w.leader is None:
                    _step_leader(w, rng, dt)
            for w in walkers:
                _place_follower(w)
                _advance_gait(w, dt)
            for _ in range(int(rng.poisson(arrival_rate * dt))):
                group = _new_group(rng, camera, next_id, inside=False)
                walkers += group
                next_id += len(group)
        gone = {id(w) for w in walkers if _gone(w, camera)}
        walkers = [w for w in walkers if id(w) not in gone]
        for w in walkers:  # a follower whose leader left walks on alone
            if w.leader is not None and id(w.leader) in gone:
                w.leader, w.preferred_speed = None, max(w.speed, SPEED_M_S[0])
        frames.append(_frame(walkers, camera))
    return WalkerClip(frames, camera.width, camera.height, fps, camera)


def _frame(walkers: Sequence[Walker], camera: Camera) -> WalkerFrame:
    """The ground truth of the current state: walkers whose box overlaps the frame, with their visibility."""
    if not walkers:
        return WalkerFrame(np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0), np.zeros(0))
    full = np.stack([w.box(camera) for w in walkers])
    depth = np.array([w.z_m for w in walkers])
    vis = visibility(full, depth, camera.width, camera.height)
    limit = np.array([camera.width, camera.height, camera.width, camera.height], np.float64)
    clipped = np.clip(full, 0, limit)
    inside = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    ids = np.array([w.walker_id for w in walkers], np.int64)
    return WalkerFrame(ids[inside], clipped[inside], vis[inside], depth[inside])


# ----------------------------------------------------------------------------- occlusion


def visibility(boxes: np.ndarray, depth: np.ndarray, width: int, height: int) -> np.ndarray:
    """Visible fraction of each box: float64 ``(N,)`` in ``[0, 1]``.

    ``boxes`` ``(N, 4)`` xyxy pixels, full (not clipped); ``depth`` ``(N,)``: smaller is nearer, and a box
    is hidden by every box strictly nearer. The visible part is the box's area inside the ``width`` x
    ``height`` frame minus the union of the nearer boxes there, over the full box's area (0 for an empty box).
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    depth = np.asarray(depth, np.float64).reshape(-1)
    frame = np.array([0.0, 0.0, float(width), float(height)])
    out = np.zeros(len(boxes))
    for i, box in enumerate(boxes):
        area = (box[2] - box[0]) * (box[3] - box[1])
        seen = _intersect(box, frame)
        if area <= 0 or seen is None:
            continue
        covers = [c for j in np.flatnonzero(depth < depth[i]) if (c := _intersect(boxes[j], seen)) is not None]
        visible = _area(seen) - _union_area(covers)
        out[i] = min(max(visible / area, 0.0), 1.0)
    return out


def _intersect(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """The overlap of two xyxy boxes, or ``None`` when they do not overlap with a positive area."""
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    return np.array([x1, y1, x2, y2]) if x2 > x1 and y2 > y1 else None


def _area(box: np.ndarray) -> float:
    return float((box[2] - box[0]) * (box[3] - box[1]))


def _union_area(rects: Sequence[np.ndarray]) -> float:
    """Exact area of a union of xyxy rectangles (coordinate compression: a grid cell is in or out)."""
    if not rects:
        return 0.0
    r = np.stack(rects)
    xs = np.unique(r[:, [0, 2]])
    ys = np.unique(r[:, [1, 3]])
    cx = (xs[:-1] + xs[1:]) / 2
    cy = (ys[:-1] + ys[1:]) / 2
    covered = np.zeros((len(cy), len(cx)), dtype=bool)
    for x1, y1, x2, y2 in r:
        covered |= ((cy > y1) & (cy < y2))[:, None] & ((cx > x1) & (cx < x2))[None, :]
    cell = np.outer(np.diff(ys), np.diff(xs))
    return float(cell[covered].sum())


# ----------------------------------------------------------------------------- scoring

MIN_SCORED_VISIBILITY = 0.2
"""GT boxes less visible than this are ignore boxes (:func:`drop_ignored`). A detector sees a walker hidden
beyond 80 % rarely (:data:`UNDETECTABLE_VISIBILITY`, :data:`DETECTABLE_VISIBILITY`): scoring such boxes would
add the same misses to every tracker, and penalise one that follows a walker behind an occluder."""


def drop_ignored(gt: WalkerFrame, pred: MotFrame, min_visibility: float = MIN_SCORED_VISIBILITY
                 ) -> tuple[MotFrame, MotFrame]:
    """The frame's scored GT and the predictions left once those matched to an ignored GT box are removed.

    Predictions are matched one-to-one to *all* GT boxes (maximum total IoU among pairs with IoU >=
    :data:`~pipeline.evaluation.metrics.MOT_IOU_THRESHOLD`); a prediction matched to a GT box whose
    visibility is below ``min_visibility`` is dropped, and so is that GT box.
    """
    scored = gt.scored(min_visibility)
    keep_pred = np.ones(len(pred.ids), dtype=bool)
    if len(pred.ids) and (~scored).any():
        from trackers.eval import box_iou

        iou = box_iou(gt.boxes, pred.boxes, box_format="xyxy")
        gain = np.where(iou >= MOT_IOU_THRESHOLD - np.finfo(float).eps, iou, 0.0)
        rows, cols = linear_sum_assignment(-gain)
        for r, c in zip(rows, cols):
            if gain[r, c] > 0 and not scored[r]:
                keep_pred[c] = False
    return gt.mot(min_visibility), MotFrame.of(pred.ids[keep_pred], pred.boxes[keep_pred])


# ----------------------------------------------------------------------------- simulated detections


@dataclass(frozen=True)
class WalkerNoiseLevel:
    """A simulated pedestrian detector's errors (see :func:`walker_detections`)."""

    level: int
    jitter_frac: float  # sigma of the per-coordinate Gaussian jitter, x by the box width and y by its height
    miss_prob: float  # probability that a fully visible walker is not detected in a frame
    fp_per_frame: float  # mean person-shaped false positives per frame (Poisson)
    low_score_prob: float  # probability that a fully visible walker's detection scores low (LOW_SCORE)


WALKER_NOISE_LEVELS: tuple[WalkerNoiseLevel, ...] = (
    WalkerNoiseLevel(0, 0.00, 0.00, 0.0, 0.00),
    WalkerNoiseLevel(1, 0.02, 0.02, 0.2, 0.05),
    WalkerNoiseLevel(2, 0.04, 0.05, 0.5, 0.10),
    WalkerNoiseLevel(3, 0.08, 0.10, 1.0, 0.20),
)
"""Level 0: only occlusion (a hidden walker is not seen, whatever the detector). Level 1 is the light noise
of a good pedestrian detector (2 % of a 100 px person is 2 px), level 3 a poor one."""

UNDETECTABLE_VISIBILITY = 0.1  # a walker less visible than this is never detected ...
DETECTABLE_VISIBILITY = 0.5  # ... one this visible or more as often as an unoccluded one; linear between
FULL_SCORE_VISIBILITY = 0.7  # below this visibility a detection scores low with probability 1 - vis / this
OCCLUDED_JITTER = 1.0  # jitter grows by this times the hidden fraction (a half-hidden box is 1.5x as noisy)
FP_BODY_HEIGHT_M = 1.7  # false positives are person-sized things standing on the ground (signs, bins, shadows)


def walker_detections(clip: WalkerClip, level: WalkerNoiseLevel, rng: np.random.Generator) -> list[NoisyFrame]:
    """Simulated detections of every frame of ``clip``: a :class:`NoisyFrame` each (``gt_ids`` -1: false positive).

    Per GT walker with visibility ``v``: detected with probability ``(1 - miss_prob) * d(v)`` (``d`` rises
    linearly from 0 at :data:`UNDETECTABLE_VISIBILITY` to 1 at :data:`DETECTABLE_VISIBILITY`); its box gets
    Gaussian jitter of ``jitter_frac * (1 + OCCLUDED_JITTER * (1 - v))`` times its width (x) and height (y);
    it scores ``U(LOW_SCORE)`` with probability ``max(low_score_prob, 1 - v / FULL_SCORE_VISIBILITY)``, else
    ``U(TRUE_SCORE)``. Plus ``Poisson(fp_per_frame)`` person-shaped false positives scoring ``U(FP_SCORE)``.
    Boxes are clipped to the frame (at least 2 px wide and tall) and the detections shuffled.
    """
    cam = clip.camera
    limit = np.array([clip.width, clip.height, clip.width, clip.height], np.float64)
    out = []
    for gt in clip.frames:
        v = gt.visibility
        detectable = np.clip((v - UNDETECTABLE_VISIBILITY) / (DETECTABLE_VISIBILITY - UNDETECTABLE_VISIBILITY), 0, 1)
        keep = rng.random(len(v)) < (1.0 - level.miss_prob) * detectable
        boxes, vis = gt.boxes[keep], v[keep]
        size = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1)
        sigma = level.jitter_frac * (1.0 + OCCLUDED_JITTER * (1.0 - vis))[:, None] * size
        boxes = boxes + rng.normal(0.0, 1.0, boxes.shape) * sigma
        p_low = np.maximum(level.low_score_prob, 1.0 - vis / FULL_SCORE_VISIBILITY)
        low = rng.random(len(boxes)) < p_low
        scores = np.where(low, rng.uniform(*LOW_SCORE, len(boxes)), rng.uniform(*TRUE_SCORE, len(boxes)))
        ids = gt.ids[keep]
        n_fp = int(rng.poisson(level.fp_per_frame)) if level.fp_per_frame else 0
        if n_fp:
            z = rng.uniform(NEAR_Z_M, FAR_Z_M, n_fp)
            x = rng.uniform(-1, 1, n_fp) * cam.half_view_m(z)
            aspect = rng.uniform(*BODY_ASPECT, n_fp)
            fp = np.stack([cam.box(x[k], z[k], FP_BODY_HEIGHT_M, FP_BODY_HEIGHT_M * aspect[k]) for k in range(n_fp)])
            boxes = np.concatenate([boxes, fp])
            scores = np.concatenate([scores, rng.uniform(*FP_SCORE, n_fp)])
            ids = np.concatenate([ids, np.full(n_fp, -1, np.int64)])
        boxes = np.clip(boxes.reshape(-1, 4), 0, limit)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 2)
        order = rng.permutation(len(scores))
        out.append(NoisyFrame(boxes[order], scores[order], ids[order]))
    return out


def walker_clips(n_clips: int, n_frames: int, seed_base: int, camera: Camera = Camera()) -> list[WalkerClip]:
    """``n_clips`` clips of ``n_frames`` frames, clip ``c`` from seed ``seed_base + c``."""
    return [simulate_walkers(n_frames, seed_base + c, camera) for c in range(n_clips)]


def noisy_walker_clip(clip: WalkerClip, level: WalkerNoiseLevel, seed: int, clip_index: int) -> list[NoisyFrame]:
    """:func:`walker_detections` drawn from ``default_rng([seed, level.level, clip_index])``."""
    return walker_detections(clip, level, np.random.default_rng([seed, level.level, clip_index]))
