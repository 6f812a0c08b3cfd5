"""Options of the ltem stages (frozen dataclasses mirroring the config schema).

Defocus convention everywhere: ``defocus > 0`` is overfocus (the exit wave propagated
downstream by ``defocus``); see :mod:`scopeflow.optics.transfer`.
"""

from __future__ import annotations

from dataclasses import dataclass

from scopeflow.ltem.textures import TEXTURES
from scopeflow.options import opt

__all__ = [
    "SimulateOptions",
    "TieOptions",
    "AdOptions",
    "ReconstructOptions",
    "AnalyzeOptions",
    "FiguresOptions",
    "IngestOptions",
]

_DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class SimulateOptions:
    """Simulated Lorentz-TEM through-focus series of a magnetic texture, with ground truth."""

    texture: str = opt("bloch_skyrmion", "magnetic texture", choices=tuple(TEXTURES))
    size: int = opt(256, "output image size (square)", units="px", minimum=16)
    pixel_size_nm: float = opt(2.5, "output pixel size", units="nm", exclusive_minimum=0)
    oversample: int = opt(
        2, "simulate on a grid this many times finer, then bin down", minimum=1, maximum=8
    )
    energy_ev: float = opt(200e3, "beam energy", units="eV", exclusive_minimum=0)
    defocus_nm: tuple[float, ...] = opt(
        (-2e6, 0.0, 2e6), "nominal defocus values (> 0 overfocus)", units="nm", min_items=2
    )
    flip: bool = opt(False, "also simulate the flipped-sample series (variable image_flip)")
    ms_a_per_m: float = opt(8e5, "saturation magnetization Ms", units="A/m", minimum=0)
    thickness_nm: float = opt(70.0, "film thickness", units="nm", exclusive_minimum=0)
    thickness_variation: float = opt(
        0.0, "relative rms of a smooth random thickness variation", minimum=0, maximum=0.5
    )
    thickness_correlation_nm: float = opt(
        60.0, "correlation length of the thickness variation", units="nm", exclusive_minimum=0
    )
    mip_v: float = opt(20.0, "mean inner potential", units="V", minimum=0)
    inelastic_mfp_nm: float | None = opt(
        None,
        "inelastic mean free path for amplitude attenuation (null: none)",
        units="nm",
        exclusive_minimum=0,
    )
    radius_nm: float = opt(150.0, "skyrmion radius", units="nm", exclusive_minimum=0)
    wall_width_nm: float = opt(40.0, "skyrmion wall width", units="nm", exclusive_minimum=0)
    chirality: int = opt(1, "curl/radial sense (+1 or -1)", minimum=-1, maximum=1)
    polarity: int = opt(1, "vortex core polarity (+1 or -1)", minimum=-1, maximum=1)
    disc_radius_nm: float = opt(200.0, "vortex disc radius", units="nm", exclusive_minimum=0)
    core_radius_nm: float = opt(15.0, "vortex core radius", units="nm", exclusive_minimum=0)
    lattice_constant_nm: float = opt(
        200.0, "skyrmion-lattice constant", units="nm", exclusive_minimum=0
    )
    period_nm: float = opt(160.0, "stripe (helix) period", units="nm", exclusive_minimum=0)
    stripe_angle_deg: float = opt(0.0, "stripe wave-vector direction", units="deg")
    tilt_deg: float = opt(
        0.0, "sample tilt about the column (x) axis", units="deg", minimum=-60, maximum=60
    )
    cs_mm: float = opt(1.0, "spherical aberration Cs", units="mm")
    astig_nm: float = opt(0.0, "two-fold astigmatism A1", units="nm")
    astig_angle_deg: float = opt(0.0, "astigmatism azimuth (from +col toward +row)", units="deg")
    theta_c_rad: float = opt(1e-6, "illumination semi-angle", units="rad", minimum=0)
    defocus_spread_nm: float = opt(
        80.0, "defocus spread (standard deviation)", units="nm", minimum=0
    )
    defocus_error_rel: float = opt(
        0.0, "true defocus = nominal * (1 + u), u uniform in +-this", minimum=0, maximum=0.5
    )
    shift_px: float = opt(
        0.0, "random image shifts, uniform in +-this per axis", units="px", minimum=0
    )
    rotation_deg: float = opt(
        0.0, "random image rotations, uniform in +-this", units="deg", minimum=0
    )
    magnification_spread: float = opt(
        0.0, "random relative magnification change, uniform in +-this", minimum=0, maximum=0.2
    )
    detector_blur_px: float = opt(0.5, "Gaussian detector blur sigma", units="px", minimum=0)
    dose: float | None = opt(
        100.0,
        "electron dose per output pixel for Poisson noise (0 or null: noise-free)",
        units="e/px",
        minimum=0,
    )
    seed: int = opt(0, "random seed", minimum=0)


