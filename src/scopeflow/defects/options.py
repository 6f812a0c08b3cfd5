"""Options of the defects stages (frozen dataclasses mirroring the config schema)."""

from __future__ import annotations

from dataclasses import dataclass

from scopeflow.options import opt

__all__ = [
    "SimulateOptions",
    "TrainOptions",
    "DetectOptions",
    "ClassifyOptions",
    "TrackOptions",
    "KineticsOptions",
    "AnalyzeOptions",
    "FiguresOptions",
    "IngestOptions",
]

DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class SimulateOptions:
    """Simulated HAADF-STEM movie of Mo-doped WS2 with defect kinetics and beam damage."""

    shape: tuple[int, ...] = opt(
        (512, 512), "Frame size (rows, cols)", units="px", minimum=64, min_items=2
    )
    n_frames: int = opt(40, "Number of frames", minimum=2)
    pixel_size: float = opt(0.2, "Pixel size", units="Å", exclusive_minimum=0)
    frame_time: float = opt(1.0, "Time per frame", units="s", exclusive_minimum=0)
    dose: float = opt(20.0, "Mean counts at a W column peak", units="counts", exclusive_minimum=0)
    electron_dose: float = opt(
        1.0e4, "Electron dose per frame (for D per dose)", units="e/Å^2", exclusive_minimum=0
    )
    background: float = opt(
        0.1,
        "Background counts per pixel as a fraction of the mean column signal "
        "per pixel (0.1 adds 10 % to a frame's mean counts)",
        minimum=0,
    )
    probe_sigma: float = opt(
        0.45, "Gaussian probe/column width (sigma)", units="Å", exclusive_minimum=0
    )
    jitter: float = opt(0.5, "Scan-line jitter (rms, along the fast scan)", units="px", minimum=0)
    drift: tuple[float, ...] = opt(
        (0.15, 0.1), "Drift velocity (row, col)", units="Å/frame", min_items=2
    )
    drift_noise: float = opt(0.05, "Random-walk drift per frame (rms)", units="Å", minimum=0)
    lattice_angle: float = opt(7.0, "Lattice rotation (a1 from +col towards +row)", units="deg")
    diffusion: float = opt(1.0, "S-vacancy diffusion coefficient", units="Å^2/s", minimum=0)
    vs_density: float = opt(0.45, "Free single S vacancies (hopping)", units="1/nm^2", minimum=0)
    complex_density: float = opt(0.2, "Mo + S-vacancy complexes", units="1/nm^2", minimum=0)
    mo_density: float = opt(0.08, "Isolated Mo substitutions", units="1/nm^2", minimum=0)
    vs2_density: float = opt(0.05, "Double S vacancies (static)", units="1/nm^2", minimum=0)
    vw_density: float = opt(0.03, "W vacancies (static)", units="1/nm^2", minimum=0)
    transition: tuple[float, ...] = opt(
        (0.80, 0.12, 0.08, 0.15, 0.75, 0.10, 0.10, 0.15, 0.75),
        "Per-frame transition matrix between complex configurations (Mo-V_S, Mo-V_S2, Mo-2V_S), "
        "row-major, rows sum to 1",
        minimum=0,
        maximum=1,
        min_items=9,
    )
    disorder_start: int = opt(28, "First beam-damaged frame (holes, lines, 1T' patches)", minimum=0)
    n_holes: int = opt(2, "Holes created at the damage onset", minimum=0)
    hole_radius: float = opt(6.0, "Initial hole radius", units="Å", minimum=0)
    hole_growth: float = opt(0.3, "Hole radius growth per frame", units="Å", minimum=0)
    n_lines: int = opt(3, "Lines of double S vacancies", minimum=0)
    line_length: int = opt(6, "Sites per vacancy line", minimum=1)
    n_patches: int = opt(2, "Rotated 1T'-like patches", minimum=0)
    patch_radius: float = opt(9.0, "Patch radius", units="Å", exclusive_minimum=0)
    seed: int = opt(0, "Random seed", minimum=0)


