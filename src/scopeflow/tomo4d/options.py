"""Options of the tomo4d stages (frozen dataclasses mirroring the config schema)."""

from __future__ import annotations

from dataclasses import dataclass

from scopeflow.options import opt

__all__ = [
    "SimulateOptions",
    "IngestOptions",
    "TrackOptions",
    "ReduceOptions",
    "IndexOptions",
    "ExportOptions",
    "AnalyzeOptions",
    "FiguresOptions",
]


@dataclass(frozen=True)
class SimulateOptions:
    """Tilt series of kinematic 4D-STEM scans of agglomerated nanocrystals on a carbon film."""

    seed: int = opt(0, "random seed (particles, orientations, drift, counts)", minimum=0)
    material: str = opt(
        "brookite", "particle material (CIF in resources/tomo4d)", choices=("brookite", "CsPbBr3")
    )
    n_particles: int = opt(5, "particles in the agglomerate", minimum=1)
    target: int = opt(
        0, "particle followed (its first-tilt box is stored as target_box)", minimum=0
    )
    particle_length_nm: float = opt(
        70.0, "rod length (cube edge for CsPbBr3)", units="nm", exclusive_minimum=0
    )
    particle_width_nm: float = opt(26.0, "rod width", units="nm", exclusive_minimum=0)
    packing: str = opt(
        "touching",
        "touching: each particle moved out until it touches (overlap <= max_overlap of its "
        "footprint); dense: centres spacing_nm apart whatever the shapes (rods pile up)",
        choices=("touching", "dense"),
    )
    max_overlap: float = opt(
        0.15,
        "largest share of a particle's footprint under its neighbours (touching)",
        minimum=0,
        maximum=1,
    )
    spacing_nm: float = opt(
        36.0, "centre distance to a neighbour (dense packing)", units="nm", minimum=0
    )
    tilt_range_deg: tuple[float, ...] = opt(
        (-30.0, 30.0), "first and last tilt angle", units="deg", min_items=2
    )
    tilt_step_deg: float = opt(1.0, "tilt step", units="deg", exclusive_minimum=0)
    tilt_axis_deg: float = opt(
        20.0,
        "tilt-axis direction from the scan-column axis",
        units="deg",
        minimum=-180,
        maximum=180,
    )
    scan_shape: tuple[int, ...] = opt((32, 32), "scan rows, cols", min_items=2, minimum=4)
    scan_step_nm: float = opt(5.0, "probe step", units="nm", exclusive_minimum=0)
    detector_px: int = opt(128, "detector pixels per side", minimum=32)
    k_pixel_inv_a: float = opt(0.011, "detector pixel size", units="1/A", exclusive_minimum=0)
    beam_energy_ev: float = opt(200e3, "beam energy", units="eV", exclusive_minimum=0)
    convergence_mrad: float = opt(
        1.0, "probe convergence semi-angle", units="mrad", minimum=0.6, maximum=1.2
    )
    dose_e_per_probe: float = opt(1500.0, "electrons per probe position", units="e", minimum=1)
    carbon_nm: float = opt(10.0, "carbon film thickness", units="nm", minimum=0)
    drift_walk_nm: float = opt(1.0, "random-walk drift per tilt (RMS)", units="nm", minimum=0)
    drift_linear_nm: tuple[float, ...] = opt(
        (0.4, -0.3), "linear drift per tilt (row, col)", units="nm", min_items=2
    )
    eucentric_error_nm: float = opt(
        30.0, "height of the particles above the tilt axis", units="nm", minimum=0
    )
    descan_px: float = opt(1.5, "RMS direct-beam jump between tilts", units="px", minimum=0)


@dataclass(frozen=True)
class IngestOptions:
    """Read a tilt series of 4D-STEM scans (one file per tilt) into the sparse series store."""

    paths: tuple[str, ...] = opt((), "one 4D-STEM file per tilt, in tilt order", min_items=1)
    format: str = opt(
        "hdf5", "file format (scopeflow.io.fourd)", choices=("mib", "emd", "hdf5", "dm4", "empad")
    )
    dataset: str = opt("", "HDF5 dataset path ('' = found automatically)")
    scan_shape: tuple[int, ...] = opt((), "scan rows, cols (MIB/EMPAD frame series)")
    tilt_deg: tuple[float, ...] = opt((), "tilt angle of each file", units="deg", min_items=1)
    tilt_axis_deg: float = opt(
        0.0, "tilt-axis direction from the scan-column axis", units="deg", minimum=-180, maximum=180
    )
    beam_energy_ev: float | None = opt(None, "override the beam energy", units="eV", minimum=1)
    scan_step_nm: float | None = opt(None, "override the probe step", units="nm", minimum=0)
    k_pixel_inv_a: float | None = opt(
        None, "override the detector pixel size", units="1/A", exclusive_minimum=0
    )
    convergence_mrad: float | None = opt(
        None, "override the probe convergence semi-angle", units="mrad", minimum=0
    )


