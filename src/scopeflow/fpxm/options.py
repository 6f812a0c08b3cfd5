"""Options of the fpxm stages (frozen dataclasses mirroring the config schema)."""

from __future__ import annotations

from dataclasses import dataclass

from scopeflow.io.specimen import SPECIMEN_DIR
from scopeflow.options import opt

__all__ = [
    "SimulateOptions",
    "IngestOptions",
    "ReconstructOptions",
    "AnalyzeOptions",
    "FiguresOptions",
]

_DEVICE = ("auto", "cpu", "cuda")
#: Built-in structures plus the shared specimens of resources/specimens (scopeflow.io.specimen).
STRUCTURES = ("ac_stripes", "twin90", "vortex") + tuple(
    sorted(p.stem for p in SPECIMEN_DIR.glob("*.yaml"))
)


@dataclass(frozen=True)
class SimulateOptions:
    """Simulated FP-DFXM stack of a ferroelectric film (BaTiO3) with known truth."""

    seed: int = opt(0, "random seed (noise, shift errors, amplitude texture)", minimum=0)
    material: str = opt(
        "BaTiO3", "material (LGD coefficients in resources/fpxm)", choices=("BaTiO3",)
    )
    temperature_c: float = opt(25.0, "temperature", units="degC", minimum=-100.0, maximum=300.0)
    structure: str = opt(
        "ac_stripes",
        "domain structure of the film cross-section (or a shared specimen of resources/specimens: "
        "then n_object * pixel_size_nm must equal its field of view, needle/nanoregion false)",
        choices=STRUCTURES,
    )
    needle: bool = opt(True, "add a needle-shaped 180-degree c- domain inside a c band")
    nanoregion: bool = opt(True, "add a polar nanoregion (P rotated towards x) in a c band")
    n_object: int = opt(256, "object grid size (square)", units="px", minimum=32)
    upsampling: int = opt(4, "object pixels per detector pixel", minimum=1)
    pixel_size_nm: float = opt(7.5, "object pixel size", units="nm", exclusive_minimum=0.0)
    energy_ev: float = opt(17000.0, "photon energy", units="eV", exclusive_minimum=0.0)
    reflection: tuple[int, ...] = opt((0, 0, 2), "reflection hkl (k = 0: G in the image plane)")
    na_rms: float = opt(
        3.11e-4, "RMS numerical aperture of the CRL", units="rad", exclusive_minimum=0
    )
    aperture_mrad: float = opt(
        1.03, "physical aperture half-angle of the CRL", units="mrad", exclusive_minimum=0.0
    )
    zernike_noll: tuple[int, ...] = opt((4, 5, 6, 7, 8), "Noll indices of the true aberrations")
    zernike_rad: tuple[float, ...] = opt(
        (0.8, -0.6, 0.5, 0.7, -0.4), "true aberration coefficients (RMS over aperture)", units="rad"
    )
    shift_grid: int = opt(7, "pupil shifts per axis (grid n x n)", minimum=1)
    shift_step_mrad: float = opt(0.3, "pupil shift step", units="mrad", exclusive_minimum=0.0)
    shift_error_mrad: float = opt(0.01, "RMS error of the pupil shifts", units="mrad", minimum=0.0)
    coherence_modes: int = opt(3, "illumination modes (partial coherence)", minimum=1, maximum=9)
    divergence_mrad: float = opt(
        0.02, "RMS incident divergence along rows sampled by the modes", units="mrad", minimum=0.0
    )
    detector_blur_px: float = opt(0.3, "detector PSF sigma", units="px", minimum=0.0)
    photons_per_px: float | None = opt(
        1.0e4, "mean photons per detector pixel (null: noise-free)", units="photons", minimum=1.0
    )
    field_mv_per_m: float = opt(
        0.0,
        "applied field of a +-E pair along z (0: one zero-field stack)",
        units="MV/m",
        minimum=0,
    )
    wall_width_nm: float = opt(10.0, "90-degree wall half-width", units="nm", exclusive_minimum=0)
    interior_margin_px: float = opt(
        10.0, "distance from walls/features that defines domain interiors", units="px", minimum=1
    )


