"""Cramer-Rao bound of image shifts against its closed form for a weak cosine pattern."""

import numpy as np

from scopeflow.ltem.uncertainty import shift_crb


def test_shift_crb_closed_form_for_weak_cosine():
    # mu = c (1 + e cos(2 pi x / P)) (1 + e cos(2 pi y / P)): per pixel and axis the Fisher
    # information of a shift is mu'^2 / mu, averaging c e^2 (2 pi / P)^2 / 2 to leading order
    # in e; with the reference fixed and the two other shifts of zero sum (s_+ = -s_-), the
    # bound of either shift is 1 / sqrt(G_+ + G_-) = 1 / sqrt(2 G)
    n, period, e, c = 128, 16, 0.05, 1000.0
    y, x = np.mgrid[:n, :n]
    mu = c * (1 + e * np.cos(2 * np.pi * x / period)) * (1 + e * np.cos(2 * np.pi * y / period))
    crb = shift_crb(np.stack([mu, mu, mu]), reference=1)
    g = n * n * c * e**2 * (2 * np.pi / period) ** 2 / 2
    assert np.all(crb[1] == 0)
    # the neglected terms are O(e^2) = 0.25 % relative
    np.testing.assert_allclose(crb[[0, 2]], 1 / np.sqrt(2 * g), rtol=5e-3)
    # four times the dose halves the bound (Fisher information proportional to dose)
    np.testing.assert_allclose(shift_crb(4 * np.stack([mu, mu, mu]), 1), crb / 2, rtol=1e-9)
