"""Diffusion and transition estimators on known processes; the misclassification-bias test."""

import numpy as np

from scopeflow.defects.kinetics import fit_msd, hop_estimate, hop_sq, msd_pooled
from scopeflow.defects.lattice import A_WS2
from scopeflow.defects.transitions import transition_analysis

_NEIGH = np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (1, -1), (-1, 1)])


def _lattice_walks(rng, n_walkers, n_frames, rate):
    """Free random walks on a triangular lattice: Poisson(rate) nearest-neighbour hops/frame."""
    hops = rng.poisson(rate, (n_walkers, n_frames - 1))
    steps = np.zeros((n_walkers, n_frames - 1, 2))
    for w in range(n_walkers):
        for t in range(n_frames - 1):
            if hops[w, t]:
                steps[w, t] = _NEIGH[rng.integers(6, size=hops[w, t])].sum(0)
    ij = np.concatenate([np.zeros((n_walkers, 1, 2)), np.cumsum(steps, 1)], 1)
    frame = np.broadcast_to(np.arange(n_frames), (n_walkers, n_frames)).ravel()
    track = np.broadcast_to(np.arange(n_walkers)[:, None], (n_walkers, n_frames)).ravel()
    return frame, track, ij.reshape(-1, 2)


def _groups(track):
    return [np.flatnonzero(track == t) for t in np.unique(track)]


def test_hop_sq_is_lattice_length():
    # a1, a2 and a1 - a2 (= (1, -1)) are nearest neighbours at distance a; a1 + a2 is sqrt(3) a
    assert np.allclose(hop_sq(np.array([1, 0, 1]), np.array([0, 1, -1])), A_WS2**2)
    assert np.isclose(hop_sq(np.array([1]), np.array([1]))[0], 3 * A_WS2**2)


def test_hop_counting_recovers_d():
    rng = np.random.default_rng(0)
    rate = 0.4
    frame, track, ij = _lattice_walks(rng, 80, 40, rate)
    num, den = hop_estimate(_groups(track), frame, ij[:, 0], ij[:, 1])
    d = num / (4 * den)
    d_true = rate * A_WS2**2 / 4
    # ~1250 hops: the relative standard error of a compound-Poisson sum is ~1/sqrt(N_hops)
    # = 2.8 %; 4 sigma
    assert abs(d / d_true - 1) < 0.11


def test_msd_fit_with_localisation_offset():
    rng = np.random.default_rng(1)
    d_true, sigma = 0.5, 0.3  # [L^2/frame], localisation rms per axis [L]
    n, frames = 200, 30
    pos = np.cumsum(np.sqrt(2 * d_true) * rng.standard_normal((n, frames, 2)), 1)
    pos += sigma * rng.standard_normal(pos.shape)
    frame = np.broadcast_to(np.arange(frames), (n, frames)).ravel()
    track = np.broadcast_to(np.arange(n)[:, None], (n, frames)).ravel()
    msd, cnt = msd_pooled(_groups(track), frame, pos.reshape(-1, 2), 4)
    d, off = fit_msd(msd, cnt)
    # the offset is 4 sigma^2 (2-D, Michalet 2010); 5800 pairs at lag 1 give a ~2 % error on
    # MSD, which the 4-lag fit turns into ~4 % on D: allow 12 % (3 sigma)
    assert abs(d / d_true - 1) < 0.12
    assert abs(off - 4 * sigma**2) < 0.5 * 4 * sigma**2
    # ignoring the offset (fit through 0 at lag 1) would overestimate D by 4 sigma^2 / 4 = 18 %
    assert msd[0] / 4 / d_true - 1 > 0.1


def _markov(rng, p, n_tracks, n_frames):
    states = np.zeros((n_tracks, n_frames), int)
    states[:, 0] = rng.integers(len(p), size=n_tracks)
    cum = np.cumsum(p, 1)
    for t in range(1, n_frames):
        u = rng.random(n_tracks)
        states[:, t] = (u[:, None] > cum[states[:, t - 1]]).sum(1)
    frame = np.broadcast_to(np.arange(n_frames), (n_tracks, n_frames)).ravel()
    track = np.broadcast_to(np.arange(n_tracks)[:, None], (n_tracks, n_frames)).ravel()
    return frame, track, states.ravel()


P = np.array([[0.80, 0.12, 0.08], [0.15, 0.75, 0.10], [0.10, 0.15, 0.75]])


def _analysis(rng, track, frame, label, true=None):
    """Configurations 0..2 as labels 1..3 (0 would be a static Mo); 200 bootstrap resamples."""
    return transition_analysis(
        track, frame, label + 1, None if true is None else true + 1, 3,
        n_boot=200, confidence=0.95, rng=rng,
    )  # fmt: skip


def test_pooled_transition_counts_recover_matrix():
    rng = np.random.default_rng(2)
    frame, track, state = _markov(rng, P, 40, 40)
    res = _analysis(rng, track, frame, state)
    assert res["counts"].sum() == 40 * 39
    # 1560 transitions, ~520 per row: binomial sd sqrt(0.2*0.8/520) = 0.018; 4 sd
    assert np.abs(res["uncorrected"] - P).max() < 0.075
    # most entries' 95 % intervals hold the truth (9 entries: allow one miss)
    assert ((P >= res["uncorrected_lo"]) & (P <= res["uncorrected_hi"])).sum() >= 8
    # without truth there is no confusion to correct with
    assert np.isnan(res["corrected"]).all()


def test_misclassification_bias_and_correction():
    rng = np.random.default_rng(3)
    frame, track, state = _markov(rng, P, 120, 40)
    # 5 % misclassification, independent from frame to frame: each state is reported as each
    # other one 2.5 % of the time
    obs = state.copy()
    flip = rng.random(len(state)) < 0.05
    obs[flip] = (state[flip] + rng.integers(1, 3, size=flip.sum())) % 3
    res = _analysis(rng, track, frame, obs, state)
    sd_u = (res["uncorrected_hi"] - res["uncorrected_lo"]) / (2 * 1.96)
    sd_c = (res["corrected_hi"] - res["corrected_lo"]) / (2 * 1.96)
    # errors at both ends of a pair move ~10 % of a row's mass off the diagonal: the diagonal is
    # biased by ~0.06-0.08, ~5x the bootstrap sd (~0.012 with 4680 transitions)
    assert (np.abs(np.diag(res["uncorrected"]) - np.diag(P)) / np.diag(sd_u)).min() > 3
    # the label memory is measured as ~0 (errors here are independent): from ~1500 pairs per
    # state that repeat their label 90 % of the time its sd is ~0.0075 / (1 - 0.904) ~ 0.08
    assert res["rho"][1:].max() < 0.25
    # after correction every entry is within 3.5 sd of the truth (P(any of 9 beyond) ~ 0.4 %)
    assert (np.abs(res["corrected"] - P) / sd_c).max() < 3.5
    # and the truth lies in most 95 % intervals (9 entries: expect 0-1 misses, allow 2)
    assert ((P >= res["corrected_lo"]) & (P <= res["corrected_hi"])).sum() >= 7
