"""Fresnel propagation and coherent image formation (torch, differentiable, batched).

Convention: a positive distance propagates the wave *downstream* (along the beam), with the
paraxial kernel ``exp(-i pi lambda z q^2)`` (q in cycles per length); in the defocus language of
:mod:`scopeflow.optics.transfer`, ``z = df > 0`` is overfocus. To first order in ``z`` this kernel
gives the transport-of-intensity equation ``dI/dz = -(lambda / 2 pi) div(I grad phi)``
(Teague, JOSA 73, 1434 (1983), doi:10.1364/JOSA.73.001434).

The operators here are linear in the wave; :func:`apply_transfer` with a unit-modulus kernel is
unitary (its adjoint is the same call with the conjugate kernel), which the tests check.
"""

from __future__ import annotations

import math

import torch

from scopeflow.optics.fourier import freq_grid

__all__ = ["fresnel_kernel", "apply_transfer", "propagate", "coherent_image"]


def fresnel_kernel(
    qy: torch.Tensor, qx: torch.Tensor, wavelength: float, distance, *, dtype=torch.complex64
) -> torch.Tensor:
    """Paraxial Fresnel propagator in Fourier space, ``exp(-i pi lambda z q^2)``.

    Parameters
    ----------
    qy, qx : (rows, cols) torch.Tensor
        Spatial frequencies [1/length].
    wavelength : float
        Wavelength [length].
    distance : float or torch.Tensor broadcastable to (..., rows, cols)
        Propagation distance z [length]; > 0 downstream.

    Returns
    -------
    (..., rows, cols) torch.Tensor, complex
    """
    chi = math.pi * float(wavelength) * distance * (qx**2 + qy**2)
    return torch.polar(torch.ones_like(chi), -chi).to(dtype)


def apply_transfer(wave: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Multiply a wave's spectrum by a Fourier-space kernel: ``F^-1{F{wave} kernel}``.

    Parameters
    ----------
    wave : (..., rows, cols) torch.Tensor, complex
    kernel : (..., rows, cols) torch.Tensor, complex, FFT order, broadcastable against ``wave``

    Returns
    -------
    (..., rows, cols) torch.Tensor, complex
    """
    return torch.fft.ifft2(torch.fft.fft2(wave) * kernel)


def propagate(wave: torch.Tensor, pixel_size: float, wavelength: float, distance) -> torch.Tensor:
    """Propagate a (periodic) wave field by ``distance`` with the Fresnel kernel.

    Parameters
    ----------
    wave : (..., rows, cols) torch.Tensor, complex
    pixel_size : float
        Pixel size [length].
    wavelength : float
        Wavelength [length].
    distance : float or torch.Tensor broadcastable to (..., 1, 1)
        z [length]; > 0 downstream.

    Returns
    -------
    (..., rows, cols) torch.Tensor, complex
    """
    qy, qx = freq_grid(tuple(wave.shape[-2:]), pixel_size, device=wave.device)
    return apply_transfer(wave, fresnel_kernel(qy, qx, wavelength, distance, dtype=wave.dtype))


def coherent_image(wave_ft: torch.Tensor, transfer: torch.Tensor) -> torch.Tensor:
    """Image intensity ``|F^-1{wave_ft T}|^2`` for one or many transfer functions.

    Parameters
    ----------
    wave_ft : (rows, cols) or (..., rows, cols) torch.Tensor, complex
        Fourier transform of the exit wave (``torch.fft.fft2``).
    transfer : (..., rows, cols) torch.Tensor, complex
        Transfer function(s), e.g. a defocus series from
        :func:`scopeflow.optics.transfer.transfer_function`.

    Returns
    -------
    (..., rows, cols) torch.Tensor, real [same units as ``|wave|^2``]
    """
    field = torch.fft.ifft2(wave_ft * transfer)
    return field.real**2 + field.imag**2
