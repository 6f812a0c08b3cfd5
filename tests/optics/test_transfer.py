"""Sign conventions, envelopes, gradients and adjointness of the shared electron optics."""

import math

import numpy as np
import pytest
import torch

from scopeflow.optics.fourier import freq_grid
from scopeflow.optics.propagate import apply_transfer, coherent_image, fresnel_kernel, propagate
from scopeflow.optics.transfer import aberration_phase, coherence_envelope, transfer_function
from scopeflow.optics.wavelength import electron_wavelength

torch.set_num_threads(1)
LAM = electron_wavelength(200e3)


def _bump(n=128, px=2.0, sigma=12.0, amp=0.05):
    y, x = np.mgrid[:n, :n] - n / 2
    return amp * np.exp(-(x**2 + y**2) * px**2 / (2 * sigma**2))


@pytest.mark.parametrize("df, brighter", [(2e4, True), (-2e4, False)])
def test_weak_phase_bump_contrast_sign(df, brighter):
    # A positive phase bump (a converging lens for the wave) focuses intensity downstream:
    # bright centre in overfocus (df > 0), dark in underfocus (textbook: atoms look dark in
    # Scherzer underfocus).
    phi = torch.as_tensor(_bump(), dtype=torch.float64)
    qy, qx = freq_grid(phi.shape, 2.0, dtype=torch.float64)
    t = transfer_function(qy, qx, LAM, df, dtype=torch.complex128)
    img = coherent_image(torch.fft.fft2(torch.polar(torch.ones_like(phi), phi)), t)
    centre = float(img[64, 64])
    assert (centre > 1.0) == brighter


def test_small_defocus_matches_tie():
    # First order in df: I = 1 - (lambda df / 2 pi) lap(phi) (Teague 1983). Second-order terms
    # scale as (lambda df q^2)^2 ~ 1e-4 here, so 1 % of the signal is a safe bound.
    phi = _bump(amp=0.02)
    df = 5e3
    wave = torch.polar(torch.ones(phi.shape, dtype=torch.float64), torch.as_tensor(phi))
    img = propagate(wave, 2.0, LAM, df).abs().numpy() ** 2
    qy = np.fft.fftfreq(128, 2.0)[:, None]
    qx = np.fft.fftfreq(128, 2.0)[None, :]
    lap = np.fft.ifft2(-4 * np.pi**2 * (qx**2 + qy**2) * np.fft.fft2(phi)).real
    expect = 1 - LAM * df / (2 * np.pi) * lap
    assert np.abs(img - expect).max() < 0.01 * np.abs(expect - 1).max()


def test_transfer_is_fresnel_without_aberrations():
    # float64: chi reaches ~400 rad at the Nyquist corner, beyond float32 phase accuracy
    qy, qx = freq_grid((32, 32), 1.0, dtype=torch.float64)
    t = transfer_function(qy, qx, LAM, 1e5, dtype=torch.complex128)
    assert torch.allclose(t, fresnel_kernel(qy, qx, LAM, 1e5, dtype=torch.complex128), atol=1e-9)


def test_astigmatism_axes():
    # Along the astigmatism azimuth the defocus is df + A1, perpendicular df - A1.
    a = math.radians(30)
    q = torch.tensor(0.05, dtype=torch.float64)
    for ang, sign in ((a, 1), (a + math.pi / 2, -1)):
        qx, qy = q * math.cos(ang), q * math.sin(ang)
        chi = aberration_phase(qy, qx, LAM, 1000.0, 0.0, 200.0, a)
        assert float(chi) == pytest.approx(math.pi * LAM * (1000 + sign * 200) * 0.05**2)


def test_envelope_textbook_and_damping():
    qy, qx = freq_grid((64, 64), 2.0, dtype=torch.float64)
    q = torch.sqrt(qx**2 + qy**2)
    df, cs, th = 1e6, 1e6, 1e-6
    env = coherence_envelope(qy, qx, LAM, df, cs, th, 0.0)
    textbook = torch.exp(-((math.pi * th / LAM) ** 2) * (cs * LAM**3 * q**3 + df * LAM * q) ** 2)
    assert torch.allclose(env, textbook, rtol=1e-10)
    # both terms damp (the sign slip of the 2021 code would make the temporal term grow)
    e1 = coherence_envelope(qy, qx, LAM, df, cs, th, 100.0)
    e2 = coherence_envelope(qy, qx, LAM, df, cs, th, 400.0)
    assert float(env[0, 0]) == 1.0
    assert torch.all(e2 <= e1 + 1e-15) and torch.all(e1 <= env + 1e-15)


def test_transfer_gradients_match_finite_differences():
    qy, qx = freq_grid((8, 8), 5.0, dtype=torch.float64)
    pars = [
        torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (2e5, 1e-6, 300.0, 0.4)
    ]

    def f(df, th, a1, az):
        t = transfer_function(qy, qx, LAM, df, 1e6, th, 50.0, a1, az, dtype=torch.complex128)
        return torch.view_as_real(t)

    # scale each input to O(1) steps for gradcheck's finite differences
    scales = [1e5, 1e-6, 100.0, 1.0]

    def g(*u):
        return f(*(ui * s for ui, s in zip(u, scales, strict=True)))

    u = [(p.detach() / s).requires_grad_() for p, s in zip(pars, scales, strict=True)]
    assert torch.autograd.gradcheck(g, u, eps=1e-6, atol=1e-5)


def test_fresnel_operator_adjoint_and_unitary():
    # <A x, y> = <x, A^H y> with A^H the conjugate kernel; A is unitary (|kernel| = 1).
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 32, dtype=torch.complex128, generator=g)
    y = torch.randn(32, 32, dtype=torch.complex128, generator=g)
    qy, qx = freq_grid((32, 32), 2.0, dtype=torch.float64)
    k = fresnel_kernel(qy, qx, LAM, 3e5, dtype=torch.complex128)
    lhs = torch.vdot(apply_transfer(x, k).flatten(), y.flatten())
    rhs = torch.vdot(x.flatten(), apply_transfer(y, k.conj()).flatten())
    assert torch.allclose(lhs, rhs, rtol=1e-12)
    back = propagate(propagate(x, 2.0, LAM, 3e5), 2.0, LAM, -3e5)
    assert torch.allclose(back, x, atol=1e-12)