@dataclass(frozen=True)
class TrackOptions:
    """Follow the target particle through the tilt series on virtual annular images."""

    inner_px: float = opt(
        12.0, "inner radius of the virtual annular detector", units="px", minimum=0
    )
    outer_px: float = opt(60.0, "outer radius of the virtual annular detector", units="px")
    exclude_bragg: bool = opt(True, "leave the Bragg-spot pixels out (diffuse, thickness image)")
    tracker: str = opt(
        "csrt", "OpenCV tracker (template: scikit-image only)", choices=("csrt", "mil", "template")
    )
    init_box: tuple[int, ...] = opt(
        (), "initial box row0, col0, row1, col1 on the first tilt (empty: the store's target_box)"
    )
    reference_lag: int = opt(20, "a reference frame this many tilts back as well", minimum=0)
    upsample: int = opt(4, "image upsampling for the tracker", minimum=1)
    split: str = opt(
        "watershed", "splitting of touching particles", choices=("watershed", "gmm", "none")
    )
    diffraction_split: bool = opt(
        True, "refine each mask by 2-class clustering of the probes' Bragg patterns"
    )
    min_distance_px: float = opt(
        3.0, "minimum distance between particle centres for the split", units="px", minimum=1
    )


@dataclass(frozen=True)
class ReduceOptions:
    """Sum the target's patterns per tilt (direct beam re-centred), plus baselines."""

    recentre: bool = opt(True, "re-centre every pattern on its direct beam")
    centre_radius_px: float = opt(
        8.0, "radius around the beam used for its centre of mass", units="px", minimum=1
    )
    virtual_frames: int = opt(1, "consecutive tilts summed into one virtual frame", minimum=1)
    surround_px: int = opt(
        3,
        "width of the band around the tracked box whose patterns are summed to check that the "
        "reported crystal lies inside the box (0: no check)",
        units="px",
        minimum=0,
    )


@dataclass(frozen=True)
class IndexOptions:
    """Peak search, Ewald inversion, DPS indexing, cell refinement, integration."""

    spot_radius_px: float = opt(
        0.0, "spot disk radius (0: from convergence and pixel size)", units="px", minimum=0
    )
    threshold_sigma: float = opt(6.0, "peak significance over background noise", minimum=1)
    min_g_inv_a: float = opt(0.06, "ignore spots nearer the beam than this", units="1/A", minimum=0)
    d_range_a: tuple[float, ...] = opt(
        (3.0, 25.0), "cell-vector length range searched", units="A", min_items=2
    )
    direction_step_deg: float = opt(
        1.5, "DPS direction grid step", units="deg", exclusive_minimum=0
    )
    tolerance: float = opt(0.12, "max |hkl - round(hkl)| of an indexed spot", exclusive_minimum=0)
    refine_axis: bool = opt(True, "refine the tilt-axis direction")
    check_windows: int = opt(
        4, "contiguous tilt windows in which the cell must index the spots", minimum=1
    )
    min_window_fraction: float = opt(
        0.15,
        "least indexed share of the spot intensity in every tilt window, else the frames are "
        "not one crystal's and no cell is reported",
        minimum=0,
        maximum=1,
    )
    max_surround_ratio: float = opt(
        0.35,
        "largest spot intensity of the tracked cell's crystal in the band around the tracked "
        "box relative to inside the mask, else it is a neighbour's and no cell is reported "
        "(0: no check)",
        minimum=0,
    )
    variants: tuple[str, ...] = opt(
        ("tracked", "fixed_box", "whole_field", "oracle"),
        "frame sets to index (those present in the frames store)",
    )


@dataclass(frozen=True)
class ExportOptions:
    """Write a PETS2 project (.pts2 + TIFF frames) and a SHELX HKLF4 .hkl file."""

    name: str = opt("tomo4d", "file stem of the project")
    variant: str = opt("tracked", "frame set exported", choices=("tracked", "oracle"))


@dataclass(frozen=True)
class AnalyzeOptions:
    """Metrics vs truth: cell, orientation, mask purity/capture, baselines."""

    length_tol_pct: float = opt(2.0, "max length error of a correct cell", units="%", minimum=0)
    angle_tol_deg: float = opt(1.5, "max angle error of a correct cell", units="deg", minimum=0)
    orientation_tol_deg: float = opt(
        3.0, "max axis misorientation vs the target's truth", units="deg", minimum=0
    )


@dataclass(frozen=True)
class FiguresOptions:
    """Virtual images with masks, a summed frame, reciprocal-space projections."""

    dpi: int = opt(100, "figure resolution", minimum=30)
