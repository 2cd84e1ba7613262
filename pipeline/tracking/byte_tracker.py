"""ByteTrack-style multi-object tracker: one instance per stream, fed one frame at a time.

Per :meth:`ByteTracker.update` (one frame):

1. The Kalman filter predicts every track (tentative, tracked and lost) one frame on.
2. Detections are split by score: *high* (``>= high_score_threshold``), *low*
   (``low_score_threshold <= score < high_score_threshold``), and ignored (below).
3. Association of confirmed tracks (tracked and lost): ONE optimal assignment against the
   high and the low detections together. A high detection may match at IoU
   ``>= match_iou_threshold``; a low one at ``>= low_match_iou_threshold``, and its IoU
   counts ``low_score_weight`` times (0.8 by default) in the assignment, so a track
   prefers a high detection it overlaps about as well. This keeps ByteTrack's idea: a
   partly occluded or blurred object often drops to a low score, and its detection is
   far more likely to be the object than a false positive when it sits where a track
   predicts. Unlike ByteTrack's two passes (high detections first, then the tracks
   left over against the low ones), the low detections are in the same assignment as
   the high ones: when two tracks overlap a high detection about equally (one walker
   passing in front of another), the hidden one's low detection decides which track
   takes which, instead of the first pass handing the high detection to either by a
   hair and leaving the other track only the low one (an identity switch). Lost tracks
   take part too, as in roboflow ``trackers``: an object coming out from behind
   another often reappears with a low score. Low detections never start tracks.
4. Tentative tracks (see ``min_hits_to_confirm``) against the high detections left.
5. Unmatched tentative tracks are deleted; unmatched tracked ones become lost; lost
   ones unmatched for more than ``lost_track_buffer_frames`` frames are deleted.
6. Each high detection left with a score ``>= new_track_score_threshold`` starts a
   track with a fresh id.

Matching is optimal one-to-one assignment (Hungarian) on IoU; see
:func:`pipeline.tracking.matching.linear_assignment` for how the gate is applied.

**Mask-IoU association** (``use_mask_iou=True``): a Kalman prediction is a box, not a
mask, so a track's similarity to a detection is the IoU of the track's *last observed
mask shifted by the Kalman displacement* (predicted centre minus the centre of the
last observed box, rounded to whole pixels) with the detection's mask. The shift is
done on the RLE runs and the IoU by ``pycocotools.mask.iou``, so no mask is decoded
to a full frame. The same thresholds gate the mask IoU. Box IoU is not used at all in
this mode: masks separate overlapping objects (two people side by side, one behind
the other) whose boxes overlap heavily. A mask's size must not change between
frames of one tracker (call :meth:`ByteTracker.reset` when the stream's resolution
changes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.errors import ConfigError, MaskstreamError
from pipeline.tracking.kalman import KalmanFilter, xyxy_to_cxcywh
from pipeline.tracking.matching import box_iou, linear_assignment, mask_duplicates, mask_iou, shift_rle
from pipeline.tracker_params import check_param, score_order_problems
from pipeline.tracking.track import Track, TrackState


_GATED = 1e-9
"""The threshold given to :func:`linear_assignment` for the joint association: the gates were applied per pair
by :meth:`ByteTracker._joint_similarity` (0 = gated out), so any pair left with a positive similarity may match."""


class TrackingError(MaskstreamError):
    """The input of one :meth:`ByteTracker.update` call is malformed; the message says which array and why."""


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"ByteTracker: {name} must be True or False, got {value!r}")
    return bool(value)


class ByteTracker:
    """Assigns persistent ids to the detections of consecutive frames of one stream.

    Keyword arguments (all validated; a bad value raises :class:`ConfigError` naming it):

    - ``high_score_threshold`` (``[0, 1]``, default 0.6): detections at or above it take
      part in the first association pass and may start tracks. Higher: fewer false
      positives tracked, but more objects only reachable through the second pass.
    - ``low_score_threshold`` (``[0, high_score_threshold]``, default 0.1): detections
      between it and ``high_score_threshold`` are used only in the second pass, to
      continue tracks (occluded or blurred objects); below it they are ignored.
      Lower: more occlusions bridged, but more clutter can hijack a track.
    - ``new_track_score_threshold`` (``[high_score_threshold, 1]``, default 0.7): an
      unmatched high detection at or above it starts a track. Higher: fewer spurious
      tracks (and ids), but an object's track starts later.
    - ``match_iou_threshold`` (``(0, 1]``, default 0.2): minimum IoU (box, or mask with
      ``use_mask_iou``) between a track's prediction and a detection in the first pass
      and for tentative tracks. Lower: fast or erratic objects stay matched, but
      neighbouring objects can swap ids.
    - ``low_match_iou_threshold`` (``(0, 1]``, default 0.3): the same for low detections.
      Stricter than for high ones because low detections are less trustworthy.
    - ``low_score_weight`` (``(0, 1]``, default 0.8): how much a low detection's IoU counts
      against a high one's in the association (step 3 of the module docstring). Lower: a
      track keeps to high detections (near 0 is ByteTrack's two passes: the low detections
      only break ties and take the tracks left over); higher: low and high detections
      compete on IoU alone, and a low false positive sitting on a track can take it from
      its real, high detection. Chosen on simulated walkers (``docs/eval/tune_tracker.py``,
      tuning seeds 777100000+ and 777200000+, 8 clips each, not the reported ones): IDF1 at
      noise levels 0-3 0.925/0.900/0.834/0.782 (first set) with two passes, 0.926/0.903/
      0.837/0.790 at 0.5, 0.926/0.904/0.841/0.794 at 0.8; MOTA higher too, and fewer
      identity switches at every level but the noisiest (where 0.5 has fewer).
    - ``lost_track_buffer_frames`` (integer ``>= 0``, default 30): a confirmed track
      missed for up to this many consecutive frames is kept (lost) while the Kalman
      filter extrapolates its motion, and a detection matching it gets its old id back;
      missed one more frame, it is deleted. Larger: longer occlusions bridged, but a
      different object entering where a lost one was predicted may inherit its id. At
      30 fps the default is one second.
    - ``min_hits_to_confirm`` (integer ``>= 1``, default 1): a new track is *tentative*
      until it has been matched on this many consecutive frames (its birth included).
      Every track gets its id at birth, and :meth:`update` returns it from the first
      frame on, so ids are stable; but a tentative track that misses a frame is deleted
      at once instead of being kept as lost, so a one-frame false positive does not sit
      in the lost buffer and cannot later steal a real object's detection. The default
      1 confirms at birth: every returned id is a real, bufferable track, and ids
      increase without gaps. Use 2-3 with a noisy detector (the price: ids of deleted
      tentative tracks are never reused, so ids may have gaps, and an object missed on
      its second frame restarts with a new id).
    - ``use_mask_iou`` (default False): associate on mask IoU instead of box IoU (see the
      module docstring); :meth:`update` then requires masks.
    - ``class_aware`` (default False): a track only matches detections of its label;
      :meth:`update` then requires labels. Off, a track may follow a detection whose
      class flickers between frames (the track takes the latest label).
    - ``duplicate_mask_iou_threshold`` (``(0, 1]`` or ``None``, default 0.3; used when
      :meth:`update` gets masks): a detection whose mask overlaps a higher-scoring
      detection's mask of the same frame with at least this IoU is a duplicate and is not
      tracked (it gets ``None``). Mask R-CNN suppresses overlaps per class only, so a
      detector unsure of the class reports one object once per class, plus fragments of
      it; tracked, these keep ghost tracks alive. Masks, unlike boxes, tell duplicates from
      two real objects that overlap (their visible masks barely intersect). Lower: fewer
      ghost tracks, but a partly hidden object whose predicted mask spills over its
      occluder's may lose its track. ``None``: off. Chosen on two generated tuning videos
      (scene seeds 777777 and 777778, not the evaluation's) with the shipped model's
      detections: 1 - (FP + FN) / GT at box IoU 0.5 (greedy matching, ID switches not
      counted) went from 0.20 without the rule to 0.83 at 0.3 (0.76 at 0.5, 0.69 at 0.7).

    The defaults are generic: they were chosen on simulated detections (``maskstream eval``'s
    tracker part, tuning seeds disjoint from the reported ones), where they gave a higher IDF1
    than roboflow ``trackers``' ByteTrack at every noise level. A real detector's score
    distribution decides the score thresholds and ``min_hits_to_confirm``: the shipped
    ``pipeline.yaml`` sets them for the shipped model, found with ``docs/eval/tune_tracker.py``.

    Every instance has its own id counter: ids start at 1; :meth:`reset` restarts it.
    """

    def __init__(
        self,
        *,
        high_score_threshold: float = 0.6,
        low_score_threshold: float = 0.1,
        new_track_score_threshold: float = 0.7,
        match_iou_threshold: float = 0.2,
        low_match_iou_threshold: float = 0.3,
        low_score_weight: float = 0.8,
        lost_track_buffer_frames: int = 30,
        min_hits_to_confirm: int = 1,
        use_mask_iou: bool = False,
        class_aware: bool = False,
        duplicate_mask_iou_threshold: float | None = 0.3,
    ) -> None:
        # The ranges and the ordering rule are pipeline.tracker_params', shared with the config's tracking: section.
        self.high_score_threshold = float(check_param("high_score_threshold", high_score_threshold))
        self.low_score_threshold = float(check_param("low_score_threshold", low_score_threshold))
        self.new_track_score_threshold = float(check_param("new_track_score_threshold", new_track_score_threshold))
        order = score_order_problems(self.high_score_threshold, self.low_score_threshold, self.new_track_score_threshold)
        if order:
            raise ConfigError(f"ByteTracker: {'; '.join(order)}")
        self.match_iou_threshold = float(check_param("match_iou_threshold", match_iou_threshold))
        self.low_match_iou_threshold = float(check_param("low_match_iou_threshold", low_match_iou_threshold))
        self.low_score_weight = float(check_param("low_score_weight", low_score_weight))
        self.lost_track_buffer_frames = int(check_param("lost_track_buffer_frames", lost_track_buffer_frames))
        self.min_hits_to_confirm = int(check_param("min_hits_to_confirm", min_hits_to_confirm))
        self.use_mask_iou = _check_bool("use_mask_iou", use_mask_iou)
        self.class_aware = _check_bool("class_aware", class_aware)
        self.duplicate_mask_iou_threshold = (
            None if duplicate_mask_iou_threshold is None
            else float(check_param("duplicate_mask_iou_threshold", duplicate_mask_iou_threshold))
        )
        self._kalman = KalmanFilter()
        self._tracks: list[Track] = []
        self._next_id = 1
        self._mask_size: tuple[int, int] | None = None

    # ------------------------------------------------------------------ public API

    def reset(self) -> None:
        """Forget every track and restart ids at 1 (a new stream or a scene cut)."""
        self._tracks = []
        self._next_id = 1
        self._mask_size = None

    @property
    def next_track_id(self) -> int:
        """The id the next new track gets."""
        return self._next_id

    @next_track_id.setter
    def next_track_id(self, value: int) -> None:
        """Start ids at ``value`` (an output rebuilt after a crash never reuses a published id); never lowers them."""
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"ByteTracker: next_track_id must be an integer >= 1, got {value!r}")
        self._next_id = max(self._next_id, value)

    @property
    def active_track_ids(self) -> list[int]:
        """Ids of the tracks matched (or born) on the latest frame, ascending; lost tracks excluded."""
        return sorted(t.track_id for t in self._tracks if t.state is not TrackState.LOST)

    @property
    def lost_track_ids(self) -> list[int]:
        """Ids of the lost tracks still in the buffer (re-findable), ascending."""
        return sorted(t.track_id for t in self._tracks if t.state is TrackState.LOST)

    def update(
        self,
        boxes: np.ndarray,
        scores: np.ndarray,
        labels: np.ndarray | None = None,
        masks: Sequence[dict[str, Any]] | None = None,
    ) -> list[int | None]:
        """Advance one frame. Returns, per input detection in input order, its track id or ``None``.

        ``boxes`` ``(N, 4)`` xyxy pixels, ``scores`` ``(N,)``, ``labels`` ``(N,)`` ints (required
        when ``class_aware``), ``masks`` ``N`` COCO RLE dicts ``{"size": [h, w], "counts": str}``
        (required when ``use_mask_iou``; otherwise kept on the tracks but unused).
        ``None`` means the detection matched no track and started none (a low-score
        detection, or a high one below ``new_track_score_threshold``).
        """
        boxes, scores, labels, masks = self._validate(boxes, scores, labels, masks)
        n = len(scores)
        result: list[int | None] = [None] * n

        self._predict()

        considered = scores >= self.low_score_threshold
        if masks is not None and self.duplicate_mask_iou_threshold is not None:
            candidates = np.flatnonzero(considered)
            duplicate = mask_duplicates([masks[i] for i in candidates], scores[candidates],
                                        self.duplicate_mask_iou_threshold)
            considered[candidates[duplicate]] = False
        high = np.flatnonzero(considered & (scores >= self.high_score_threshold))
        low = np.flatnonzero(considered & (scores < self.high_score_threshold))
        shifted: dict[int, dict[str, Any]] = {}  # track id -> its mask moved by the Kalman displacement
        matched: list[tuple[Track, int]] = []

        def associate(tracks: list[Track], dets: np.ndarray, threshold: float) -> tuple[list[Track], np.ndarray]:
            sim = self._similarity(tracks, dets, boxes, labels, masks, shifted)
            pairs, free_tracks, free_dets = linear_assignment(sim, threshold)
            for ti, di in pairs:
                matched.append((tracks[ti], int(dets[di])))
            return [tracks[i] for i in free_tracks], dets[free_dets]

        confirmed = [t for t in self._tracks if t.state is not TrackState.TENTATIVE]
        tentative = [t for t in self._tracks if t.state is TrackState.TENTATIVE]
        # 1. Confirmed (tracked + lost) tracks x high and low detections, in one assignment.
        dets = np.concatenate([high, low])
        sim = self._joint_similarity(self._similarity(confirmed, dets, boxes, labels, masks, shifted), len(high))
        pairs, free_tracks, free_dets = linear_assignment(sim, _GATED)
        matched += [(confirmed[ti], int(dets[di])) for ti, di in pairs]
        left_confirmed = [confirmed[i] for i in free_tracks]
        left_high = dets[[d for d in free_dets if d < len(high)]]
        # 2. Tentative tracks x remaining high detections.
        left_tentative, left_high = associate(tentative, left_high, self.match_iou_threshold)

        self._correct(matched, boxes, scores, labels, masks)
        for track, det in matched:
            result[det] = track.track_id

        # 3. Unmatched tracks: tentative ones die, tracked ones get lost, expired lost ones die.
        dead = {id(t) for t in left_tentative}
        for track in left_confirmed:
            track.miss()
            track.state = TrackState.LOST
            if track.frames_since_seen > self.lost_track_buffer_frames:
                dead.add(id(track))
        self._tracks = [t for t in self._tracks if id(t) not in dead]

        # 4. New tracks from the high detections left.
        starters = [int(d) for d in left_high if scores[d] >= self.new_track_score_threshold]
        if starters:
            means, covariances = self._kalman.initiate(xyxy_to_cxcywh(boxes[starters]))
            for k, det in enumerate(starters):
                track = Track(
                    track_id=self._next_id,
                    mean=means[k],
                    covariance=covariances[k],
                    box=boxes[det].copy(),
                    score=float(scores[det]),
                    label=None if labels is None else int(labels[det]),
                    mask=None if masks is None else masks[det],
                    state=TrackState.TRACKED if self.min_hits_to_confirm <= 1 else TrackState.TENTATIVE,
                )
                self._next_id += 1
                self._tracks.append(track)
                result[det] = track.track_id
        return result

    # ------------------------------------------------------------------ internals

    def _validate(
        self,
        boxes: Any,
        scores: Any,
        labels: Any,
        masks: Sequence[dict[str, Any]] | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, list[dict[str, Any]] | None]:
        scores = np.asarray(scores, dtype=np.float64)
        if scores.ndim != 1:
            raise TrackingError(f"scores must have shape (N,), got {scores.shape}")
        n = len(scores)
        boxes = np.asarray(boxes, dtype=np.float64)
        if n == 0 and boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.shape != (n, 4):
            raise TrackingError(f"boxes must have shape ({n}, 4) to match {n} scores, got {boxes.shape}")
        if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
            raise TrackingError("boxes and scores must be finite (found NaN or infinity)")
        bad = np.flatnonzero((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]))
        if len(bad):
            raise TrackingError(
                f"box {int(bad[0])} is not (x1, y1, x2, y2) with x1 <= x2, y1 <= y2: {boxes[bad[0]].tolist()}"
            )
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (n,) or (n and not np.issubdtype(labels.dtype, np.integer)):
                raise TrackingError(f"labels must be integers of shape ({n},), got {labels.dtype} {labels.shape}")
            labels = labels.astype(np.int64)
        elif self.class_aware:
            raise TrackingError("class_aware=True needs labels, got None")
        if masks is not None:
            masks = list(masks)
            if len(masks) != n:
                raise TrackingError(f"masks has {len(masks)} entries for {n} detections")
            mask_size = self._mask_size
            for i, m in enumerate(masks):
                try:
                    size = (int(m["size"][0]), int(m["size"][1]))
                    counts = m["counts"]
                except (KeyError, TypeError, ValueError, IndexError) as exc:
                    raise TrackingError(f"mask {i} must be a COCO RLE {{'size': [h, w], 'counts': str}}") from exc
                if not isinstance(counts, (str, bytes)):
                    raise TrackingError(f"mask {i} counts must be a compressed RLE string, got {type(counts).__name__}")
                if not self.use_mask_iou:
                    continue  # masks are only carried along; their size does not matter
                if mask_size is None:
                    mask_size = size
                elif size != mask_size:
                    raise TrackingError(
                        f"mask {i} has size {list(size)} but this tracker's masks are {list(mask_size)}: "
                        "call reset() when the stream's resolution changes"
                    )
            self._mask_size = mask_size
        elif self.use_mask_iou:
            raise TrackingError("use_mask_iou=True needs masks, got None")
        return boxes, scores, labels, masks

    def _predict(self) -> None:
        if not self._tracks:
            return
        means = np.stack([t.mean for t in self._tracks])
        covariances = np.stack([t.covariance for t in self._tracks])
        lost = np.array([t.state is TrackState.LOST for t in self._tracks])
        means[lost, 6:8] = 0.0  # a lost track keeps moving but stops growing or shrinking
        means, covariances = self._kalman.predict(means, covariances)
        for k, track in enumerate(self._tracks):
            track.mean = means[k]
            track.covariance = covariances[k]
            track.age += 1

    def _correct(
        self,
        matched: list[tuple[Track, int]],
        boxes: np.ndarray,
        scores: np.ndarray,
        labels: np.ndarray | None,
        masks: list[dict[str, Any]] | None,
    ) -> None:
        if not matched:
            return
        dets = [d for _, d in matched]
        means = np.stack([t.mean for t, _ in matched])
        covariances = np.stack([t.covariance for t, _ in matched])
        means, covariances = self._kalman.update(means, covariances, xyxy_to_cxcywh(boxes[dets]))
        for k, (track, det) in enumerate(matched):
            track.mean = means[k]
            track.covariance = covariances[k]
            track.observe(
                boxes[det],
                scores[det],
                None if labels is None else int(labels[det]),
                None if masks is None else masks[det],
            )
            if track.state is TrackState.LOST:
                track.state = TrackState.TRACKED
            elif track.state is TrackState.TENTATIVE and track.streak >= self.min_hits_to_confirm:
                track.state = TrackState.TRACKED

    def _joint_similarity(self, sim: np.ndarray, n_high: int) -> np.ndarray:
        """Tracks x (high detections, then low ones) similarity ``(T, D)`` gated per column: a high column is kept
        where ``>= match_iou_threshold``, a low one where ``>= low_match_iou_threshold`` and scaled by
        ``low_score_weight``; 0 elsewhere (never matched, see :data:`_GATED`)."""
        is_low = np.arange(sim.shape[1]) >= n_high
        gate = np.where(is_low, self.low_match_iou_threshold, self.match_iou_threshold)
        weight = np.where(is_low, self.low_score_weight, 1.0)
        return np.where(sim >= gate[None, :], sim * weight[None, :], 0.0)

    def _similarity(
        self,
        tracks: list[Track],
        dets: np.ndarray,
        boxes: np.ndarray,
        labels: np.ndarray | None,
        masks: list[dict[str, Any]] | None,
        shifted: dict[int, dict[str, Any]],
    ) -> np.ndarray:
        if not tracks or len(dets) == 0:
            return np.zeros((len(tracks), len(dets)))
        if self.use_mask_iou:
            if masks is None:  # _validate refuses this; kept so that a broken caller fails loudly
                raise TrackingError("use_mask_iou=True needs masks for every update")
            track_masks = []
            for t in tracks:
                if t.track_id not in shifted:
                    shifted[t.track_id] = shift_rle(t.mask, *t.displacement)  # type: ignore[arg-type]
                track_masks.append(shifted[t.track_id])
            sim = mask_iou(track_masks, [masks[int(d)] for d in dets])
        else:
            sim = box_iou(np.stack([t.predicted_box for t in tracks]), boxes[dets])
        if self.class_aware:
            if labels is None:
                raise TrackingError("class_aware=True needs labels for every update")
            track_labels = np.array([t.label for t in tracks])
            sim = np.where(track_labels[:, None] == labels[dets][None, :], sim, 0.0)
        return sim
