"""Sub-pixel warps: integer shifts are exact, Fourier and interpolated shifts agree on smooth
images, gradients match finite differences."""

import numpy as np
import torch

from scopeflow.optics.fourier import freq_grid
from scopeflow.optics.warp import affine_warp, fourier_shift_kernel

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
