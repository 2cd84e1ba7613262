"""Similarities, the gated assignment, RLE shifting, and the Kalman filter."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.tracking import KalmanFilter, box_iou, linear_assignment, mask_iou, shift_rle
from pipeline.tracking.kalman import cxcywh_to_xyxy, xyxy_to_cxcywh
from pipeline.tracking.matching import rle_counts
from synthetic_clips import rle
from pycocotools import mask as mask_utils


def test_box_iou_known_values():
    a = np.array([[0.0, 0, 10, 10], [0, 0, 0, 0]])
    b = np.array([[0.0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    iou = box_iou(a, b)
    assert iou.shape == (2, 3)
    np.testing.assert_allclose(iou[0], [1.0, 50 / 150, 0.0])
    np.testing.assert_array_equal(iou[1], [0.0, 0.0, 0.0])  # empty box: 0, not NaN
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 3)


def test_mask_iou_matches_numpy():
    rng = np.random.default_rng(0)
    ma = [rng.random((30, 40)) < p for p in (0.2, 0.5)]
    mb = [rng.random((30, 40)) < p for p in (0.3, 0.6, 0.9)]
    got = mask_iou([rle(m) for m in ma], [rle(m) for m in mb])
    want = np.array([[(x & y).sum() / (x | y).sum() for y in mb] for x in ma])
    np.testing.assert_allclose(got, want)
    assert mask_iou([], [rle(mb[0])]).shape == (0, 1)


def test_rle_counts_round_trip():
    rng = np.random.default_rng(1)
    for _ in range(50):
        m = rng.random((int(rng.integers(1, 60)), int(rng.integers(1, 60)))) < rng.random()
        runs = rle_counts(rle(m)["counts"])
        assert runs.sum() == m.size
        flat = np.repeat(np.arange(len(runs)) % 2, runs).astype(bool)
        np.testing.assert_array_equal(flat, m.T.ravel())  # column-major, zeros first


def test_shift_rle_matches_shifting_the_decoded_mask():
    rng = np.random.default_rng(2)
    for k in range(200):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        m = rng.random((h, w)) < rng.random()
        if k % 3 == 0:  # solid blocks: runs that continue into the next column
            m[:] = False
            m[int(rng.integers(0, h)) :, int(rng.integers(0, w)) :] = True
        dx, dy = (int(v) for v in (rng.integers(-45, 46, 2) if k % 2 else rng.integers(-3, 4, 2)))
        want = np.zeros_like(m)
        ys, xs = np.nonzero(m)
        keep = (ys + dy >= 0) & (ys + dy < h) & (xs + dx >= 0) & (xs + dx < w)
        want[ys[keep] + dy, xs[keep] + dx] = True
        shifted = shift_rle(rle(m), dx, dy)
        assert shifted["size"] == [h, w] and isinstance(shifted["counts"], str)
        np.testing.assert_array_equal(mask_utils.decode(shifted).astype(bool), want, err_msg=f"{h}x{w} by {dx},{dy}")


def test_linear_assignment_gate_and_optimality():
    sim = np.array(
        [
            [0.9, 0.3, 0.0],
            [0.8, 0.1, 0.0],
            [0.0, 0.0, 0.15],
        ]
    )
    matches, rows, cols = linear_assignment(sim, 0.2)
    # Row 0 could take 0.9, leaving row 1 nothing; 0.3 + 0.8 is the better total.
    assert matches == [(0, 1), (1, 0)]
    assert rows == [2] and cols == [2]  # 0.15 is below the gate
    # A pair below the gate never displaces a valid one.
    matches, rows, cols = linear_assignment(np.array([[0.9, 0.19]]), 0.2)
    assert matches == [(0, 0)] and rows == [] and cols == [1]
    assert linear_assignment(np.zeros((0, 2)), 0.2) == ([], [], [0, 1])
    # Exactly at the gate matches ("minimum IoU").
    assert linear_assignment(np.array([[0.2]]), 0.2)[0] == [(0, 0)]


def test_box_conversions_round_trip():
    boxes = np.array([[10.0, 20, 50, 100], [0, 0, 1, 3]])
    np.testing.assert_allclose(xyxy_to_cxcywh(boxes), [[30, 60, 40, 80], [0.5, 1.5, 1, 3]])
    np.testing.assert_allclose(cxcywh_to_xyxy(xyxy_to_cxcywh(boxes)), boxes)


def test_kalman_learns_constant_velocity_and_predicts_vectorised():
    kf = KalmanFilter()
    truth = lambda t: np.array([[100 + 4.0 * t, 200 - 2.0 * t, 40, 80], [300.0, 300, 20, 20]])  # noqa: E731
    means, covs = kf.initiate(truth(0))
    for t in range(1, 30):
        means, covs = kf.predict(means, covs)
        means, covs = kf.update(means, covs, truth(t))
    np.testing.assert_allclose(means[:, 4:6], [[4.0, -2.0], [0.0, 0.0]], atol=0.05)
    # Five frames of prediction alone (an occlusion) extrapolate the motion.
    for _ in range(5):
        means, covs = kf.predict(means, covs)
    np.testing.assert_allclose(means[:, :4], truth(34), atol=0.5)
    # Vectorised predict equals one-by-one predict; covariances stay symmetric positive definite.
    one_by_one = [kf.predict(means[i : i + 1], covs[i : i + 1]) for i in range(2)]
    both = kf.predict(means, covs)
    for i in range(2):
        np.testing.assert_allclose(both[0][i], one_by_one[i][0][0])
        np.testing.assert_allclose(both[1][i], one_by_one[i][1][0])
    np.testing.assert_allclose(covs, np.swapaxes(covs, 1, 2), atol=1e-9)
    assert (np.linalg.eigvalsh(covs) > 0).all()


@pytest.mark.parametrize("box", [[10.0, 10.0, 10.0, 30.0], [10.0, 10.0, 30.0, 10.0]])
def test_kalman_survives_degenerate_boxes(box):
    kf = KalmanFilter()
    means, covs = kf.initiate(xyxy_to_cxcywh(np.array([box])))
    for _ in range(3):
        means, covs = kf.predict(means, covs)
        means, covs = kf.update(means, covs, xyxy_to_cxcywh(np.array([box])))
    assert np.isfinite(means).all() and np.isfinite(covs).all()
