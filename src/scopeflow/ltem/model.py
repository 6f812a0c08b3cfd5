"""Differentiable forward model of a Lorentz-TEM through-focus series (torch).

Following Zhou et al., npj Comput. Mater. 7, 141 (2021), doi:10.1038/s41524-021-00600-x, the
exit wave ``psi = A exp(i phi)`` is imaged through the transfer function of each defocus
(:mod:`scopeflow.optics.transfer`: ``T = E exp(-i chi)``, quasi-coherent envelope) and compared
with the measured images; here the model also carries, per image ``k``,

    mu_k = c_k exp(g_k) W_k[ |F^-1{F{psi} T(df_k)}|^2 ] + c_k b_k,

with ``c_k`` the measured mean count, a gain ``g_k``, a background ``b_k``, the warp ``W_k``
(shift as a Fourier phase ramp, rotation by Fourier shears
:func:`scopeflow.optics.warp.shear_rotate`, or :func:`~scopeflow.optics.warp.affine_warp` with
magnification) and
``df_k = nominal_k + delta_k``, plus common theta_c and two-fold astigmatism.

Degeneracies and how they are pinned (each one a direction the data cannot see):

- a constant phase, and the mean log-amplitude against the gains: the log-amplitude is used
  mean-free;
- the frame: the reference image (smallest ``|defocus|``) is not warped and the shifts,
  rotations and log-magnifications of the other images are constrained to zero mean (the
  in-focus image of a phase object has no contrast with which to fix a translation, rotation or
  scale of the phase); the simulator uses the same convention;
- the reference image's defocus is fixed (a common defocus offset of all images is an exact
  re-labelling of the exit-wave plane);
- a global defocus scale ``df -> s df`` is degenerate with the phase amplitude ``phi -> phi / s``
  to first order (TIE regime); with ``defocus_scale="pinned"`` the offsets are projected
  orthogonal to the nominal defocus vector, so the scale stays nominal; ``"free"`` lets it move
  and logs a warning;
- a background is degenerate with the contrast (hence with the phase scale): off by default.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from scopeflow.optics.fourier import freq_grid
from scopeflow.optics.propagate import coherent_image
from scopeflow.optics.transfer import aberration_phase, coherence_envelope
from scopeflow.optics.warp import affine_warp, shear_rotate

__all__ = ["Series", "ForwardModel"]

log = logging.getLogger(__name__)


@dataclass
class Series:
    """One measured through-focus series.

    Attributes
    ----------
    images : (n, rows, cols) torch.Tensor, float32
        Measured images (counts for Poisson data).
    defocus : (n,) numpy.ndarray [nm]
        Nominal defocus values (> 0 overfocus).
    sign : int
        +1 for the sample, -1 for the flipped sample (magnetic phase reversed).
    reference : int
        Index of the reference image (smallest ``|defocus|``).
    """

    images: torch.Tensor
    defocus: np.ndarray
    sign: int = 1
    reference: int = field(init=False)

    def __post_init__(self):
        self.reference = int(np.argmin(np.abs(self.defocus)))


# Physical value = raw parameter * scale: keeps the raw variables O(1) for L-BFGS.
SCALES = {
    "phase": 1.0,
    "phase_m": 1.0,
    "log_amp": 1.0,
    "gain": 0.01,
    "background": 0.01,
    "shift": 1.0,
    "rotation": 0.1,
    "logmag": 1e-3,
    "defocus": 1e-3,  # times the largest |nominal defocus|
    "log_theta_c": 1.0,
    "astig": 1.0,  # (A1 [nm] / 100, azimuth [rad])
}


class ForwardModel:
    """Predicted mean images of one or two (flipped) series from raw parameters.

    Parameters
    ----------
    series : list of Series
        The sample series and optionally the flipped one (``sign = -1``).
    pixel_size : float [nm]
    wavelength : float [nm]
    cs_nm, theta_c, defocus_spread_nm, astig_nm, astig_angle : float
        Microscope constants (theta_c [rad], astig azimuth [rad]); theta_c and astigmatism are
        starting values when refined.
    refine : set of str
        Parameter groups to optimise (keys of :data:`SCALES` without the series suffix).
    defocus_scale : {"pinned", "free"}
    device : torch.device
    """

    def __init__(
        self,
        series,
        pixel_size,
        wavelength,
        *,
        cs_nm=0.0,
        theta_c=0.0,
        defocus_spread_nm=0.0,
        astig_nm=0.0,
        astig_angle=0.0,
        refine=frozenset({"phase"}),
        defocus_scale="pinned",
        device="cpu",
    ):
        self.series = series
        self.shape = tuple(series[0].images.shape[-2:])
        self.wavelength = float(wavelength)
        self.pixel_size = float(pixel_size)
        self.cs, self.spread = float(cs_nm), float(defocus_spread_nm)
        self.device = torch.device(device)
        self.qy, self.qx = freq_grid(self.shape, pixel_size, device=device)
        self.qy_px, self.qx_px = freq_grid(self.shape, 1.0, device=device)
        self.warps_specimen = bool({"rotation", "logmag"} & set(refine))
        self.flip = len(series) > 1
        self.defocus_scale = defocus_scale
        self.refine = set(refine)
        if self.flip:
            self.refine |= {"phase_m"} if "phase" in self.refine else set()
        self.df_unit = float(max(np.max(np.abs(s.defocus)) for s in series)) * SCALES["defocus"]
        self.params: dict[str, torch.Tensor] = {}
        z = {"dtype": torch.float32, "device": device}
        self.params["phase"] = torch.zeros(self.shape, **z)
        if self.flip:
            self.params["phase_m"] = torch.zeros(self.shape, **z)
        self.params["log_amp"] = torch.zeros(self.shape, **z)
        self.params["log_theta_c"] = torch.tensor(np.log(max(theta_c, 1e-12)), **z)
        self.params["astig"] = torch.tensor([astig_nm / 100.0, astig_angle], **z)
        # a fixed zero astigmatism is passed as 0.0 so the transfer function skips its terms
        self.astigmatic = "astig" in self.refine or astig_nm != 0
        self.counts, self.masks, self.nominal = [], [], []
        for i, s in enumerate(series):
            n = s.images.shape[0]
            sfx = self.suffix(i)
            for name, shape in (
                ("gain", (n,)),
                ("background", (n,)),
                ("shift", (n, 2)),
                ("rotation", (n,)),
                ("logmag", (n,)),
                ("defocus", (n,)),
            ):
                self.params[name + sfx] = torch.zeros(shape, **z)
            self.counts.append(s.images.mean(dim=(1, 2)).to(device))
            mask = torch.ones(n, **z)
            mask[s.reference] = 0.0
            self.masks.append(mask)
            self.nominal.append(torch.tensor(np.asarray(s.defocus, dtype=np.float64), **z))
        if defocus_scale == "free" and "defocus" in self.refine:
            log.warning(
                "defocus_scale='free': a global defocus scale is degenerate with the phase "
                "amplitude (TIE regime); the phase scale is only as good as the defocus "
                "calibration or the nonlinearity of the largest defocus"
            )

    @staticmethod
    def suffix(i: int) -> str:
        """Parameter-name suffix of series ``i`` ("" or "_flip")."""
        return "" if i == 0 else "_flip"

    def trainable(self) -> list[str]:
        """Names of the raw parameters being optimised."""
        out = []
        for name in self.params:
            base = name.removesuffix("_flip")
            if base in self.refine:
                out.append(name)
        return out

    # ------------------------------------------------------------------ physical values
    def _nonref_zero_mean(self, x, mask):
        m = mask.reshape(-1, *([1] * (x.ndim - 1)))
        mean = (x * m).sum(0) / m.sum()
        return (x - mean) * m

    def defocus(self, p, i):
        """Defocus of every image of series ``i`` [nm], (n,) tensor."""
        delta = p["defocus" + self.suffix(i)] * self.df_unit * self.masks[i]
        if self.defocus_scale == "pinned":
            d = self.nominal[i] * self.masks[i]
            delta = delta - (delta * d).sum() / (d * d).sum().clamp_min(1e-30) * d
        return self.nominal[i] + delta

    def alignment(self, p, i):
        """(shift (n, 2) [px], rotation (n,) [deg], magnification (n,)) of series ``i``."""
        sfx, mask = self.suffix(i), self.masks[i]
        shift = self._nonref_zero_mean(p["shift" + sfx] * SCALES["shift"], mask)
        rot = self._nonref_zero_mean(p["rotation" + sfx] * SCALES["rotation"], mask)
        logmag = self._nonref_zero_mean(p["logmag" + sfx] * SCALES["logmag"], mask)
        return shift, rot, torch.exp(logmag)

    def phase_map(self, p, name="phase"):
        """Phase map [rad]: ``phase`` (total, or electrostatic with a flip series) or
        ``phase_m`` (magnetic, flip series only)."""
        return p[name]

    def set_phase(self, phase: np.ndarray, name: str = "phase") -> None:
        """Set a phase map [rad] (e.g. the TIE start)."""
        with torch.no_grad():
            self.params[name].copy_(torch.as_tensor(phase, dtype=torch.float32))

    def set_log_amplitude(self, log_amp: np.ndarray) -> None:
        """Set the log-amplitude map (e.g. from the in-focus image)."""
        with torch.no_grad():
            self.params["log_amp"].copy_(torch.as_tensor(log_amp, dtype=torch.float32))

    def phase(self, p, i):
        """Total phase seen by series ``i`` [rad] (``phi_e +- phi_m`` with a flip series)."""
        if self.flip:
            return self.phase_map(p) + self.series[i].sign * self.phase_map(p, "phase_m")
        return self.phase_map(p)

    def log_amplitude(self, p):
        """Mean-free log-amplitude, (rows, cols)."""
        return p["log_amp"] - p["log_amp"].mean()

    def theta_c(self, p):
        """Illumination semi-angle [rad]."""
        return torch.exp(p["log_theta_c"])

    def astigmatism(self, p):
        """(A1 [nm], azimuth [rad]) as tensors."""
        return p["astig"][0] * 100.0, p["astig"][1]

    # ------------------------------------------------------------------ prediction
    def intensities(self, p, i):
        """Aligned model intensities of series ``i``, (n, rows, cols), mean ~ 1.

        Rotation and magnification act on the (smooth) specimen maps before propagation, with
        Fresnel scaling (an image magnified by m at defocus df is the image of the specimen
        magnified by m at defocus ``m^2 df``); shifts act exactly, as a Fourier phase ramp on
        the propagated wave. Both are thus free of interpolation error on the sharp images.
        """
        shift, rot, mag = self.alignment(p, i)
        la, phi = self.log_amplitude(p), self.phase(p, i)
        if self.warps_specimen:
            # the reference image is never warped (frame convention): warp only the others
            ref = self.series[i].reference
            others = [k for k in range(len(rot)) if k != ref]
            base = torch.stack((phi, la))
            stack = base[None].expand(len(others), 2, *self.shape)
            if "logmag" in self.refine:
                warped = affine_warp(stack, None, rot[others], mag[others])
            else:  # rotation only: exact and cheaper Fourier shears
                warped = shear_rotate(stack, rot[others])
            maps = torch.stack(
                [base if k == ref else warped[others.index(k)] for k in range(len(rot))]
            )
            la, phi = maps[:, 1], maps[:, 0]
        wave_ft = torch.fft.fft2(torch.polar(torch.exp(la), phi))
        a1, az = self.astigmatism(p) if self.astigmatic else (0.0, 0.0)
        df = self.defocus(p, i) * mag**2
        dfk = df[:, None, None]
        chi = aberration_phase(self.qy, self.qx, self.wavelength, dfk, self.cs, a1, az)
        env = coherence_envelope(
            self.qy, self.qx, self.wavelength, dfk, self.cs, self.theta_c(p), self.spread, a1, az
        )
        if "shift" in self.refine or bool(torch.any(shift != 0)):
            # exp(-2 pi i q.s) of the shift fused into the transfer function's phase
            chi = chi + 2 * torch.pi * (
                self.qy_px * shift[:, 0, None, None] + self.qx_px * shift[:, 1, None, None]
            )
        t = torch.polar(env, -chi)
        return coherent_image(wave_ft, t)

    def predict(self, p, i):
        """Predicted mean images of series ``i`` (units of the data), (n, rows, cols)."""
        img = self.intensities(p, i)
        sfx = self.suffix(i)
        gain = torch.exp(p["gain" + sfx] * SCALES["gain"])
        bg = p["background" + sfx] * SCALES["background"]
        c = self.counts[i]
        return c[:, None, None] * (gain[:, None, None] * img + bg[:, None, None])
