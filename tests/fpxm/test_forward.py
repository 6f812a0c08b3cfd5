"""FP forward model: scaling, adjoint of the linear part, autograd gradients."""

import numpy as np
import pytest
import torch

from scopeflow.fpxm.forward import (
    FPGeometry,
    detector_mtf,
    exit_waves,
    exit_waves_adjoint,
    intensities,
    object_to_spectrum,
    pupil_stack,
    spectrum_to_object,
)


def geometry(n_obj=64, n_img=16):
    # 17 keV, 6.6 nm object pixel on 64 px: aperture radius 1.03 mrad ~ 6 spectral px (fits 16)
    g = FPGeometry(n_obj, n_img, 6.6, 0.0729, 3.11e-4, 1.03e-3)
    return FPGeometry(**{**g.__dict__, "edge_width": 1.0 / g.aperture_px})


def test_unit_object_gives_unit_intensity_on_axis():
    geom = geometry()
    spec = object_to_spectrum(torch.ones(64, 64, dtype=torch.complex128), 16)
    shifts = torch.zeros(1, 2, dtype=torch.float64)
    pup = pupil_stack(geom, shifts, torch.zeros(1, 2, dtype=torch.float64))
    inten = intensities(spec, pup, shifts, torch.ones(1, dtype=torch.float64))
    # a plane wave passes the pupil centre with |P(0)| = 1: intensity 1 everywhere
    assert torch.allclose(inten, torch.ones_like(inten), atol=1e-12)
    back = spectrum_to_object(spec, 16)
    assert torch.allclose(back, torch.ones_like(back), atol=1e-12)


def test_geometry_rejects_undersampled_images():
    with pytest.raises(ValueError, match="undersampled"):
        FPGeometry(64, 8, 30.0, 0.0729, 3.11e-4, 1.03e-3)


def test_adjoint():
    geom = geometry()
    rng = np.random.default_rng(1)
    shifts = torch.from_numpy(rng.uniform(-8, 8, (5, 2)))
    modes = torch.tensor([[-0.5, 0.0], [0.5, 0.0]], dtype=torch.float64)
    pup = pupil_stack(
        geom,
        shifts,
        modes,
        zernike_noll=(4, 7),
        zernike_coeffs=torch.tensor([0.7, -0.4], dtype=torch.float64),
    )
    x = torch.from_numpy(rng.standard_normal((64, 64)) + 1j * rng.standard_normal((64, 64)))
    y = torch.from_numpy(
        rng.standard_normal((5, 2, 16, 16)) + 1j * rng.standard_normal((5, 2, 16, 16))
    )
    lhs = torch.vdot(exit_waves(x, pup, shifts).reshape(-1), y.reshape(-1))
    rhs = torch.vdot(x.reshape(-1), exit_waves_adjoint(y, pup, shifts, 64).reshape(-1))
    # <A x, y> = <x, A^H y> to double-precision rounding
    assert abs(lhs - rhs) < 1e-10 * abs(lhs)


def test_gradients_match_finite_differences():
    geom = geometry()
    rng = np.random.default_rng(2)
    obj = np.exp(1j * rng.standard_normal((64, 64)) * 0.3) * (1 + 0.1 * rng.random((64, 64)))
    spec0 = object_to_spectrum(torch.from_numpy(obj), 16)
    shifts0 = torch.from_numpy(rng.uniform(-6, 6, (3, 2)))
    modes = torch.tensor([[0.0, 0.0], [0.4, 0.0]], dtype=torch.float64)
    weights = torch.tensor([0.6, 0.4], dtype=torch.float64)
    mtf = detector_mtf(16, 0.4, dtype=torch.float64)
    meas = torch.from_numpy(rng.random((3, 16, 16)))

    def loss(spec_ri, coeffs, shifts):
        spec = torch.view_as_complex(spec_ri)
        pup = pupil_stack(geom, shifts, modes, zernike_noll=(4, 5, 8), zernike_coeffs=coeffs)
        inten = intensities(spec, pup, shifts, weights, mtf)
        return ((torch.sqrt(inten + 1e-3) - meas) ** 2).sum()

    spec_ri = torch.view_as_real(spec0).clone()
    coeffs = torch.tensor([0.5, -0.2, 0.3], dtype=torch.float64, requires_grad=True)
    shifts = shifts0.clone().requires_grad_(True)
    # pupil parameters: central differences in double precision agree with autograd to ~1e-6
    assert torch.autograd.gradcheck(
        lambda c, s: loss(spec_ri, c, s), (coeffs, shifts), eps=1e-6, atol=1e-5, rtol=1e-4
    )
    # object spectrum (4096 reals): directional derivative along a random direction
    x = spec_ri.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(x, coeffs.detach(), shifts0), x)
    d = torch.from_numpy(rng.standard_normal(x.shape))
    h = 1e-6
    fd = (
        loss(spec_ri + h * d, coeffs.detach(), shifts0)
        - loss(spec_ri - h * d, coeffs.detach(), shifts0)
    ) / (2 * h)
    assert abs(float(fd) - float((grad * d).sum())) < 1e-6 * abs(float(fd)) + 1e-8


def test_blind_pupil_interpolation_reproduces_grid_values():
    geom = geometry()
    zero = torch.zeros(1, 2, dtype=torch.float32)
    analytic = pupil_stack(geom, zero, zero)[0, 0]
    free = analytic.clone()
    # at integer offsets bilinear interpolation returns the stored samples
    again = pupil_stack(geom, zero, zero, free_pupil=free)[0, 0]
    assert torch.allclose(again, analytic, atol=1e-6)
