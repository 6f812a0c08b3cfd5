"""Simulator physics (Mansuripur phase vs induction, analytic stripes) and the TIE baseline."""

import numpy as np
import pytest

from scopeflow.ltem.analyze import induction_from_phase
from scopeflow.ltem.options import SimulateOptions
from scopeflow.ltem.simulate import mansuripur_phase, simulate_series
from scopeflow.ltem.textures import stripes
from scopeflow.ltem.tie import separate_flip, tie_phase
from scopeflow.optics.metrics import ncc, rel_l2_meanfree, scale_factor
from scopeflow.optics.wavelength import HBAR_OVER_E_T_NM2, electron_wavelength

LAM = electron_wavelength(200e3)


def test_stripe_phase_is_analytic():
    # helix m_y = sin(2 pi x / p): B_y t = B0 t sin(...), d phi/dx = -B_y t / (hbar/e)
    # => phi = B0 t p / (2 pi hbar/e) cos(2 pi x / p) exactly (one Fourier component).
    n, px, period, b0t = 64, 2.0, 32.0, 50.0
    mx, my, _, _ = stripes((n, n), px, period_nm=period)
    phi = mansuripur_phase(mx, my, b0t, px)
    x = (np.arange(n) - (n - 1) / 2) * px
    expect = b0t * period / (2 * np.pi * HBAR_OVER_E_T_NM2) * np.cos(2 * np.pi * x / period)
    assert np.allclose(phi, expect[None, :], atol=1e-9 * np.abs(expect).max())


def test_store_layout_and_truth_consistency():
    ds = simulate_series(
        [],
        SimulateOptions(
            size=64, pixel_size_nm=10.0, dose=None, defocus_nm=(-5e5, 0.0, 2e5, 5e5), flip=True
        ),
    )
    assert ds["image"].dims == ("defocus", "row", "col")
    assert ds["image"].dtype == np.float32 and ds["image_flip"].shape == (4, 64, 64)
    assert all("units" in ds[c].attrs for c in ("defocus", "row", "col"))
    assert ds["true_shift_px"].dims == ("defocus", "axis")
    for key in (
        "energy_ev",
        "pixel_size_nm",
        "defocus_nm",
        "cs_mm",
        "theta_c_rad",
        "defocus_spread_nm",
        "thickness_nm",
        "dose",
        "defocus_sign_convention",
    ):
        assert key in ds.attrs
    # induction from the (binned) true phase vs the induction projected directly from m:
    # central differences of a 40-nm-wide wall sampled at 10 nm lose a few % at most.
    bx, by = induction_from_phase(ds["true_phase_m"].values, 10.0)
    tb = np.hypot(ds["true_bx_tnm"], ds["true_by_tnm"]).values
    err = np.hypot(bx - ds["true_bx_tnm"].values, by - ds["true_by_tnm"].values)
    assert np.linalg.norm(err) / np.linalg.norm(tb) < 0.05


def test_tie_exact_on_noise_free_small_defocus():
    # TIE is first order in df: at +-20 um the second-order terms (lambda df q^2 phi'') are
    # ~1e-3 of the signal, so noise-free data give the phase to well under 1 %.
    ds = simulate_series(
        [],
        SimulateOptions(
            size=128, pixel_size_nm=5.0, dose=None, defocus_nm=(-2e4, 0.0, 2e4), detector_blur_px=0
        ),
    )
    truth = ds["true_phase_m"].values
    phi = tie_phase(ds["image"].values, ds["defocus"].values, 5.0, LAM)
    assert rel_l2_meanfree(phi, truth) < 0.01
    # Tikhonov: a component at q is scaled by ~(q^2/(q^2+qc^2))^2; with qc at the skyrmion's
    # own frequency (1/300 nm) the phase shrinks strongly (documented bias).
    biased = tie_phase(ds["image"].values, ds["defocus"].values, 5.0, LAM, qc=1 / 300)
    assert scale_factor(biased, truth) < 0.7


def test_tie_floor_keeps_zero_counts_finite():
    rng = np.random.default_rng(0)
    imgs = rng.poisson(1.0, size=(3, 32, 32)).astype(float)
    imgs[1, 5, 5] = 0.0
    phi = tie_phase(imgs, [-1e5, 0, 1e5], 5.0, LAM, floor=0.1, mirror_pad=True)
    assert np.isfinite(phi).all()


def test_flip_separation_tie():
    ds = simulate_series(
        [],
        SimulateOptions(
            texture="vortex_disc",
            size=128,
            pixel_size_nm=5.0,
            dose=None,
            flip=True,
            defocus_nm=(-2e4, 0.0, 2e4),
            thickness_nm=20.0,
            detector_blur_px=0,
        ),
    )
    phases = [
        tie_phase(ds[v].values, ds["defocus"].values, 5.0, LAM) for v in ("image", "image_flip")
    ]
    pm, pe = separate_flip(*phases)
    # the patterned disc's electrostatic phase (a 2.9 rad step one pixel wide) is the same in
    # both series and cancels in the difference: the vortex's magnetic phase comes out to a
    # few %; the sharp step itself is beyond first-order TIE (edge ringing) but correlates.
    assert rel_l2_meanfree(pm, ds["true_phase_m"].values) < 0.05
    assert ncc(pe, ds["true_phase_e"].values) > 0.9


@pytest.mark.parametrize("texture", ["neel_skyrmion", "skyrmion_lattice", "stripes"])
def test_other_textures_simulate(texture):
    ds = simulate_series(
        [], SimulateOptions(texture=texture, size=32, pixel_size_nm=20.0, tilt_deg=20.0, dose=50.0)
    )
    assert np.isfinite(ds["image"].values).all()
    assert np.ptp(ds["true_phase_m"].values) > 0.1


def test_tie_in_focus_division_is_unbiased_at_low_dose():
    # 1/I0 of Poisson counts is biased up by var(I0)/I0^2 = 1/dose (second order), so TIE that
    # divides by the raw in-focus image overestimates the phase scale by ~10 % at 10 e/px;
    # the automatic smoothing (0.1 % target bias) removes it. The remaining scale error is
    # TIE's own (second-order defocus terms at 1 mm and noise in its lowest Fourier modes:
    # 0.97-0.98 measured on three seeds): allow 5 %. The bias itself is 1/dose = 0.10 (+-0.02
    # for the scale's own noise and the O(1/dose^2) terms).
    ds = simulate_series(
        [],
        SimulateOptions(size=128, pixel_size_nm=5.0, dose=10.0, seed=3, defocus_nm=(-1e6, 0, 1e6)),
    )
    truth = ds["true_phase_m"].values + ds["true_phase_e"].values
    args = (ds["image"].values, ds["defocus"].values, 5.0, LAM)
    raw = scale_factor(tie_phase(*args, i0_smoothing_px=0.0), truth)
    auto = scale_factor(tie_phase(*args), truth)
    assert 0.08 < raw - auto < 0.14
    assert abs(auto - 1) < 0.05