@dataclass(frozen=True)
class TrainOptions:
    """Train the U-Net-like per-pixel classifier on freshly simulated frames."""

    steps: int = opt(2500, "Optimiser steps", minimum=1)
    batch_size: int = opt(4, "Crops per step", minimum=1)
    crop: int = opt(
        192,
        "Training crop size (full-resolution pixels; 192: 0.56x the pixels of 256 per step, "
        "for the 6-minute training budget on 2 CPU cores)",
        units="px",
        minimum=64,
    )
    widths: tuple[int, ...] = opt(
        (16, 24, 32, 64),
        "Channels of the U-Net levels, finest first (one down-sampling step between levels; "
        "2-6 levels)",
        minimum=1,
        min_items=2,
    )
    space_to_depth: int = opt(
        2,
        "Pixel-unshuffle block of the binned input (the U-Net runs on a grid this much coarser "
        "with block**2 channels and pixel-shuffles its logits back; with the default widths "
        "half the inference time of the plain 8-channel network)",
        minimum=1,
        maximum=4,
    )
    learning_rate: float = opt(3e-3, "Adam learning rate (cosine decay)", exclusive_minimum=0)
    dose_range: tuple[float, ...] = opt(
        (0.5, 2.0), "Training dose range relative to the movie's", exclusive_minimum=0, min_items=2
    )
    pool_frames: int = opt(
        64, "Simulated frames in the training pool (re-drawn every epoch)", minimum=1
    )
    seed: int = opt(1, "Random seed (differs from the movie's on purpose)", minimum=0)
    device: str = opt("auto", "Torch device", choices=DEVICES)
    checkpoint: str = opt("", "Checkpoint file to write and resume from ('' = none)")
    checkpoint_every: int = opt(100, "Steps between checkpoints", minimum=1)


@dataclass(frozen=True)
class DetectOptions:
    """Detect defects with the network and/or the classical lattice-fit baseline."""

    method: str = opt("both", "Detector(s) to run", choices=("nn", "baseline", "both"))
    chunk_frames: int = opt(8, "Frames read and processed per chunk (bounds memory)", minimum=1)
    batch_frames: int = opt(4, "Frames per network batch", minimum=1)
    min_score: tuple[float, ...] = opt(
        (0.5, 0.55, 0.75, 0.7),
        "Smallest mean class probability of a network blob, per class (Mo, V_S, V_S2, V_W); "
        "chosen for the best F1 of the default network on a validation movie (seed 7, with "
        "the rim rule of min_neighbour), not the benchmark movie",
        minimum=0,
        maximum=1,
        min_items=4,
    )
    min_neighbour: float = opt(
        0.5,
        "Smallest probability (1 - background) at each neighbour column of a network W vacancy "
        "(3 S + 6 metal) or double S vacancy (3 metal); below it the site is part of a hole's rim",
        minimum=0,
        maximum=1,
    )
    temporal: bool = opt(
        True,
        "Also write the 'nn_temporal' table: single S vacancies from a two-state hidden Markov "
        "model per S lattice site over the frames (network evidence, switching rates fitted)",
    )
    temporal_threshold: float = opt(
        0.7,
        "Smallest posterior of a temporally combined single S vacancy; chosen for the best F1 "
        "on a validation movie (seed 7), not the benchmark movie",
        exclusive_minimum=0,
        maximum=1,
    )
    min_distance: float = opt(
        0.7, "Baseline peak-finding minimum distance (< d_WS / 2)", units="Å", exclusive_minimum=0
    )
    device: str = opt("auto", "Torch device", choices=DEVICES)


