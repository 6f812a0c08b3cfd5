"""The high-pass TV term and its frequency band."""

import numpy as np
import pytest
import torch

from scopeflow.ltem.ad import Objective, low_frequency_band
from scopeflow.ltem.model import ForwardModel, Series
from scopeflow.optics.wavelength import electron_wavelength

LAM = electron_wavelength(200e3)


def _model(n=64):
    s = Series(torch.full((3, n, n), 100.0), np.array([-1e6, 0.0, 1e6]))
    return ForwardModel([s], 5.0, LAM)


def _cosine(n, k):
    r = np.arange(n)
    return np.cos(2 * np.pi * k * r / n)[:, None] * np.ones((1, n))


def test_highpass_tv_ignores_modes_below_its_band():
    # The high-pass term sees only |q| >= band: adding a mode below the band (k / n = 2 / 64 <
    # 0.05 cycles/px) leaves it unchanged (to float32 FFT rounding), a mode above changes it.
    m = _model()
    obj = Objective(m, "poisson", 0.0, 0.02, 0.0, True, highpass_weight=1.0, highpass_band=0.05)
    rng = np.random.default_rng(0)
    base = 0.1 * rng.standard_normal((64, 64))

    def pen(phase):
        m.set_phase(phase.astype(np.float32))
        return float(obj.penalty(m.params))

    p0 = pen(base)
    assert pen(base + 3.0 * _cosine(64, 2)) == pytest.approx(p0, rel=1e-4)
    assert pen(base + 3.0 * _cosine(64, 8)) > 1.5 * p0


def test_low_frequency_band_counts_sqrt_n_modes_and_stays_below_the_first_zero():
    n_data = 3 * 256**2
    band = low_frequency_band((256, 256), n_data, [-2e5, 0, 2e5], LAM, 2.5)
    # sqrt(N) real modes = a disc of sqrt(N) / 2 complex coefficients
    n_modes = np.pi * (band * 256) ** 2
    assert n_modes == pytest.approx(np.sqrt(n_data) / 2, rel=1e-6)
    # at 2 mm the first zero of sin(pi lambda df q^2) is at q = 1 / sqrt(lambda df)
    band = low_frequency_band((256, 256), n_data, [-2e6, 0, 2e6], LAM, 2.5)
    assert band == pytest.approx(0.7 * 2.5 / np.sqrt(LAM * 2e6), rel=1e-6)
