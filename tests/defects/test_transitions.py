"""Transition matrix with misclassification that persists along tracks: model, inversion,
and interval coverage on complexes simulated by the movie's own kinetics (kinetics_sim)."""

import numpy as np

from scopeflow.defects import kinetics_sim as ks
from scopeflow.defects.transitions import (
    correct_pair_counts,
    observation_model,
    pair_model,
    transition_analysis,
)

P = np.array([[0.80, 0.12, 0.08], [0.15, 0.75, 0.10], [0.10, 0.15, 0.75]])
#: P(label | true): rows static Mo, Mo-V_S, Mo-V_S2, Mo-2V_S; columns those and "other" (close
#: to the confusion measured on the dose-20 movie: Mo <-> Mo-V_S <-> Mo-2V_S errors of 5-15 %)
M = np.array(
    [
        [0.85, 0.10, 0.01, 0.04, 0.00],
        [0.07, 0.85, 0.01, 0.07, 0.00],
        [0.03, 0.01, 0.95, 0.00, 0.01],
        [0.01, 0.10, 0.01, 0.88, 0.00],
    ]
)
ALLOWED = np.zeros((4, 4), bool)
ALLOWED[0, 0] = True
ALLOWED[1:, 1:] = True


def _simulate(seed, memory, **kw):
    return ks.labelled_complexes(seed, P, M, memory, **kw)


def test_pair_model_keeps_the_per_frame_confusion():
    a = pair_model(M, np.array([0.0, 0.3, 0.6, 0.9]))
    assert np.allclose(a.sum((2, 3)), 1.0)
    # whatever the memory, each frame of a pair is labelled by M (first and second marginals)
    for k in range(4):
        for j in range(4):
            assert np.allclose(a[k, j].sum(1), M[k]) and np.allclose(a[k, j].sum(0), M[j])
    # memory raises the chance of a repeated label above the independent sum_a M^2
    assert np.trace(a[1, 1]) > (M[1] ** 2).sum()


def test_correct_pair_counts_inverts_expected_counts():
    rng = np.random.default_rng(0)
    c = np.zeros((4, 4))
    c[0, 0] = 300.0
    c[1:, 1:] = rng.uniform(10, 200, (3, 3))
    rho = np.array([0.2, 0.3, 0.5, 0.1])
    obs = np.einsum("kl,klab->ab", c, pair_model(M, rho))
    # noise-free expected counts: the non-negative least-squares inversion is exact
    assert np.allclose(correct_pair_counts(obs, M, rho, ALLOWED), c, rtol=1e-6)


def test_observation_model_measures_confusion_and_memory():
    track, frame, lab, true = _simulate(0, 0.4, n_complexes=60, n_mo=30)
    counts = np.zeros((4, 5))
    np.add.at(counts, (true, lab), 1)
    nxt = (track[1:] == track[:-1]) & (true[1:] == true[:-1])
    same = np.bincount(true[:-1][nxt], minlength=4).astype(float)
    kept = np.bincount(true[:-1][nxt], (lab[1:] == lab[:-1])[nxt], minlength=4)
    m, rho = observation_model(counts, same, kept)
    # ~800 objects per state: binomial sd of a 10 % entry ~0.011; 4 sd
    assert np.abs(m - M).max() < 0.045
    # rho = (P(same) - S) / (1 - S) with S = sum_a M[k, a]^2: the binomial sd of P(same) over
    # the state's unchanged pairs, divided by 1 - S (0.1-0.26 here: rare errors measure the
    # memory poorly); 4 sd
    s_ind = (M**2).sum(1)
    p_same = 0.4 + 0.6 * s_ind
    sd = np.sqrt(p_same * (1 - p_same) / same) / (1 - s_ind)
    assert (np.abs(rho - 0.4) < 4 * sd).all()


def test_corrected_interval_covers_truth_at_nominal_rate():
    cover = {"uncorrected": [], "corrected": [], "independent": []}
    for seed in range(20):
        track, frame, lab, true = _simulate(seed, 0.3)
        rng = np.random.default_rng(seed)
        res = transition_analysis(track, frame, lab, true, 3, n_boot=120, confidence=0.95, rng=rng)
        ind = transition_analysis(
            track, frame, lab, true, 3, n_boot=120, confidence=0.95, rng=rng, memory=False
        )
        for name, r, key in (
            ("uncorrected", res, "uncorrected"),
            ("corrected", res, "corrected"),
            ("independent", ind, "corrected"),
        ):
            cover[name].append((P >= r[key + "_lo"]) & (P <= r[key + "_hi"]))
    rate = {k: float(np.mean(v)) for k, v in cover.items()}
    # 180 nominal-95 % intervals (9 per movie, correlated within a movie): sd of the covered
    # fraction ~0.016-0.03; the corrected intervals cover at 0.95 within ~3 sd
    assert 0.87 <= rate["corrected"] <= 1.0
    # ~1200 pairs per movie: misclassified pairs move ~15 % of the diagonal mass; the
    # uncorrected estimate is off by several sd and its intervals miss often
    assert rate["uncorrected"] < 0.75
    # the matrix method with independent errors over-corrects persistent errors
    assert rate["independent"] < rate["corrected"] - 0.15
