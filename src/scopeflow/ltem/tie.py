"""Transport-of-intensity (TIE) phase retrieval, the baseline (numpy).

Solves Teague's equation (JOSA 73, 1434 (1983), doi:10.1364/JOSA.73.001434)

    dI/dz = -(lambda / 2 pi) div(I0 grad phi)

(z downstream = overfocus positive) with the auxiliary potential ``psi``:
``lap psi = -(2 pi / lambda) dI/dz``, ``grad phi = grad psi / I0``, ``phi = lap^-1 div(...)``,
each inverse Laplacian in Fourier space.

- ``dI/dz`` and ``I0`` come from a per-pixel least-squares polynomial in z over all images (a
  quadratic when there are >= 3 distinct defoci, which for a symmetric ``-D, 0, +D`` series is
  the central difference ``(I+ - I-) / 2D`` and ``I0 = I(0)``);
- ``I0`` is smoothed before the division: ``1 / I0`` of a noisy image is biased upward,
  ``E[1 / (I (1 + e))] = (1 + var e) / I`` to second order, i.e. by ``1 / dose`` for Poisson
  counts (+10 % phase scale at 10 e/px, measured 1.10 at 1 mm; the AD fit that starts from
  TIE kept part of it, 1.02-1.03); a Gaussian of width ``s``
  divides the relative variance ``r^2`` of white noise by ``4 pi s^2``, so by default
  ``s = r / sqrt(4 pi b)`` with the target bias ``b`` = :data:`I0_BIAS_TARGET` (2.8 px at
  10 e/px, 0.9 px at 100 e/px; ``r`` from Immerkaer's estimate, CVIU 64, 300 (1996),
  doi:10.1006/cviu.1996.0060), clipped to [0, 16] px;
- ``I0`` is floored at ``floor * mean(I0)``: dividing by a near-zero count blows up;
- optional mirror padding (symmetric extension to twice the size) removes the wrap-around of a
  non-periodic field of view;
- optional Tikhonov regularisation replaces each ``1/q^2`` by ``1/(q^2 + qc^2)``. Its **bias**:
  every Fourier component of the phase at frequency q is multiplied by about
  ``(q^2 / (q^2 + qc^2))^2`` (two inverse Laplacians), e.g. 0.5 at ``q = 1.55 qc``; a structure of
  size L (``q ~ 1/L``) loses most of its phase when ``qc ~ 1/L``. Use 0 (default) for
  quantitative phase.

The first-order TIE is exact only for small defocus; at large defocus the finite difference
mixes in higher orders (e.g. the 2 mm case under-estimates the phase), which the AD
reconstruction removes.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import convolve, gaussian_filter

__all__ = ["intensity_derivative", "tie_phase", "separate_flip", "relative_noise", "I0_BIAS_TARGET"]

#: Relative upward bias of ``1 / I0`` (hence of the phase scale) that the automatic smoothing of
#: the in-focus image aims at.
I0_BIAS_TARGET = 1e-3


def relative_noise(img: np.ndarray) -> float:
    """White-noise standard deviation of an image relative to its mean (Immerkaer 1996,
    doi:10.1006/cviu.1996.0060: mean absolute response of a 3x3 Laplacian-difference mask,
    blind to linear structure)."""
    mask = np.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])
    a = np.asarray(img, dtype=np.float64)
    sigma = np.sqrt(np.pi / 2) / 6 * np.abs(convolve(a, mask, mode="wrap")).mean()
    return float(sigma / max(abs(a.mean()), 1e-30))


def intensity_derivative(images: np.ndarray, defocus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel least-squares fit ``I(z) = I0 + z dI/dz (+ z^2 c)``.

    Parameters
    ----------
    images : (n, rows, cols) array_like
        Images normalised to the incident intensity (mean ~ 1).
    defocus : (n,) array_like [nm]

    Returns
    -------
    i0 : (rows, cols) ndarray
        Intensity at z = 0.
    didz : (rows, cols) ndarray [1/nm]
    """
    z = np.asarray(defocus, dtype=np.float64)
    n_distinct = np.unique(z).size
    if n_distinct < 2:
        raise ValueError(f"TIE needs at least two distinct defocus values, got {z.tolist()}")
    scale = np.max(np.abs(z))
    zs = z / scale
    order = 2 if n_distinct >= 3 else 1
    design = np.stack([zs**p for p in range(order + 1)], axis=1)
    imgs = np.asarray(images, dtype=np.float64)
    coef, *_ = np.linalg.lstsq(design, imgs.reshape(len(z), -1), rcond=None)
    shape = imgs.shape[1:]
    return coef[0].reshape(shape), coef[1].reshape(shape) / scale


