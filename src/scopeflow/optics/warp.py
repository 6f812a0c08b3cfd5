"""Differentiable sub-pixel affine warps of image stacks (shift, rotation, magnification).

Used to model (and refine) the misalignment of the images of a through-focus series: the
content of image ``k`` is scaled by ``m_k`` and rotated by ``alpha_k`` about the image centre,
then shifted by ``s_k``:

    T_k(x) = c + m_k R(alpha_k) (x - c) + s_k,      warped_k(r) = image_k(T_k^-1(r)),

so a feature at pixel ``x`` of the input appears at ``T_k(x)`` of the output. Positions are
``(row, col)`` in pixels, ``c = ((rows - 1) / 2, (cols - 1) / 2)``; a positive rotation turns
the +col axis toward the +row axis (clockwise on a screen with rows running down).

Images are treated as periodic (the wrap-around of FFT-based optics); interpolation is bicubic
(or bilinear) through :func:`torch.nn.functional.grid_sample`, differentiable in the image and
in every transform parameter. Interpolation of content near the Nyquist frequency is not
shift-exact (a cubic kernel's phase response lags), so sharp images should be shifted with
:func:`fourier_shift_kernel` (exact for periodic band-limited data) and only smooth maps warped.
:func:`shear_rotate` rotates by three Fourier shears instead (no interpolation kernel, and
several times cheaper than the bicubic warp in the backward pass).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["affine_warp", "warp_coordinates", "fourier_shift_kernel", "shear_rotate"]

_PAD = 2  # circular padding (pixels) that a bicubic kernel needs around a wrapped coordinate


def warp_coordinates(
    shape: tuple[int, int],
    shift: torch.Tensor,
    rotation_deg: torch.Tensor,
    magnification: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Source coordinates ``T^-1(r)`` of every output pixel.

    Parameters
    ----------
    shape : (int, int)
        (rows, cols).
    shift : (n, 2) torch.Tensor [px]
        (row, col) shifts s_k.
    rotation_deg : (n,) torch.Tensor [deg]
    magnification : (n,) torch.Tensor [1]

    Returns
    -------
    src_row, src_col : (n, rows, cols) torch.Tensor [px]
    """
    rows, cols = shape
    dev, dt = shift.device, shift.dtype
    cy, cx = (rows - 1) / 2, (cols - 1) / 2
    yy = torch.arange(rows, device=dev, dtype=dt)[:, None] - cy
    xx = torch.arange(cols, device=dev, dtype=dt)[None, :] - cx
    a = torch.deg2rad(rotation_deg)[:, None, None]
    m = magnification[:, None, None]
    dy = yy[None] - shift[:, 0, None, None]
    dx = xx[None] - shift[:, 1, None, None]
    cos, sin = torch.cos(a), torch.sin(a)
    # inverse rotation R(-a) on (x, y), then inverse magnification
    src_x = (dx * cos + dy * sin) / m + cx
    src_y = (-dx * sin + dy * cos) / m + cy
    return src_y, src_x


def affine_warp(
    images: torch.Tensor,
    shift: torch.Tensor | None = None,
    rotation_deg: torch.Tensor | None = None,
    magnification: torch.Tensor | None = None,
    *,
    mode: str = "bicubic",
) -> torch.Tensor:
    """Warp a stack of periodic images (module docstring for the transform).

    Parameters
    ----------
    images : (n, rows, cols) or (n, channels, rows, cols) torch.Tensor, real
    shift : (n, 2) torch.Tensor [px], optional
        (row, col) shift; zero when omitted.
    rotation_deg : (n,) torch.Tensor [deg], optional
    magnification : (n,) torch.Tensor [1], optional
    mode : {"bicubic", "bilinear"}

    Returns
    -------
    torch.Tensor, same shape as ``images``
    """
    if images.ndim not in (3, 4):
        raise ValueError(
            f"affine_warp expects (n, rows, cols) or (n, c, rows, cols), got {tuple(images.shape)}"
        )
    squeeze = images.ndim == 3
    stack = images[:, None] if squeeze else images
    n, _, rows, cols = stack.shape
    dev, dt = images.device, images.dtype
    shift = torch.zeros(n, 2, device=dev, dtype=dt) if shift is None else shift
    rotation_deg = torch.zeros(n, device=dev, dtype=dt) if rotation_deg is None else rotation_deg
    magnification = torch.ones(n, device=dev, dtype=dt) if magnification is None else magnification
    src_y, src_x = warp_coordinates((rows, cols), shift, rotation_deg, magnification)
    src_y = torch.remainder(src_y, rows) + _PAD
    src_x = torch.remainder(src_x, cols) + _PAD
    padded = F.pad(stack, (_PAD, _PAD, _PAD, _PAD), mode="circular")
    hp, wp = rows + 2 * _PAD, cols + 2 * _PAD
    grid = torch.stack((2 * src_x / (wp - 1) - 1, 2 * src_y / (hp - 1) - 1), dim=-1)
    out = F.grid_sample(padded, grid, mode=mode, padding_mode="border", align_corners=True)
    return out[:, 0] if squeeze else out