@dataclass(frozen=True)
class TieOptions:
    """Transport-of-intensity baseline."""

    floor: float = opt(
        0.1, "floor of the in-focus image, as a fraction of its mean", minimum=0, maximum=1
    )
    mirror_pad: bool = opt(
        False, "mirror-pad to 2x before the Poisson solves (for non-periodic real images)"
    )
    tikhonov_qc_per_nm: float = opt(
        0.0,
        "Tikhonov frequency qc: kernel 1/(q^2+qc^2) (biases phase at q <~ qc)",
        units="1/nm",
        minimum=0,
    )
    i0_smoothing_px: float | None = opt(
        None,
        "Gaussian sigma smoothing the in-focus image before TIE divides by it (null: from its "
        "noise, for a 0.1 % bias of 1/I0, which is biased up by 1/dose unsmoothed; 0: none)",
        units="px",
        minimum=0,
    )


@dataclass(frozen=True)
class AdOptions:
    """Automatic-differentiation reconstruction (Zhou et al. 2021, extended)."""

    enabled: bool = opt(True, "run the AD reconstruction (else TIE only)")
    likelihood: str = opt(
        "auto",
        "data term (auto: poisson when the store has a dose)",
        choices=("auto", "poisson", "gaussian"),
    )
    regularization: str = opt("tv", "phase/amplitude regulariser", choices=("tv", "none"))
    tv_weight: float = opt(
        3.75,
        "smoothed-TV weight per pixel (NLL units) at an rms defocus of 1 mm and 100 counts/px; "
        "scaled by (rms defocus / 1 mm)^tv_defocus_power (dose / 100)",
        minimum=0,
    )
    tv_defocus_power: float = opt(
        2.0,
        "exponent of the defocus scaling of the TV weight (2: proportional to the data's "
        "low-frequency, TIE-regime information; 0: the same weight at every defocus)",
        minimum=0,
        maximum=2,
    )
    debias_scale: bool = opt(
        True,
        "after the regularised fit, refit one global factor of the phase by maximum "
        "likelihood (undoes the TV shrinkage of the phase contrast)",
    )
    tv_highpass_weight: float = opt(
        10.0,
        "weight at 100 counts/px of a second smoothed-TV term on the phase high-passed above "
        "its ~sqrt(N) lowest Fourier modes (N measured pixels; at most 0.7x the first "
        "contrast-transfer zero), independent of defocus, scaled by sqrt(dose / 100): "
        "suppresses noise fitting beyond the first zero without shrinking the low "
        "frequencies (0: off)",
        minimum=0,
    )
    tv_weight_rule: str = opt(
        "fixed",
        "fixed weight, or chosen by the discrepancy principle (chi2/N = 1)",
        choices=("fixed", "discrepancy"),
    )
    tv_epsilon_rad: float = opt(
        0.02,
        "TV smoothing: gradients below this (per px) are penalised quadratically",
        units="rad",
        exclusive_minimum=0,
    )
    amplitude_tv_factor: float = opt(
        4.0, "TV weight of the log-amplitude relative to the phase", minimum=0
    )
    refine_amplitude: bool = opt(
        False,
        "refine the log-amplitude (else fixed at amplitude_start: refining it lets the "
        "amplitude absorb the relative-shift signal and fit noise at small defocus)",
    )
    amplitude_start: str = opt(
        "in_focus",
        "amplitude start (and fixed value unless refined): sqrt of the smoothed reference "
        "(smallest |defocus|) image, or uniform",
        choices=("in_focus", "uniform"),
    )
    amplitude_smoothing_px: float | None = opt(
        2.0,
        "Gaussian sigma smoothing the reference image for amplitude_start='in_focus' "
        "(null: from its measured noise, so that the amplitude's relative noise is 0.5 %; "
        "at 10 e/px that smooths by ~9 px and was seen to let a shift run away)",
        units="px",
        minimum=0,
    )
    refine_gain: bool = opt(True, "refine a gain per image")
    refine_background: bool = opt(
        False, "refine a background per image (degenerate with contrast/phase scale)"
    )
    refine_shifts: bool = opt(True, "refine per-image shifts")
    refine_rotation: bool = opt(True, "refine per-image rotations")
    refine_magnification: bool = opt(
        False,
        "refine per-image magnifications (near-degenerate with a common defocus offset "
        "for a 3-image series: enable with >= 4 defoci or a known magnification change)",
    )
    refine_defocus: bool = opt(True, "refine per-image defocus offsets")
    defocus_scale: str = opt(
        "pinned",
        "global defocus scale: pinned to nominal, or free (degenerate with phase scale)",
        choices=("pinned", "free"),
    )
    refine_theta_c: bool = opt(False, "refine the illumination semi-angle")
    refine_astigmatism: bool = opt(False, "refine two-fold astigmatism (common to all images)")
    start: str = opt("tie", "initial phase", choices=("tie", "zero"))
    optimizer: str = opt(
        "lbfgs", "optimizer (Adam is also the fallback)", choices=("lbfgs", "adam")
    )
    max_iter: int = opt(200, "maximum optimizer iterations", minimum=1)
    tol: float = opt(
        1e-4,
        "stop when the relative objective decrease over 10 iterations is below this",
        exclusive_minimum=0,
    )
    adam_lr: float = opt(0.02, "Adam learning rate", exclusive_minimum=0)
    uncertainty: str = opt(
        "bootstrap",
        "per-pixel uncertainty: parametric Poisson bootstrap, or none",
        choices=("bootstrap", "none"),
    )
    n_bootstrap: int = opt(4, "bootstrap replicates", minimum=2)
    bootstrap_max_iter: int = opt(60, "iterations per bootstrap replicate", minimum=1)


