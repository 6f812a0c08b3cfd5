"""Options of the polar4d stages (frozen dataclasses mirroring the config schema)."""

from __future__ import annotations

from dataclasses import dataclass

from scopeflow.options import opt

__all__ = [
    "OpticsOptions",
    "TrainSetOptions",
    "SimulateOptions",
    "IngestOptions",
    "TrainOptions",
    "InferOptions",
    "AnalyzeOptions",
    "FiguresOptions",
]

DEVICES = ("auto", "cpu", "cuda")
MATERIALS = ("BaSrTiO3", "SrTiO3", "BaTiO3", "PbTiO3")
THERMAL = ("static", "debye_waller", "frozen_phonon")


@dataclass(frozen=True)
class OpticsOptions:
    """Microscope and multislice settings shared by training sets and scans."""

    material: str = opt("BaSrTiO3", "Perovskite (A-site disorder for BaSrTiO3)", choices=MATERIALS)
    energy_eV: float = opt(300e3, "Beam energy", units="eV", exclusive_minimum=0)
    convergence_mrad: float = opt(10.0, "Probe semi-angle", units="mrad", exclusive_minimum=0)
    max_angle_mrad: float = opt(
        120.0, "Detector outer angle (dz lives in the FOLZ ring near 100 mrad)", units="mrad",
        minimum=60,
    )  # fmt: skip
    gpts_per_cell: int = opt(64, "Potential grid points per unit cell edge", minimum=16)
    thermal_model: str = opt("static", "Thermal model", choices=THERMAL)
    n_configs: int = opt(4, "Frozen-phonon configurations (frozen_phonon only)", minimum=1)
    bin_factor: int = opt(3, "Detector binning (odd) before the network", minimum=1)


@dataclass(frozen=True)
class TrainSetOptions:
    """Random displaced-cell CBED patterns for training (chunked, resumable)."""

    optics: OpticsOptions = OpticsOptions()
    n_structures: int = opt(48, "Structures (one displacement each)", minimum=2)
    max_disp_pm: float = opt(20.0, "Displacements uniform in +-max per component", units="pm",
                             exclusive_minimum=0)  # fmt: skip
    thickness_cells: tuple[int, ...] = opt(
        (20, 30, 40, 50), "Exit planes in unit cells (even)", units="cells", minimum=2, min_items=1
    )
    positions_per_structure: int = opt(4, "Probe positions per structure", minimum=1)
    position_jitter: float = opt(
        0.15, "Probe offset from the Ti column, uniform +-", units="cell", minimum=0
    )
    position_grid: int = opt(
        0,
        "n > 0: one position-averaged (PACBED) pattern per structure and thickness, the mean over "
        "an n x n uniform grid of probes spanning one unit cell at a random offset (invariant to "
        "where the scan sits on the lattice once n exceeds the highest probe-position harmonic: "
        "n >= 5 at 300 keV, 10 mrad; replaces positions_per_structure/position_jitter); "
        "0 = single-probe patterns",
        minimum=0,
    )
    max_tilt_mrad: float = opt(1.0, "Beam tilt uniform +- per component", units="mrad", minimum=0)
    max_defocus_A: float = opt(20.0, "Probe defocus uniform +-", units="Å", minimum=0)
    chunk_structures: int = opt(8, "Structures per resumable chunk", minimum=1)
    cache_dir: str = opt("", "Directory for resumable chunks ('' = no cache)")
    seed: int = opt(0, "Random seed", minimum=0)


@dataclass(frozen=True)
class SimulateOptions:
    """A 4D-STEM scan of a film with polar nanodomains (polar slush) and a switched state."""

    optics: OpticsOptions = OpticsOptions()
    scan_shape: tuple[int, ...] = opt((12, 12), "Scan (rows, cols), one probe per cell",
                                      units="cells", minimum=2, min_items=2)  # fmt: skip
    thickness_cells: int = opt(40, "Film thickness (even)", units="cells", minimum=2)
    state: str = opt("slush", "Polar state", choices=("slush", "switched"))
    p_inplane_pm: float = opt(
        8.0, "Rms Ti off-centring per component (training covers +-20 pm)", units="pm", minimum=0
    )
    domain_size_cells: float = opt(3.0, "Nanodomain correlation length", units="cells",
                                   exclusive_minimum=0)  # fmt: skip
    field_pm: tuple[float, ...] = opt(
        (0.0, 0.0, 12.0), "Displacement added by the applied field (switched state)", units="pm",
        min_items=3,
    )  # fmt: skip
    dose: float = opt(1e4, "Electrons per probe position", units="e", exclusive_minimum=0)
    position_jitter: float = opt(0.05, "Probe offset from the Ti column (rms)", units="cell",
                                 minimum=0)  # fmt: skip
    probes_per_cell: int = opt(
        1,
        "n > 1: an n x n probe grid per unit cell (step a / n) instead of one probe near each Ti "
        "column, for position-averaged inference (texture mode, not with a specimen)",
        minimum=1,
    )
    cache_dir: str = opt("", "Directory for resumable chunks ('' = no cache)")
    seed: int = opt(1, "Random seed", minimum=0)
    specimen: str = opt(
        "",
        "Shared specimen (resources/specimens/<name>.yaml or a path; '' = the texture above): "
        "its P at the probe positions and its lamella thickness replace state/p_inplane_pm/"
        "domain_size_cells/field_pm/thickness_cells",
    )
    scan_step_nm: float | None = opt(
        None, "Probe step with a specimen (null: one unit cell)", units="nm", exclusive_minimum=0
    )
    born_charge_ti: float = opt(
        7.2, "Z*_Ti turning the specimen's P into Ti off-centring (as in infer)", units="e",
        exclusive_minimum=0,
    )  # fmt: skip