@dataclass(frozen=True)
class ClassifyOptions:
    """Unsupervised classes of defect objects: GMM (BIC) on lattice-aligned canonical crops."""

    source: str = opt(
        "nn",
        "Which detections table to classify (nn_temporal: network with single S vacancies "
        "combined over frames; its hop kinetics are biased, so kinetics use nn)",
        choices=("nn", "nn_temporal", "baseline"),
    )
    shells: int = opt(
        1,
        "Lattice-site shells around the centre in the crop (1: 4 sites, 2: 10, 3: 13)",
        minimum=1,
        maximum=3,
    )
    max_classes: int = opt(8, "Largest number of GMM components tried (BIC picks)", minimum=1)
    max_fit: int = opt(4000, "Objects used to fit the GMM (all are predicted)", minimum=10)
    bic_patience: int = opt(
        2,
        "Stop the BIC search over component counts after this many counts in a row above the "
        "best so far (BIC is near-unimodal in the count; the stopped search skips the fits past "
        "the minimum, the largest ones)",
        minimum=1,
    )
    seed: int = opt(0, "Random seed", minimum=0)


@dataclass(frozen=True)
class TrackOptions:
    """Link objects frame to frame (one-to-one, gap closing)."""

    search_range: float = opt(
        6.0,
        "Largest displacement between linked frames (6 Å: a stay, one S-vacancy hop (a = "
        "3.18 Å) or two hops at sqrt(3) a = 5.51 Å, plus ~3 sigma of the localisation error "
        "of a displacement; not 2 a = 6.36 Å. Longer links joined the wrong vacancy more often "
        "than the right one on simulated movies; the hop estimator models the range, the MSD "
        "does not)",
        units="Å",
        exclusive_minimum=0,
    )
    max_gap: int = opt(
        0,
        "Largest number of missing frames bridged (0: no gap closing; among S vacancies at "
        "~0.45 nm^-2 a bridged gap joins the wrong vacancy ~3x as often as a frame-to-frame "
        "link, measured on simulated movies)",
        minimum=0,
    )


@dataclass(frozen=True)
class KineticsOptions:
    """S-vacancy diffusion and complex transition matrix with bootstrap intervals."""

    max_lag: int = opt(4, "Largest MSD lag fitted (short lags, Michalet 2010)", minimum=2)
    n_boot: int = opt(300, "Bootstrap resamples (over tracks)", minimum=10)
    confidence: float = opt(0.95, "Bootstrap interval level", exclusive_minimum=0, maximum=1)
    min_track: int = opt(5, "Shortest track used", minimum=2)
    seed: int = opt(0, "Random seed", minimum=0)


@dataclass(frozen=True)
class AnalyzeOptions:
    """Scores vs ground truth (when present) and summary numbers."""

    match_radius: float = opt(
        0.9, "Detection-truth matching radius (d_WS / 2)", units="Å", exclusive_minimum=0
    )


@dataclass(frozen=True)
class FiguresOptions:
    """Figures: frames with detections, class map, tracks, MSD, transition matrices."""

    frames: tuple[int, ...] = opt(
        (0, -1), "Frames to draw (negative counts from the end)", min_items=1
    )
    dpi: int = opt(110, "Figure resolution", minimum=30)


@dataclass(frozen=True)
class IngestOptions:
    """Read a real movie (DM3/DM4, EMD, TIFF) into the canonical defects.movie store."""

    path: str = opt("", "File to read")
    format: str = opt("auto", "File format", choices=("auto", "dm", "emd", "tiff"))
    pixel_size: float | None = opt(
        None, "Pixel size override (else from metadata)", units="Å", exclusive_minimum=0
    )
    frame_time: float | None = opt(
        None, "Frame time override (else from metadata)", units="s", exclusive_minimum=0
    )
    dose: float | None = opt(
        None, "Mean counts at a W column peak, if known", units="counts", exclusive_minimum=0
    )
    electron_dose: float | None = opt(
        None, "Electron dose per frame, if known", units="e/Å^2", exclusive_minimum=0
    )
