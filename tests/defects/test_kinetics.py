"""Diffusion and transition estimators on known processes; the misclassification-bias test."""

import numpy as np

from scopeflow.defects.kinetics import (
    fit_msd,
    hop_estimate,
    hop_mixture,
    hop_sq,
    link_displacements,
    msd_pooled,
)
from scopeflow.defects.lattice import A_WS2
from scopeflow.defects.options import TrackOptions
from scopeflow.defects.transitions import transition_analysis
from scopeflow.tracking import link, track_purity

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


def test_hop_mixture_rejects_wrong_links():
    # 80 walks x 39 links at k = 0.4 hops/frame; 15 % of the links replaced by wrong links that
    # land on a random lattice site within the 7 Å search range (a neighbour vacancy or a false
    # positive). They add ~0.15 * 8/3 a^2 per link to <dr^2> (~+100 % for the pooled estimate);
    # the mixture sees them as the excess at sqrt(3) a and 2 a.
    rng = np.random.default_rng(3)
    rate, r_max = 0.4, 7.0
    frame, track, ij = _lattice_walks(rng, 80, 40, rate)
    d2, dt = link_displacements(_groups(track), frame, ij[:, 0], ij[:, 1])
    linkable = d2 * A_WS2**2 <= r_max**2  # longer steps cannot be linked
    d2, dt = d2[linkable], dt[linkable]
    wrong = rng.random(len(d2)) < 0.15
    sites = np.array([(i, j) for i in range(-3, 4) for j in range(-3, 4)])
    s2 = sites[:, 0] ** 2 + sites[:, 1] ** 2 + sites[:, 0] * sites[:, 1]
    s2 = s2[(s2 > 0) & (s2 * A_WS2**2 <= r_max**2)]
    clean = d2
    d2 = np.where(wrong, rng.choice(s2, len(d2)), d2)
    k, eps = hop_mixture(d2, dt, r_max)
    # ~1250 hops: relative standard error ~3 % for the clean walk, inflated by estimating the
    # contamination too (~x1.5); 4 sigma -> 0.18; eps from ~470 wrong links: sd ~0.01-0.02
    assert abs(k / rate - 1) < 0.18
    assert abs(eps - 0.15) < 0.06
    assert d2.mean() / rate > 1.5  # the pooled estimate is far off: the test can tell them apart
    # without wrong links the mixture finds (almost) none and the plain rate (4 sigma of 3 %)
    k0, eps0 = hop_mixture(clean, dt, r_max)
    assert eps0 < 0.03
    assert abs(k0 / rate - 1) < 0.12


def _linked_walks(rng, rate=0.4, n_side=10, n_frames=40, spacing=80.0, loc=0.1):
    """Isolated lattice walks seen as detections: positions [Å] with localisation noise."""
    frame, track, ij = _lattice_walks(rng, n_side**2, n_frames, rate)
    start = np.stack(np.meshgrid(np.arange(n_side), np.arange(n_side)), -1).reshape(-1, 2)
    basis = A_WS2 * np.array([[1.0, 0.0], [0.5, np.sqrt(3) / 2]])  # a1, a2 at 60 degrees
    pos = ij @ basis + spacing * start[track] + loc * rng.standard_normal(ij.shape)
    return frame, track, ij, pos


def _hop_d(track, frame, ij, keep=None):
    keep = np.ones(len(frame), bool) if keep is None else keep
    idx = np.flatnonzero(keep)
    groups = [idx[g] for g in _groups(track[idx])]
    num, den = hop_estimate(groups, frame, ij[:, 0], ij[:, 1])
    return num / (4 * den), den


def _step_sq(track, frame, ij):
    """Squared lattice displacement [Å^2] of every true consecutive-frame step."""
    same = (np.diff(track) == 0) & (np.diff(frame) == 1)
    d = np.diff(ij, axis=0)[same]
    return hop_sq(d[:, 0], d[:, 1])