@dataclass(frozen=True)
class IngestOptions:
    """Read a 4D-STEM file (MIB, EMD/HDF5 incl. py4DSTEM, DM4, raw EMPAD)."""

    path: str = opt("", "Input file")
    format: str = opt("hdf5", "File format", choices=("mib", "emd", "hdf5", "dm4", "empad"))
    dataset: str = opt("", "HDF5 dataset path ('' = find a py4DSTEM datacube)")
    scan_shape: tuple[int, ...] = opt((), "Scan (rows, cols) for EMPAD / flat MIB", minimum=1)
    beam_energy_eV: float | None = opt(None, "Override: beam energy", units="eV")
    scan_step_nm: float | None = opt(None, "Override: scan step", units="nm")
    k_pixel_mrad: float | None = opt(None, "Override: detector pixel", units="mrad")
    convergence_mrad: float | None = opt(None, "Override: probe semi-angle", units="mrad")
    chunk_rows: int = opt(0, "Scan rows per chunk (0 = ~64 MiB)", minimum=0)
    beam_center_px: tuple[float, ...] = opt(
        (),
        "Zero-angle (direct-beam) pixel (row, col); () = find it from the mean pattern's "
        "central disk",
        units="px",
    )


@dataclass(frozen=True)
class TrainOptions:
    """Train the two-branch network (and fit the baselines) on a training set."""

    steps: int = opt(1500, "Optimiser steps", minimum=1)
    batch_size: int = opt(64, "Batch size", minimum=1)
    learning_rate: float = opt(2e-3, "Initial learning rate", exclusive_minimum=0)
    width: int = opt(8, "Channels of the first convolution of each branch", minimum=4)
    dose_range: tuple[float, ...] = opt((1e3, 1e6), "Dose per pattern, log-uniform", units="e",
                                        exclusive_minimum=0, min_items=2)  # fmt: skip
    blur_px: float = opt(0.5, "Max detector blur (Gaussian sigma)", units="px", minimum=0)
    holdout_fraction: float = opt(0.2, "Structures held out for validation", minimum=0,
                                  maximum=0.9)  # fmt: skip
    checkpoint: str = opt("", "Checkpoint file for resume ('' = none)")
    checkpoint_every: int = opt(200, "Steps between checkpoints", minimum=1)
    device: str = opt("auto", "Torch device", choices=DEVICES)
    seed: int = opt(0, "Random seed", minimum=0)


@dataclass(frozen=True)
class InferOptions:
    """Stream the network over a scan: P maps with uncertainty and a COM baseline."""

    chunk_rows: int = opt(4, "Scan rows per batch", minimum=1)
    tta: bool = opt(False, "Test-time 4mm symmetry averaging (8x cost)")
    cell_average: str = opt(
        "auto",
        "'on': sum the patterns of each unit cell (n x n probes, n = lattice / scan step, which "
        "must be an integer) into one position-averaged pattern and map one P per cell; 'off': "
        "one P per probe position; 'auto': 'on' when the model was trained on position-averaged "
        "patterns (trainset position_grid > 0)",
        choices=("auto", "on", "off"),
    )
    born_charge_ti: float = opt(
        7.2, "Born effective charge of Ti (Z*) for P = e Z* u / V", units="e"
    )
    device: str = opt("auto", "Torch device", choices=DEVICES)


@dataclass(frozen=True)
class AnalyzeOptions:
    """Metrics vs truth and polar-texture statistics."""

    sign_threshold_pm: float = opt(10.0, "|dz| above which the dz sign is scored", units="pm",
                                   minimum=0)  # fmt: skip


@dataclass(frozen=True)
class FiguresOptions:
    """P maps, vector field, error histograms."""

    dpi: int = opt(110, "Figure resolution", minimum=50)