@dataclass(frozen=True)
class IngestOptions:
    """Read a measured FP-DFXM stack (HDF5/NeXus or TIFF) into the canonical stack store."""

    path: str = opt("", "input file (.h5/.hdf5/.nxs or .tif/.tiff)")
    format: str = opt("auto", "file format", choices=("auto", "hdf5", "tiff"))
    image_path: str = opt("/entry/data/data", "HDF5 dataset of the images (shot, row, col)")
    shift_path: str = opt("/entry/sample/pupil_shift_mrad", "HDF5 dataset of the shifts (shot, 2)")
    shifts_mrad: tuple[float, ...] = opt((), "pupil shifts row0, col0, row1, col1, ... (override)")
    energy_ev: float | None = opt(None, "photon energy (override)", units="eV", exclusive_minimum=0)
    reflection: tuple[int, ...] = opt((), "reflection hkl (override)")
    pixel_size_nm: float | None = opt(None, "object pixel size (override)", units="nm")
    upsampling: int | None = opt(None, "object pixels per detector pixel (override)", minimum=1)
    na_rms: float | None = opt(None, "CRL RMS NA (override)", units="rad", exclusive_minimum=0)
    aperture_mrad: float | None = opt(None, "CRL aperture half-angle (override)", units="mrad")
    detector_blur_px: float = opt(0.0, "detector PSF sigma if not in the file", units="px")
    lattice_a0_nm: float = opt(0.4, "pseudo-cubic reference lattice parameter", units="nm")


@dataclass(frozen=True)
class ReconstructOptions:
    """Fourier-ptychographic recovery of the Bragg field with Zernike pupil and shift refinement."""

    pupil: str = opt(
        "zernike",
        "pupil model: known (fixed coefficients), zernike (fit a few terms x known Gaussian CRL "
        "apodisation), blind (naive free pupil update, a baseline that fails on CRL pupils)",
        choices=("known", "zernike", "blind"),
    )
    zernike_noll: tuple[int, ...] = opt((4, 5, 6, 7, 8), "Noll indices fitted (no piston/tilt)")
    zernike_init_rad: tuple[float, ...] = opt(
        (), "initial (pupil=known: fixed) coefficients, same order as zernike_noll", units="rad"
    )
    refine_shifts: bool = opt(True, "refine the pupil shifts (zero-mean correction)")
    iterations: int = opt(
        500, "budget of model evaluations (forward+backward passes over all images)", minimum=1
    )
    warmup: int = opt(20, "L-BFGS steps on the object before the first pupil block", minimum=1)
    object_steps: int = opt(10, "L-BFGS steps per object block", minimum=1)
    pupil_steps: int = opt(5, "L-BFGS steps per pupil/shift block", minimum=1)
    tolerance: float = opt(
        1e-5, "stop when a cycle lowers the best loss by less than this fraction", minimum=0
    )
    regularization: float = opt(
        1e-3, "relative term added to the pupil coverage in the object preconditioner", minimum=0
    )
    band_threshold: float | None = opt(
        None,
        "keep spectrum where the summed pupil power exceeds this (|P|=1 on axis); null: "
        "max(0.01, 20 sigma_a), sigma_a = 1/(2 sqrt(mean counts)) the amplitude noise",
        minimum=0,
    )
    history: int = opt(10, "L-BFGS history size", minimum=1)
    progress_every: int = opt(25, "log progress every n model evaluations", minimum=1)
    device: str = opt("auto", "torch device", choices=_DEVICE)


@dataclass(frozen=True)
class AnalyzeOptions:
    """Phase -> strain/tilt -> polarization (local LGD equilibrium) and metrics vs truth."""

    reference_region: tuple[int, ...] = opt(
        (), "row0, row1, col0, col1 of the reference region (object px); empty: from the stack"
    )
    reference_strain: float | None = opt(
        None, "absolute strain along G in the reference region (null: stress-free LGD value)"
    )
    amplitude_threshold: float = opt(
        0.3, "bright (in-Bragg) pixels: amplitude above this fraction of the median", minimum=0
    )
    strain_smoothing_px: float = opt(
        2.0, "Gaussian-derivative sigma of the phase gradient", units="px", exclusive_minimum=0
    )
    interior_margin_px: float = opt(
        10.0, "erosion of the bright region for interiors (real data)", units="px", minimum=0
    )
    temperature_c: float | None = opt(None, "temperature (null: from the stack)", units="degC")
    ptylab: bool = opt(
        True,
        "with ground truth and PtyLab installed: run PtyLab (known pupil) on the same data for "
        "the same iteration budget and add ptylab.* metrics",
    )


@dataclass(frozen=True)
class FiguresOptions:
    """Figures: amplitude/phase, pupil, strain, polarization maps."""

    dpi: int = opt(120, "resolution of the PNGs", minimum=50, maximum=600)
    cmap_phase: str = opt("twilight", "colormap of phase maps", choices=("twilight", "hsv"))
