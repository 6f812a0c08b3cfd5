"""CRL pupil: Gaussian apodisation, physical aperture, Zernike phase, differentiability."""

import math

import torch

from scopeflow.optics.pupil import circular_aperture, crl_pupil, gaussian_crl_amplitude
from scopeflow.optics.zernike import zernike

LAM = 0.0729  # nm, 17 keV
NA = 3.11e-4
AP = 1.03e-3


def test_gaussian_amplitude():
    # amplitude exp(-theta^2/4NA^2): 1/e at theta = 2 NA (intensity exp(-theta^2/2NA^2))
    theta = torch.tensor([0.0, 2 * NA])
    amp = gaussian_crl_amplitude(theta, NA)
    assert torch.allclose(amp, torch.tensor([1.0, math.exp(-1)]))


def test_aperture_area_preserved_by_soft_edge():
    # a linear roll-off centred on the edge keeps the disc area to O(width^2)
    n = 801
    x = torch.linspace(-1.5, 1.5, n, dtype=torch.float64)
    rho = torch.hypot(x[:, None], x[None, :])
    dx = (3.0 / (n - 1)) ** 2
    area = circular_aperture(rho, edge_width=0.05).sum() * dx
    assert abs(float(area) - math.pi) < 5e-3


def test_pupil_phase_is_zernike_sum_and_cut_by_aperture():
    q = torch.linspace(-0.02, 0.02, 41, dtype=torch.float64)
    qy, qx = torch.meshgrid(q, q, indexing="ij")
    coeffs = torch.tensor([0.5, -0.3], dtype=torch.float64)
    p = crl_pupil(
        qy,
        qx,
        wavelength_nm=LAM,
        na_rms=NA,
        aperture_rad=AP,
        zernike_noll=(4, 6),
        zernike_coeffs=coeffs,
    )
    theta = LAM * torch.hypot(qy, qx)
    inside = theta < 0.95 * AP
    rho, az = theta / AP, torch.atan2(qy, qx)
    expected = 0.5 * zernike(4, rho, az) - 0.3 * zernike(6, rho, az)
    assert torch.allclose(
        torch.angle(p)[inside],
        torch.angle(torch.polar(torch.ones_like(expected), expected))[inside],
        atol=1e-12,
    )
    assert torch.all(p.abs()[theta > AP] == 0)
    assert torch.allclose(p.abs()[inside], gaussian_crl_amplitude(theta, NA)[inside])


def test_gradient_finite_at_axis():
    # the pupil centre is sampled exactly in the FP model: gradients must not be NaN there
    qy = torch.tensor([0.0, 1e-3], dtype=torch.float64, requires_grad=True)
    qx = torch.tensor([0.0, 2e-3], dtype=torch.float64, requires_grad=True)
    c = torch.tensor([0.4, 0.2, 0.3], dtype=torch.float64, requires_grad=True)
    p = crl_pupil(
        qy,
        qx,
        wavelength_nm=LAM,
        na_rms=NA,
        aperture_rad=AP,
        zernike_noll=(4, 5, 8),
        zernike_coeffs=c,
    )
    (p.real.sum() + p.imag.sum()).backward()
    for t in (qy, qx, c):
        assert torch.all(torch.isfinite(t.grad))
