"""Fourier grids shared by every technique (torch, device-agnostic).

Convention: ``numpy.fft``/``torch.fft`` ordering (zero frequency at index 0); spatial frequencies
are in cycles per length unit of the pixel size (q, not 2*pi*q).
"""

from __future__ import annotations

import torch

__all__ = ["fft_freq", "freq_grid", "freq_grid_polar"]


def fft_freq(
    n: int, pixel_size: float, *, dtype=torch.float32, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """1-D spatial frequencies of an ``n``-point FFT.

    Parameters
    ----------
    n : int
        Number of samples.
    pixel_size : float
        Sample spacing (any length unit L).

    Returns
    -------
    torch.Tensor
        (n,) frequencies in cycles / L, FFT order.
    """
    return torch.fft.fftfreq(n, d=pixel_size, dtype=dtype, device=device)


def freq_grid(
    shape: tuple[int, int],
    pixel_size: float | tuple[float, float],
    *,
    dtype=torch.float32,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """2-D spatial-frequency grids (row, column) in FFT order.

    Parameters
    ----------
    shape : (int, int)
        (rows, cols).
    pixel_size : float or (float, float)
        Pixel size (row, col) in length unit L.

    Returns
    -------
    qy, qx : torch.Tensor
        (rows, cols) each, in cycles / L; ``qy`` varies along rows, ``qx`` along columns.
    """
    if isinstance(pixel_size, (int, float)):
        pixel_size = (float(pixel_size), float(pixel_size))
    fy = fft_freq(shape[0], pixel_size[0], dtype=dtype, device=device)
    fx = fft_freq(shape[1], pixel_size[1], dtype=dtype, device=device)
    qy, qx = torch.meshgrid(fy, fx, indexing="ij")
    return qy, qx


def freq_grid_polar(
    shape: tuple[int, int],
    pixel_size: float | tuple[float, float],
    *,
    dtype=torch.float32,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Polar spatial-frequency grid.

    Returns
    -------
    q, phi : torch.Tensor
        (rows, cols) modulus in cycles / L and azimuth ``atan2(qy, qx)`` in rad.
    """
    qy, qx = freq_grid(shape, pixel_size, dtype=dtype, device=device)
    return torch.sqrt(qx**2 + qy**2), torch.atan2(qy, qx)