def test_hop_mixture_models_the_search_range():
    # S vacancies hop Poisson(k = 0.4) times per frame: two collinear hops (2 a = 6.36 Å,
    # 0.9 % of frames) carry 11 % of <dr^2>. A range below 2 a (the default 6 Å) cuts them, which
    # biases the pooled sum low; the mixture fits the shells within the range, so it is not.
    rng = np.random.default_rng(3)
    frame, track, ij, pos = _linked_walks(rng)
    d2 = _step_sq(track, frame, ij)
    rate = 0.4
    assert 2 * A_WS2 > TrackOptions().search_range > np.sqrt(3) * A_WS2
    # reference: the mixture on every true step (nothing cut)
    full, dt_full = link_displacements(_groups(track), frame, ij[:, 0], ij[:, 1])
    k_full, _ = hop_mixture(full, dt_full, 30.0)
    for rng_a in (TrackOptions().search_range, 7.0):
        tid = link(frame, pos, rng_a, max_gap=0)
        # isolated walkers (80 Å apart, ~13 Å rms spread over 40 frames): tracks only break
        # at steps longer than the range, never swap
        assert track_purity(tid, track) == 1.0
        d_pooled, _ = _hop_d(tid, frame, ij)
        short = d2[np.sqrt(d2) < rng_a]  # no lattice distance within 0.3 Å of 6 or 7 Å
        # the pooled estimate is exactly the realised D over the steps within range
        assert np.isclose(d_pooled, short.mean() / 4, rtol=1e-9)
        lost = 1 - short.sum() / d2.sum()
        dd, dt = link_displacements(_groups(tid), frame, ij[:, 0], ij[:, 1])
        k, eps = hop_mixture(dd, dt, rng_a)
        # ~1560 hops over ~3900 steps: relative standard error of the rate ~2.5 %, x1.5 for
        # estimating the (absent) contamination too; 4 sigma
        assert abs(k / rate - 1) < 0.15 and eps < 0.03
        # against the fit on all steps: both see the same walks but for the ~1 % of steps cut
        # (and a free contamination fraction); over seeds 3-6 they differed by < 2.8 %, while
        # a fit that ignores the range (r_max 30 Å on the 6 Å links) was 5-8 % low
        assert abs(k / k_full - 1) < 0.035
        if rng_a < 2 * A_WS2:
            # model: steps > 6 Å (2 a, sqrt(7) a, 3 a) carry 13.3 % of <dr^2> at k = 0.4
            assert lost > 0.07 and d_pooled < 0.93 * rate * A_WS2**2 / 4
        else:
            # at 7 Å only triple hops (sqrt(7) a, 3 a; 3.0 % of <dr^2> by the model) are lost
            assert lost < 0.06


def test_missed_detections_do_not_bias_hop_counting():
    # 10 % of detections missing at random: a track without gap closing splits at each miss,
    # and the pairs lost are independent of the displacement, so hop counting stays unbiased
    rng = np.random.default_rng(4)
    frame, track, ij, pos = _linked_walks(rng)
    d2 = _step_sq(track, frame, ij)
    keep = rng.random(len(frame)) > 0.1
    d_set = 0.4 * A_WS2**2 / 4
    for max_gap in (0, 1):
        tid = np.full(len(frame), -1)
        tid[keep] = link(frame[keep], pos[keep], 7.0, max_gap=max_gap)
        assert track_purity(tid[keep], track[keep]) == 1.0
        d_hop, den = _hop_d(tid, frame, ij, keep)
        # ~3100 frame pairs kept (dt = 1, plus dt = 2 across gaps when bridged): relative
        # standard error of a mean of d^2 (~3 %) over the pairs used, 4 sigma, plus the
        # <= 3 % of <dr^2> in steps beyond 7 Å (gaps widen the range by sqrt(2))
        rel_se = d2.std() / d2.mean() / np.sqrt(den)
        assert -4 * rel_se - 0.03 < d_hop / d_set - 1 < 4 * rel_se


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