def fourier_shift_kernel(qy: torch.Tensor, qx: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Fourier-space kernel that moves periodic content by ``shift``: ``exp(-2 pi i q.s)``.

    Multiplying the spectrum of a wave (or image) by it moves a feature at ``x`` to ``x + s``,
    exactly for band-limited periodic data; applied to a propagated wave it shifts the image.

    Parameters
    ----------
    qy, qx : (rows, cols) torch.Tensor [1/px]
        Frequencies in cycles per pixel (``freq_grid(shape, 1.0)``).
    shift : (n, 2) torch.Tensor [px]
        (row, col) shifts.

    Returns
    -------
    (n, rows, cols) torch.Tensor, complex64 (complex128 for float64 input)
    """
    arg = -2 * torch.pi * (qy * shift[:, 0, None, None] + qx * shift[:, 1, None, None])
    return torch.polar(torch.ones_like(arg), arg)


def _shear(stack: torch.Tensor, amount: torch.Tensor, axis: int) -> torch.Tensor:
    """Shift every line along ``axis`` (-1: columns, -2: rows) by ``amount`` times its centred
    coordinate on the other axis, with a Fourier phase ramp (periodic, band-limited)."""
    n = stack.shape[axis]
    other = stack.shape[-1 if axis == -2 else -2]
    dt = stack.dtype
    q = torch.fft.rfftfreq(n, device=stack.device, dtype=dt)
    coord = torch.arange(other, device=stack.device, dtype=dt) - (other - 1) / 2
    # phase (n, other, n_q): the line at coordinate c moves by amount * c
    arg = -2 * torch.pi * amount[:, None, None] * coord[None, :, None] * q[None, None, :]
    ramp = torch.polar(torch.ones_like(arg), arg)[:, None]  # broadcast over channels
    if axis == -2:
        spec = torch.fft.rfft(stack, dim=-2)  # (n, c, n_q, cols)
        return torch.fft.irfft(spec * ramp.transpose(-1, -2), n=n, dim=-2)
    spec = torch.fft.rfft(stack, dim=-1)  # (n, c, rows, n_q)
    return torch.fft.irfft(spec * ramp, n=n, dim=-1)


def shear_rotate(images: torch.Tensor, rotation_deg: torch.Tensor) -> torch.Tensor:
    """Rotate periodic real images about their centre by three Fourier shears.

    ``R(a) = S_x(-tan(a/2)) S_y(sin a) S_x(-tan(a/2))`` (Paeth's decomposition), each shear a
    1-D Fourier shift of every line (Larkin, Oldfield & Klemm, Opt. Commun. 139, 99 (1997),
    doi:10.1016/S0030-4018(97)00097-7): exact for band-limited content away from the periodic
    boundary, differentiable in the images and the angles. Same convention as
    :func:`affine_warp` (a positive angle turns +col toward +row). Meant for small angles
    (|a| << 45 deg), where the intermediate shears stay small.

    Parameters
    ----------
    images : (n, rows, cols) or (n, channels, rows, cols) torch.Tensor, real
        ``n`` may be 1 for one stack rotated by every angle (broadcast, no copies).
    rotation_deg : (n,) torch.Tensor [deg]

    Returns
    -------
    torch.Tensor, ``images``' shape with ``n`` the number of angles
    """
    if images.ndim not in (3, 4) or images.shape[0] not in (1, len(rotation_deg)):
        raise ValueError(
            f"shear_rotate expects (n, rows, cols) or (n, c, rows, cols) with n = 1 or "
            f"{len(rotation_deg)} angles, got {tuple(images.shape)}"
        )
    squeeze = images.ndim == 3
    stack = images[:, None] if squeeze else images
    a = torch.deg2rad(rotation_deg.to(stack.dtype))
    # output(r) = input(R^-1 r): apply the shears of R one after the other as image warps;
    # an x-shear x' = x + t y moves each row by t (y - cy) along the columns
    t = -torch.tan(a / 2)
    out = _shear(stack, t, -1)
    out = _shear(out, torch.sin(a), -2)
    out = _shear(out, t, -1)
    return out[:, 0] if squeeze else out
