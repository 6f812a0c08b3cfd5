"""Sub-pixel warps: integer shifts are exact, Fourier and interpolated shifts agree on smooth
images, Fourier-shear rotation matches the analytic rotation, gradients match finite
differences."""

import numpy as np
import torch

from scopeflow.optics.fourier import freq_grid
from scopeflow.optics.warp import affine_warp, fourier_shift_kernel, shear_rotate

torch.set_num_threads(1)


def _blob(n=48):
    y, x = np.mgrid[:n, :n]
    return torch.tensor(np.exp(-((y - 20.0) ** 2 + (x - 26.0) ** 2) / 30.0))[None]


def test_integer_shift_is_roll():
    img = _blob()
    out = affine_warp(img, torch.tensor([[2.0, -3.0]], dtype=torch.float64))
    assert torch.allclose(out, torch.roll(img, (2, -3), (1, 2)), atol=1e-12)
    k = fourier_shift_kernel(
        *freq_grid((48, 48), 1.0, dtype=torch.float64),
        torch.tensor([[2.0, -3.0]], dtype=torch.float64),
    )
    four = torch.fft.ifft2(torch.fft.fft2(img) * k).real
    assert torch.allclose(four, torch.roll(img, (2, -3), (1, 2)), atol=1e-12)


def test_subpixel_shift_and_rotation_direction():
    img = _blob()
    s = torch.tensor([[0.4, 0.7]], dtype=torch.float64)
    k = fourier_shift_kernel(*freq_grid((48, 48), 1.0, dtype=torch.float64), s)
    four = torch.fft.ifft2(torch.fft.fft2(img) * k).real
    # bicubic interpolation of a blob of width ~4 px: error well below 1 % of the peak
    assert torch.abs(affine_warp(img, s) - four).max() < 1e-2
    # +90 deg turns +col into +row about the centre (23.5, 23.5): the blob at offset
    # (row, col) = (-3.5, +2.5) moves to (+2.5, +3.5), i.e. pixel (26, 27)
    out = affine_warp(img, None, torch.tensor([90.0], dtype=torch.float64))
    r, c = np.unravel_index(int(out[0].argmax()), (48, 48))
    assert (r, c) == (26, 27)


def test_warp_gradients_match_finite_differences():
    img = _blob(24)

    def f(shift, rot, mag):
        return affine_warp(img, shift, rot, mag)

    args = (
        torch.tensor([[0.3, -0.2]], dtype=torch.float64, requires_grad=True),
        torch.tensor([1.5], dtype=torch.float64, requires_grad=True),
        torch.tensor([1.01], dtype=torch.float64, requires_grad=True),
    )
    assert torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-5)


def test_shear_rotation_matches_analytic_rotation_and_convention():
    n = 64
    y, x = np.mgrid[:n, :n] - (n - 1) / 2

    def gauss(xx, yy):  # anisotropic, off-centre, ~band-limited (widths >= 3 px)
        return np.exp(-((xx - 8) ** 2 / 50.0 + (yy + 4) ** 2 / 18.0))

    img = torch.tensor(gauss(x, y))[None]
    for ang in (0.5, -10.0):
        a = np.deg2rad(ang)
        # output(r) = input(R^-1 r), R turning +col (x) toward +row (y)
        truth = gauss(x * np.cos(a) + y * np.sin(a), -x * np.sin(a) + y * np.cos(a))
        out = shear_rotate(img, torch.tensor([ang], dtype=torch.float64))[0].numpy()
        # three exact Fourier shifts of a band-limited blob far from the border: only the
        # Gaussian's spectral tail beyond Nyquist (exp(-pi^2 3^2) ~ 1e-39) and the periodic
        # wrap of the shears (blob tails ~1e-6 at the border) remain
        assert np.abs(out - truth).max() < 1e-4
    # same direction convention as affine_warp at a moderate angle
    ref = affine_warp(img, None, torch.tensor([10.0], dtype=torch.float64))
    out = shear_rotate(img, torch.tensor([10.0], dtype=torch.float64))
    assert torch.abs(out - ref).max() < 2e-2  # bicubic interpolation error of affine_warp


def test_shear_rotation_gradient_matches_finite_differences():
    img = _blob(24)
    ang = torch.tensor([1.5], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: shear_rotate(img, a), (ang,), eps=1e-6, atol=1e-6)


def test_shear_rotation_broadcasts_one_stack_over_angles():
    img = _blob(32)
    angles = torch.tensor([0.7, -1.2], dtype=torch.float64)
    both = shear_rotate(img, angles)
    for k in range(2):
        # the same arithmetic on a single stack: equal to rounding
        assert torch.allclose(both[k], shear_rotate(img, angles[k : k + 1])[0], atol=1e-12)
