"""Refinement of the cell and tilt axis on detector positions and rocking profiles, vs a known
lattice."""

import numpy as np
import pytest

from scopeflow.optics.kinematic import cell_matrix, excitation_error, hkl_within
from scopeflow.optics.wavelength import electron_wavelength
from scopeflow.tomo4d.geometry import axis_rotation, tilt_rotations
from scopeflow.tomo4d.refine import refine_detector

CELL = (9.174, 5.449, 5.138, 90.0, 90.0, 90.0)  # brookite [Å, deg]
DK = 0.011  # detector pixel [1/Å]
RADIUS = 3.6  # spot radius [px] (1 mrad at 200 kV)
AXIS = 20.0  # tilt axis [deg]


def _observations(rng, n_outliers=0):
    """Spots of a seeded brookite crystal over +-30 deg at 1 deg: (spots, centres, tilt, hkl)."""
    lam = electron_wavelength(200e3) * 10.0
    u = axis_rotation(rng.normal(size=3), rng.uniform(0, 2 * np.pi))
    basis = cell_matrix(CELL) @ u.T  # real axes (rows) in the specimen frame [Å]
    recip = np.linalg.inv(basis).T
    hkl = np.round(hkl_within(recip, 0.75)).astype(int)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    tilt = np.arange(-30.0, 30.5, 1.0)
    rot = tilt_rotations(tilt, AXIS)
    centres = 64.0 + rng.normal(0, 1.5, (len(tilt), 2))
    rows = []
    w = 0.007  # rocking width [1/Å] (~1/T for a 15 nm thick rod)
    for f in range(len(tilt)):
        g_lab = hkl @ recip @ rot[f].T
        s = excitation_error(g_lab, lam)
        counts = 2000.0 * np.exp(-np.pi * (s / w) ** 2)
        det = centres[f] + g_lab[:, [1, 0]] / DK
        seen = (counts > 30) & np.all((det > 5) & (det < 123), axis=1)
        n = rng.poisson(counts[seen]).astype(float)
        # centroid of n electrons spread uniformly over a disk: sd radius / (2 sqrt(n)) per axis
        pos = det[seen] + rng.normal(0, 1, (seen.sum(), 2)) * (RADIUS / (2 * np.sqrt(n)))[:, None]
        rows.append(np.column_stack([np.full(len(n), f), pos, n, np.sqrt(n), hkl[seen]]))
    obs = np.concatenate(rows)
    if n_outliers:  # spots of a neighbour indexed by chance: off by 1-3 px
        k = rng.choice(len(obs), n_outliers, replace=False)
        obs[k, 1:3] += rng.uniform(1, 3, (n_outliers, 2)) * rng.choice([-1, 1], (n_outliers, 2))
    return obs[:, :5], centres, tilt, obs[:, 5:].astype(int), basis, lam


@pytest.mark.parametrize("n_outliers", [0, 40])
def test_detector_refinement_recovers_a_known_cell(n_outliers):
    rng = np.random.default_rng(3)
    spots, centres, tilt, hkl, basis, lam = _observations(rng, n_outliers)
    # start 0.8 % and ~0.5 deg off in cell and orientation, 1 deg off in tilt axis
    start = basis @ axis_rotation(np.array([1.0, 2.0, 0.5]), np.deg2rad(0.5)).T
    start = start * np.array([[1.008], [0.992], [1.005]])
    found, axis, info = refine_detector(
        spots, centres, tilt, hkl, np.ones(len(spots), bool), start, AXIS + 1.0, DK, lam, RADIUS
    )
    assert info["n_spots"] == len(spots) > 300
    assert info["profile_used"]  # the profiles are the target's: the profile fit is kept
    err = 100 * np.abs(np.linalg.norm(found, axis=1) / np.linalg.norm(basis, axis=1) - 1)
    # the along-beam coordinate of each partial comes from its rocking profile (ratios of
    # Poisson counts of 30-2000 on consecutive tilts: s to a few % of w), the in-plane ones from
    # centroids (sd 0.05-0.3 px, 0.1-1 % of each |g|); with ~350 spots the worst length has
    # sd ~0.02 % (12 seeds of this set-up: max 0.06 %, outliers included), the axis angle sd
    # ~0.01 deg and each axis direction max 0.06 deg. Tolerances are > 5 sd, and far below the
    # start (0.8 %, 1 deg, 0.5 deg).
    assert err.max() < 0.15
    assert abs(axis - AXIS) < 0.05
    cosang = np.sum(found * basis, axis=1) / np.linalg.norm(found, axis=1)
    ang = np.degrees(np.arccos(np.clip(cosang / np.linalg.norm(basis, axis=1), -1, 1)))
    assert ang.max() < 0.15
    # the detector RMS of the kept spots is the centroid noise (~0.2 px), not the start's error
    assert info["rms_px"] < 0.3
    # the fitted rocking width is the simulated one (hundreds of profiles: a few %)
    assert info["width"] == pytest.approx(0.007, rel=0.1)


def test_detector_refinement_needs_enough_spots():
    rng = np.random.default_rng(4)
    spots, centres, tilt, hkl, basis, lam = _observations(rng)
    keep = np.zeros(len(spots), bool)
    keep[:5] = True
    found, axis, _ = refine_detector(
        spots, centres, tilt, hkl, keep, basis * 1.01, AXIS, DK, lam, RADIUS
    )
    assert np.allclose(found, basis * 1.01) and axis == AXIS
