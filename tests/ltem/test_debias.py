"""Debiasing of the TV phase shrinkage: the maximum-likelihood global phase factor."""

import numpy as np
import torch

from scopeflow.ltem.ad import Objective, debias_phase_scale
from scopeflow.ltem.model import ForwardModel, Series
from scopeflow.ltem.options import SimulateOptions
from scopeflow.ltem.simulate import simulate_series
from scopeflow.optics.wavelength import electron_wavelength


def test_debias_restores_a_shrunk_phase():
    ds = simulate_series(
        [], SimulateOptions(size=64, pixel_size_nm=10.0, dose=None, defocus_nm=(-1e6, 0.0, 1e6))
    )
    truth = (ds["true_phase_m"] + ds["true_phase_e"]).values
    truth = truth - truth.mean()
    kw = {"cs_nm": 1e6, "theta_c": 1e-6, "defocus_spread_nm": 80.0}
    lam = electron_wavelength(200e3)
    dummy = Series(torch.zeros(3, 64, 64), ds["defocus"].values)
    # data: the model's own noise-free images of the true phase (an exact model, so the
    # likelihood's optimum over a global factor is exactly the true scale)
    gen = ForwardModel([dummy], 10.0, lam, **kw)
    gen.set_phase(truth)
    with torch.no_grad():
        data = gen.intensities(gen.params, 0) * 1e3
    m = ForwardModel([Series(data, ds["defocus"].values)], 10.0, lam, **kw)
    m.set_phase(0.8 * truth)  # a TV-like contrast shrinkage by 20 %
    factor = debias_phase_scale(Objective(m, "poisson", 0.0, 0.02, 4.0, False))
    # noise-free, exact model: only the L-BFGS tolerance (gradient ~1e-5) and float32 images
    # (relative rounding 6e-8 on 4e3 pixels) limit the recovered factor
    assert abs(factor - 1 / 0.8) < 1e-3
    np.testing.assert_allclose(m.params["phase"].numpy(), truth, atol=2e-3 * np.abs(truth).max())
