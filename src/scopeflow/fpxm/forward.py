"""Fourier-ptychographic forward model of dark-field X-ray microscopy (torch, differentiable).

Image j of a stack (Carlsen et al., Opt. Express 30 (2022), doi:10.1364/OE.447657)::

    I_j = B * Σ_m w_m |F⁻¹{ P(f - f_j - o_m) ψ̃_G(f) }|²

with ψ̃_G the spectrum of the Bragg exit field, P the CRL pupil (:mod:`scopeflow.optics.pupil`),
f_j the pupil shift of image j (objective translation, or sample rocking in the thin-sample
limit: θ_j = λ f_j), o_m, w_m the offsets and weights of the partially coherent illumination modes
(a few samples of the incident divergence) and B the detector blur (a Gaussian intensity PSF,
applied as its MTF).

Discretisation: the object lives on an (N, N) grid of pixel ``pixel_size_nm``; an image on an
(n, n) grid with pixels ``N/n`` times larger, so both spectra share the spacing dq = 1/(N p).
The spectrum is stored as ``S = (n/N) fft2(ψ, norm="ortho")`` ("image units": a unit-amplitude
object gives unit intensity). Image j reads an (n, n) window of S centred on the integer
``k_j = round(f_j/dq)``; the pupil is evaluated analytically at the sub-pixel remainder, so the
model is exact for non-integer shifts and differentiable in f_j. The window wraps periodically.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from scopeflow.optics.pupil import crl_pupil

__all__ = [
    "FPGeometry",
    "object_to_spectrum",
    "spectrum_to_object",
    "window_origin",
    "window_indices",
    "pupil_stack",
    "exit_waves",
    "exit_waves_adjoint",
    "detector_mtf",
    "intensities",
    "pupil_coverage",
]


@dataclass(frozen=True)
class FPGeometry:
    """Sampling and optics of an FP-DFXM stack.

    Attributes
    ----------
    n_object : int
        Object grid size N (square).
    n_image : int
        Image grid size n (square), N/n an integer.
    pixel_size_nm : float
        Object pixel size [nm] (the image pixel is N/n times larger).
    wavelength_nm : float
        X-ray wavelength [nm].
    na_rms : float
        RMS numerical aperture of the Gaussian CRL transmission [rad].
    aperture_rad : float
        Physical aperture half-angle [rad] (Zernike normalisation radius).
    edge_width : float
        Aperture roll-off in normalised radius (about one spectral pixel, see ``crl_pupil``).
    """

    n_object: int
    n_image: int
    pixel_size_nm: float
    wavelength_nm: float
    na_rms: float
    aperture_rad: float
    edge_width: float = 0.0

    def __post_init__(self):
        if self.n_object % self.n_image:
            raise ValueError(
                f"object grid {self.n_object} is not a multiple of the image grid {self.n_image}"
            )
        if self.aperture_px + 1 > self.n_image / 2:
            raise ValueError(
                f"the aperture radius ({self.aperture_px:.1f} spectral px) does not fit the "
                f"{self.n_image}-px image grid: images are undersampled; use smaller image pixels"
            )

    @property
    def dq(self) -> float:
        """Spectral pixel [cycles/nm]."""
        return 1.0 / (self.n_object * self.pixel_size_nm)

    @property
    def mrad_per_px(self) -> float:
        """Angle of one spectral pixel [mrad]: θ = λ q."""
        return self.wavelength_nm * self.dq * 1e3

    @property
    def aperture_px(self) -> float:
        """Aperture radius in spectral pixels."""
        return self.aperture_rad / (self.wavelength_nm * self.dq)


def object_to_spectrum(field: torch.Tensor, n_image: int) -> torch.Tensor:
    """Object (..., N, N) complex -> spectrum S in image units (FFT order)."""
    n_obj = field.shape[-1]
    return torch.fft.fft2(field, norm="ortho") * (n_image / n_obj)


def spectrum_to_object(spec: torch.Tensor, n_image: int) -> torch.Tensor:
    """Spectrum S (..., N, N) in image units -> object (..., N, N) complex."""
    n_obj = spec.shape[-1]
    return torch.fft.ifft2(spec, norm="ortho") * (n_obj / n_image)


def window_origin(shift_px: torch.Tensor) -> torch.Tensor:
    """Integer window centres k_j (J, 2) of pupil shifts (J, 2) [spectral px]."""
    return torch.round(shift_px.detach()).to(torch.long)


def window_indices(origin: torch.Tensor, n_image: int, n_object: int):
    """Row/column indices into the (N, N) spectrum of each image window (FFT order).

    Returns
    -------
    rows, cols : torch.Tensor
        (J, n, 1) and (J, 1, n) long tensors, for ``spec[rows, cols] -> (J, n, n)``.
    g : torch.Tensor
        (n,) window frequencies relative to the centre, FFT order [spectral px].
    """
    g = torch.fft.fftfreq(n_image, 1.0 / n_image, device=origin.device).to(torch.long)
    rows = (origin[:, 0, None] + g[None, :]) % n_object
    cols = (origin[:, 1, None] + g[None, :]) % n_object
    return rows[:, :, None], cols[:, None, :], g


def pupil_stack(
    geom: FPGeometry,
    shift_px: torch.Tensor,
    mode_offset_px: torch.Tensor,
    *,
    zernike_noll: tuple[int, ...] = (),
    zernike_coeffs: torch.Tensor | None = None,
    free_pupil: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pupils of every image and coherence mode on the image windows.

    Parameters
    ----------
    geom : FPGeometry
    shift_px : torch.Tensor
        (J, 2) pupil shifts f_j (row, col) [spectral px]; differentiable.
    mode_offset_px : torch.Tensor
        (M, 2) illumination-mode offsets o_m [spectral px].
    zernike_noll, zernike_coeffs : tuple of int, (k,) torch.Tensor
        Aberrations (Noll, rad RMS over the aperture).
    free_pupil : torch.Tensor, optional
        (n, n) complex pupil sampled on the centred window grid (FFT order), used instead of the
        analytic CRL pupil (the unconstrained "blind" pupil); evaluated at sub-pixel offsets by
        bilinear interpolation.

    Returns
    -------
    torch.Tensor
        (J, M, n, n) complex pupils in FFT order of each window.
    """
    n = geom.n_image
    origin = window_origin(shift_px)
    g = torch.fft.fftfreq(n, 1.0 / n, device=shift_px.device).to(shift_px.dtype)
    # pupil coordinate of window pixel g: k_j + g - f_j - o_m  [spectral px]
    base = origin.to(shift_px.dtype) - shift_px  # (J, 2)
    off = base[:, None, :] - mode_offset_px[None, :, :]  # (J, M, 2)
    py = g[None, None, :, None] + off[..., 0, None, None]
    px = g[None, None, None, :] + off[..., 1, None, None]
    if free_pupil is not None:
        return _interpolate_pupil(free_pupil, py, px)
    return crl_pupil(
        py * geom.dq,
        px * geom.dq,
        wavelength_nm=geom.wavelength_nm,
        na_rms=geom.na_rms,
        aperture_rad=geom.aperture_rad,
        zernike_noll=zernike_noll,
        zernike_coeffs=zernike_coeffs,
        edge_width=geom.edge_width,
    )


