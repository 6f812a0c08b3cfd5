"""Linking on known random walks: one-to-one, gap closing, births and deaths."""

import numpy as np

from scopeflow.tracking import link, track_purity


def _walks(rng, n=60, frames=30, step=1.0, box=200.0):
    """Gaussian random walks (rms step ``step`` per axis) started on a grid 25 apart."""
    g = np.stack(np.meshgrid(np.arange(8), np.arange(8)), -1).reshape(-1, 2)[:n] * 25.0 + 20
    pos = g[:, None, :] + np.cumsum(step * rng.standard_normal((n, frames, 2)), axis=1)
    frame = np.broadcast_to(np.arange(frames), (n, frames))
    ident = np.broadcast_to(np.arange(n)[:, None], (n, frames))
    return frame.ravel(), pos.reshape(-1, 2), ident.ravel()


def test_link_recovers_random_walks():
    rng = np.random.default_rng(0)
    frame, pos, ident = _walks(rng)
    perm = rng.permutation(len(frame))  # input order must not matter
    tid = link(frame[perm], pos[perm], search_range=4.0, max_gap=0)
    # steps are 1.4 rms in 2-D and walkers start 25 apart: after 30 frames (spread ~5.5 rms
    # per axis) two walkers rarely come within a step of each other; one swap late in a
    # track costs < 1 % purity
    assert track_purity(tid, ident[perm]) > 0.99
    # one detection per frame per track
    for t in np.unique(tid):
        f = frame[perm][tid == t]
        assert len(f) == len(np.unique(f))


def test_gap_closing_and_births_deaths():
    rng = np.random.default_rng(1)
    frame, pos, ident = _walks(rng, n=20, frames=20, step=0.5)
    keep = np.ones(len(frame), bool)
    # remove one detection (a one-frame gap) from every walker at frame 10
    keep[frame == 10] = False
    # walker 0 dies at frame 5 and a new walker (id 99) is born at frame 12 far away
    keep[(ident == 0) & (frame > 5)] = False
    f2 = np.concatenate([frame[keep], np.arange(12, 20)])
    p2 = np.concatenate([pos[keep], np.full((8, 2), 900.0)])
    i2 = np.concatenate([ident[keep], np.full(8, 99)])
    no_gap = link(f2, p2, search_range=3.0, max_gap=0)
    with_gap = link(f2, p2, search_range=3.0, max_gap=1)
    # without gap closing every surviving walker is cut in two at frame 10
    assert len(np.unique(no_gap)) == 19 * 2 + 1 + 1
    # with it: one track per identity (19 full walkers, walker 0, the newborn)
    assert len(np.unique(with_gap)) == 21
    assert track_purity(with_gap, i2) == 1.0


def test_purity_counts_majority():
    # track 0 holds 3 of identity 5 and 1 of identity 6: 3 of 4 detections are pure
    assert track_purity(np.array([0, 0, 0, 0]), np.array([5, 5, 5, 6])) == 0.75