@dataclass(frozen=True)
class ReconstructOptions:
    """Phase retrieval from a through-focus series: TIE baseline and AD reconstruction."""

    device: str = opt("auto", "torch device (auto: CUDA when present)", choices=_DEVICES)
    cs_mm: float | None = opt(None, "Cs override (null: from the store)", units="mm")
    theta_c_rad: float | None = opt(
        None, "illumination semi-angle override (null: from the store)", units="rad", minimum=0
    )
    defocus_spread_nm: float | None = opt(
        None, "defocus spread override (null: from the store)", units="nm", minimum=0
    )
    tie: TieOptions = opt(TieOptions(), "TIE baseline")
    ad: AdOptions = opt(AdOptions(), "AD reconstruction")


@dataclass(frozen=True)
class AnalyzeOptions:
    """Induction maps and metrics against ground truth."""

    thickness_nm: float | None = opt(
        None, "film thickness for B in T (null: from the store)", units="nm", exclusive_minimum=0
    )
    frc_threshold: float = opt(0.5, "FRC threshold vs truth", exclusive_minimum=0, maximum=1)


@dataclass(frozen=True)
class FiguresOptions:
    """Phase, induction (colour wheel) and comparison figures."""

    dpi: int = opt(110, "figure resolution", units="dpi", minimum=30)
    phase_cmap: str = opt("viridis", "colour map of phase maps")


@dataclass(frozen=True)
class IngestOptions:
    """A through-focus series from TIFF / DM3 / DM4 / EMD files."""

    path: str = opt("", "file with the stack (defocus, row, col), or the first of `paths`")
    paths: tuple[str, ...] = opt((), "one file per defocus image, in the order of defocus_nm")
    format: str = opt("tiff", "file format", choices=("tiff", "dm3", "dm4", "emd"))
    flip_path: str = opt("", "optional flipped-sample series (same defocus values)")
    defocus_nm: tuple[float, ...] = opt(
        (), "defocus of each image (empty: from the file metadata)", units="nm"
    )
    flip_defocus_sign: bool = opt(
        False, "the instrument calls overfocus negative: multiply defocus values by -1"
    )
    pixel_size_nm: float | None = opt(
        None, "pixel size (null: from the file)", units="nm", exclusive_minimum=0
    )
    energy_ev: float | None = opt(
        None, "beam energy (null: from the file)", units="eV", exclusive_minimum=0
    )
    cs_mm: float = opt(0.0, "spherical aberration of the imaging lens", units="mm")
    theta_c_rad: float = opt(0.0, "illumination semi-angle", units="rad", minimum=0)
    defocus_spread_nm: float = opt(0.0, "defocus spread", units="nm", minimum=0)
    thickness_nm: float | None = opt(
        None, "film thickness (for B in T)", units="nm", exclusive_minimum=0
    )
    dose: float | None = opt(
        None,
        "mean counts per pixel if the images are electron counts (null: unknown)",
        units="e/px",
        minimum=0,
    )
