"""Cramer-Rao bound of image shifts against its closed form for a weak cosine pattern."""

import numpy as np
import pytest

from scopeflow.ltem.crb import fisher_dense, joint_shift_crb, model_at_truth
from scopeflow.ltem.options import SimulateOptions
from scopeflow.ltem.simulate import simulate_series
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


@pytest.mark.slow
def test_joint_crb_conjugate_gradients_match_the_dense_inverse():
    # 16^2 x 40 nm (a 640 nm field holding the 300 nm skyrmion), 1 mm, 10 e/px, +-2 % defocus,
    # shifts, rotations. The Schur complement by CG over the phase must equal the shift block
    # of the dense pseudo-inverse Fisher matrix (the constant phase is its only null
    # direction). Beyond the first contrast-transfer zero some phase modes carry Fisher
    # eigenvalues near the float32 rounding of the Jacobian products (1e-7 of the largest);
    # they hold ~1 % of the Schur term, so CG and the dense pseudo-inverse agree to ~1 % here
    # (to 1e-5 at 32^2 x 20 nm, measured).
    sim = SimulateOptions(
        size=16,
        pixel_size_nm=40.0,
        defocus_nm=(-1e6, 0.0, 1e6),
        dose=10.0,
        seed=6,
        shift_px=1.0,
        rotation_deg=0.5,
        defocus_error_rel=0.02,
    )
    ds = simulate_series([], sim)
    model = model_at_truth(ds, {"phase", "shift", "gain", "defocus", "rotation"})
    out = joint_shift_crb(model, cg_tol=1e-6, cg_max_iter=300, nuisance=())
    npix = 16 * 16

    def dense_bound(groups, with_phase=True):
        fisher, phys = fisher_dense(model, groups)
        keep = np.r_[np.arange(npix) if with_phase else [], npix + np.arange(len(fisher) - npix)]
        keep = keep.astype(int)
        cov = np.linalg.pinv(fisher[np.ix_(keep, keep)], rcond=1e-10, hermitian=True)
        ns, off = phys.shape[0], npix if with_phase else 0
        cov_s = phys.T @ cov[off : off + ns, off : off + ns] @ phys
        return np.sqrt(np.diag(cov_s)).reshape(-1, 2)

    dense = dense_bound(["shift"])
    np.testing.assert_allclose(out["joint"], dense, rtol=0.02)
    np.testing.assert_allclose(out["all_known"], dense_bound(["shift"], False), rtol=1e-4)
    # with the phase unknown the bound is larger (the phase is estimated from the same data)
    assert out["joint"].max() > 1.05 * out["all_known"].max()
    # the gains, defocus offsets and rotations barely couple with the shifts of this centred,
    # rotationally symmetric texture: eliminating them too changes the joint bound by < 5 %
    full = dense_bound(["shift", "gain", "defocus", "rotation"])
    np.testing.assert_allclose(full, dense, rtol=0.05)
    assert np.all(full >= dense * (1 - 1e-6))