def _interpolate_pupil(free: torch.Tensor, py: torch.Tensor, px: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of a centred-grid pupil (n, n, FFT order) at coordinates (py, px) [px]."""
    n = free.shape[-1]
    centred = torch.fft.fftshift(free)
    py, px = torch.broadcast_tensors(py, px)
    grid = torch.stack([px, py], -1).reshape(1, -1, py.shape[-1], 2) / (n / 2)
    grid = grid + 1.0 / n  # align_corners=False places pixel c at (2c + 1)/n - 1
    planes = torch.stack([centred.real, centred.imag])[None]
    out = torch.nn.functional.grid_sample(
        planes, grid.to(planes.dtype), mode="bilinear", padding_mode="zeros", align_corners=False
    )[0]
    return torch.complex(out[0], out[1]).reshape(py.shape[:-2] + (n, n))


def exit_waves(spec: torch.Tensor, pupils: torch.Tensor, shift_px: torch.Tensor) -> torch.Tensor:
    """Image-plane fields ψ_jm = F⁻¹{P_jm · S(window_j)} (the linear part of the model).

    Parameters
    ----------
    spec : torch.Tensor
        (N, N) complex spectrum in image units.
    pupils : torch.Tensor
        (J, M, n, n) complex pupils from :func:`pupil_stack`.
    shift_px : torch.Tensor
        (J, 2) pupil shifts [spectral px] (only their rounded windows are used here).

    Returns
    -------
    torch.Tensor
        (J, M, n, n) complex fields.
    """
    n = pupils.shape[-1]
    rows, cols, _ = window_indices(window_origin(shift_px), n, spec.shape[-1])
    return torch.fft.ifft2(pupils * spec[rows, cols][:, None], norm="ortho")


def exit_waves_adjoint(
    waves: torch.Tensor, pupils: torch.Tensor, shift_px: torch.Tensor, n_object: int
) -> torch.Tensor:
    """Adjoint of :func:`exit_waves`: (J, M, n, n) fields -> (N, N) spectrum."""
    n = pupils.shape[-1]
    rows, cols, _ = window_indices(window_origin(shift_px), n, n_object)
    contrib = (pupils.conj() * torch.fft.fft2(waves, norm="ortho")).sum(1)
    out = torch.zeros((n_object, n_object), dtype=contrib.dtype, device=contrib.device)
    rr = rows.expand(-1, n, n)
    cc = cols.expand(-1, n, n)
    return out.index_put_((rr.reshape(-1), cc.reshape(-1)), contrib.reshape(-1), accumulate=True)


def detector_mtf(n_image: int, blur_px: float, *, device=None, dtype=torch.float32):
    """Gaussian detector MTF exp(-2π²σ²k²) on the (n, n) image grid, σ in image pixels."""
    k = torch.fft.fftfreq(n_image, device=device, dtype=dtype)
    return torch.exp(-2 * math.pi**2 * blur_px**2 * (k[:, None] ** 2 + k[None, :] ** 2))


def intensities(
    spec: torch.Tensor,
    pupils: torch.Tensor,
    shift_px: torch.Tensor,
    mode_weight: torch.Tensor,
    mtf: torch.Tensor | None = None,
) -> torch.Tensor:
    """Model images (J, n, n): mode-weighted intensities, blurred by the detector MTF."""
    waves = exit_waves(spec, pupils, shift_px)
    inten = (mode_weight[None, :, None, None] * (waves.real**2 + waves.imag**2)).sum(1)
    if mtf is not None:
        inten = torch.fft.ifft2(torch.fft.fft2(inten) * mtf).real
    return inten


def pupil_coverage(
    pupils: torch.Tensor, shift_px: torch.Tensor, mode_weight: torch.Tensor, n_object: int
) -> torch.Tensor:
    """Σ_jm w_m |P_jm|² scattered onto the (N, N) spectrum grid (FFT order)."""
    n = pupils.shape[-1]
    rows, cols, _ = window_indices(window_origin(shift_px), n, n_object)
    power = (mode_weight[None, :, None, None] * (pupils.real**2 + pupils.imag**2)).sum(1)
    out = torch.zeros((n_object, n_object), dtype=power.dtype, device=power.device)
    rr = rows.expand(-1, n, n).reshape(-1)
    cc = cols.expand(-1, n, n).reshape(-1)
    return out.index_put_((rr, cc), power.reshape(-1), accumulate=True)