def _inv_laplacian(shape, pixel_size, qc):
    qy = np.fft.fftfreq(shape[0], d=pixel_size)[:, None]
    qx = np.fft.fftfreq(shape[1], d=pixel_size)[None, :]
    denom = -4 * np.pi**2 * (qx**2 + qy**2 + qc**2)
    denom[0, 0] = np.inf  # drop the undetermined constant
    return qy, qx, 1.0 / denom


def _mirror(a):
    """Symmetric extension of a (rows, cols) map to (2 rows, 2 cols), periodic and even."""
    return np.block([[a, a[:, ::-1]], [a[::-1, :], a[::-1, ::-1]]])


def tie_phase(
    images,
    defocus,
    pixel_size: float,
    wavelength: float,
    *,
    floor: float = 0.1,
    mirror_pad: bool = True,
    qc: float = 0.0,
    i0_smoothing_px: float | None = None,
) -> np.ndarray:
    """TIE phase from a through-focus series (module docstring).

    Parameters
    ----------
    images : (n, rows, cols) array_like
        Images; each is normalised to its mean here.
    defocus : (n,) array_like [nm]
        Defocus values (> 0 overfocus).
    pixel_size : float [nm]
    wavelength : float [nm]
    floor : float
        Floor of the in-focus image as a fraction of its mean.
    mirror_pad : bool
        Symmetric extension to twice the size before the Poisson solves.
    qc : float [1/nm]
        Tikhonov frequency (0: none; biases the phase, module docstring).
    i0_smoothing_px : float [px] or None
        Gaussian sigma smoothing the in-focus image before the division (None: from its
        noise, module docstring; 0: none).

    Returns
    -------
    phase : (rows, cols) ndarray [rad], zero mean
    """
    imgs = np.asarray(images, dtype=np.float64)
    imgs = imgs / imgs.mean(axis=(1, 2), keepdims=True)
    i0, didz = intensity_derivative(imgs, defocus)
    if i0_smoothing_px is None:
        r = relative_noise(i0)
        i0_smoothing_px = float(np.clip(r / np.sqrt(4 * np.pi * I0_BIAS_TARGET), 0, 16))
    if i0_smoothing_px > 0:
        i0 = gaussian_filter(i0, i0_smoothing_px, mode="wrap")
    i0 = np.maximum(i0, floor * i0.mean())
    rows, cols = i0.shape
    if mirror_pad:
        i0, didz = _mirror(i0), _mirror(didz)
    qy, qx, inv_lap = _inv_laplacian(i0.shape, pixel_size, qc)
    psi_ft = inv_lap * np.fft.fft2(-2 * np.pi / wavelength * didz)
    gy = np.fft.ifft2(2j * np.pi * qy * psi_ft).real / i0
    gx = np.fft.ifft2(2j * np.pi * qx * psi_ft).real / i0
    div_ft = 2j * np.pi * (qy * np.fft.fft2(gy) + qx * np.fft.fft2(gx))
    phase = np.fft.ifft2(inv_lap * div_ft).real[:rows, :cols]
    return phase - phase.mean()


def separate_flip(phase: np.ndarray, phase_flip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Magnetic and electrostatic phase from a sample and its flipped copy (registered).

    Flipping the sample reverses the magnetic phase and keeps the electrostatic one:
    ``phi = phi_e + phi_m``, ``phi_flip = phi_e - phi_m``.

    Returns
    -------
    phase_m, phase_e : (rows, cols) ndarray [rad]
    """
    return 0.5 * (phase - phase_flip), 0.5 * (phase + phase_flip)
