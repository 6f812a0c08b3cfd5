"""Simulated polar4d data: a training set of displaced cells and a 4D-STEM scan of a film.

Both are generated in chunks (a chunk = a few structures); with ``cache_dir`` each chunk is saved
as ``.npz`` and skipped when it already exists, so a killed run resumes where it stopped.
Progress is logged per chunk.

The scan uses a local-periodic approximation: the pattern at each probe position (one per unit
cell, near the Ti column) is that of a laterally periodic crystal with that cell's displacement.
This ignores the probe's spread into neighbouring cells of other displacement (the probe is
~1 Å wide at the entrance but broadens with thickness), so domain walls appear sharper than a
full-supercell multislice would show them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr
from scipy import ndimage

from scopeflow.io import specimen as shared
from scopeflow.polar4d.cbed import LATTICE_A, CellSpec, cbed_series, k_pixel_mrad
from scopeflow.polar4d.metrics import polarization_uc_cm2
from scopeflow.polar4d.options import OpticsOptions, SimulateOptions, TrainSetOptions

__all__ = [
    "cell_spec",
    "simulate_trainset",
    "simulate_scan",
    "polar_texture",
    "specimen_texture",
    "bin_patterns",
    "pacbed",
]

log = logging.getLogger(__name__)


def cell_spec(o: OpticsOptions) -> CellSpec:
    """The multislice settings of an :class:`OpticsOptions`."""
    return CellSpec(
        material=o.material,
        energy_eV=o.energy_eV,
        convergence_mrad=o.convergence_mrad,
        gpts_per_cell=o.gpts_per_cell,
        max_angle_mrad=o.max_angle_mrad,
    )


def bin_patterns(p: np.ndarray, f: int) -> np.ndarray:
    """Sum ``f x f`` detector pixels symmetrically about the zero-angle pixel.

    abTEM puts zero angle at index ``n // 2``; the output keeps it at the centre of an odd-sized
    frame, so 4mm symmetry operations (flips, transposes) map the grid exactly onto itself.

    Parameters
    ----------
    p : (..., n, n) array
        Patterns, zero angle at ``n // 2``.
    f : int
        Odd binning factor.

    Returns
    -------
    (..., 2 B + 1, 2 B + 1) array
        Binned patterns, zero angle at index ``B``.
    """
    if f % 2 == 0:
        raise ValueError(f"bin_factor must be odd (symmetric about zero angle), got {f}")
    n = p.shape[-1]
    c = n // 2
    half = min(c, n - 1 - c)
    b = (half - f // 2) // f
    lo, hi = c - (b * f + f // 2), c + b * f + f // 2 + 1
    q = p[..., lo:hi, lo:hi]
    m = 2 * b + 1
    return q.reshape(*q.shape[:-2], m, f, m, f).sum(axis=(-3, -1))


def pacbed(p: np.ndarray) -> np.ndarray:
    """Position-averaged CBED: the mean over the probe-position axis, kept as a length-1 axis.

    Over a uniform ``n x n`` grid spanning one unit cell the mean equals the cell average of the
    pattern for any grid offset, as long as ``n`` exceeds the highest lattice harmonic of the
    pattern-vs-probe-position function: only overlaps of disks ``g`` apart carry position
    dependence, so the harmonics stop at ``|g| <= 2 alpha / lambda`` (10.2 nm^-1 at 300 keV,
    10 mrad: order 3 of a 0.39 nm cell, plus ~1e-3 of order 4 from abTEM's soft aperture edge),
    hence ``n >= 5`` there. LeBeau et al., Ultramicroscopy 110, 118 (2010),
    doi:10.1016/j.ultramic.2009.10.001.

    Parameters
    ----------
    p : (n_thickness, n_positions, k, k) array
        Patterns of one structure.

    Returns
    -------
    (n_thickness, 1, k, k) array
    """
    return p.mean(axis=1, keepdims=True)


def _chunked(n_chunks: int, make: Callable[[int], dict], cache_dir: str, key: dict) -> list[dict]:
    """Run ``make(i)`` for every chunk, caching results as npz under a key-hash folder."""
    folder = None
    if cache_dir:
        h = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
        folder = Path(cache_dir) / h
        folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n_chunks):
        path = folder / f"chunk{i:05d}.npz" if folder else None
        if path is not None and path.exists():
            with np.load(path) as z:
                out.append({k: z[k] for k in z.files})
            continue
        res = make(i)
        if path is not None:
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, **res)
            tmp.replace(path)
        out.append(res)
        log.info("polar4d simulate: chunk %d/%d done", i + 1, n_chunks)
    return out


def simulate_trainset(inputs: list, opts: TrainSetOptions) -> xr.Dataset:
    """Stage ``trainset``: a ``polar4d.trainset`` store.

    Returns
    -------
    xarray.Dataset
        ``patterns (pattern, k_row, k_col)`` float32 [fraction of the beam per binned pixel],
        ``true_disp_pm (pattern, component)`` [pm], ``thickness_nm (pattern)``,
        ``tilt_mrad (pattern, axis)``, ``structure (pattern)``; attrs with the optics.
    """
    o = opts.optics
    spec = cell_spec(o)
    rng = np.random.default_rng(opts.seed)
    n = opts.n_structures
    disp = rng.uniform(-opts.max_disp_pm, opts.max_disp_pm, (n, 3))
    tilt = rng.uniform(-opts.max_tilt_mrad, opts.max_tilt_mrad, (n, 2))
    defocus = rng.uniform(-opts.max_defocus_A, opts.max_defocus_A, n)
    m = opts.positions_per_structure
    pos = 0.5 + rng.uniform(-opts.position_jitter, opts.position_jitter, (n, m, 2))
    seeds = rng.integers(2**31, size=n)
    if opts.position_grid:
        # a uniform n x n grid over one cell at a random offset, averaged below (drawn last so
        # the draws of the single-probe mode stay as they were)
        g = opts.position_grid
        grid = np.stack(np.meshgrid(np.arange(g) / g, np.arange(g) / g, indexing="ij"), -1)
        pos = rng.uniform(0.0, 1.0, (n, 1, 1, 2)) + grid[None]
        pos = pos.reshape(n, g * g, 2)
    cells = np.asarray(opts.thickness_cells, int)
    cs = opts.chunk_structures
    n_chunks = -(-n // cs)

    def make(i: int) -> dict:
        rows = []
        for s in range(i * cs, min(n, (i + 1) * cs)):
            p = cbed_series(
                spec, disp[s], cells, pos[s], thermal=o.thermal_model, tilt_mrad=tilt[s],
                defocus_A=defocus[s], n_configs=o.n_configs, seed=int(seeds[s]),
            )  # fmt: skip
            if opts.position_grid:
                p = pacbed(p)
            rows.append(bin_patterns(p, o.bin_factor))
        return {"patterns": np.stack(rows).astype(np.float32)}

    key = {"opts": repr(opts), "v": 1}
    chunks = _chunked(n_chunks, make, opts.cache_dir, key)
    pats = np.concatenate([c["patterns"] for c in chunks])  # (n, thick, m, k, k)
    nt, m = len(cells), pats.shape[2]
    a_nm = 0.1 * LATTICE_A[o.material]
    k = pats.shape[-1]
    flat = pats.reshape(n * nt * m, k, k)
    idx_s = np.repeat(np.arange(n), nt * m)
    idx_t = np.tile(np.repeat(np.arange(nt), m), n)
    kpix = k_pixel_mrad(spec) * o.bin_factor
    kc = (np.arange(k) - k // 2) * kpix
    return xr.Dataset(
        {
            "patterns": (("pattern", "k_row", "k_col"), flat, {"units": "1"}),
            "true_disp_pm": (
                ("pattern", "component"),
                disp[idx_s].astype(np.float32),
                {"units": "pm"},
            ),  # fmt: skip
            "thickness_nm": ("pattern", (cells[idx_t] * a_nm).astype(np.float32), {"units": "nm"}),
            "tilt_mrad": (("pattern", "axis"), tilt[idx_s].astype(np.float32), {"units": "mrad"}),
            "structure": ("pattern", idx_s, {"units": "1"}),
        },
        coords={
            "k_row": ("k_row", kc, {"units": "mrad"}),
            "k_col": ("k_col", kc, {"units": "mrad"}),
            "component": ("component", ["dx", "dy", "dz"], {"units": "1"}),
            "axis": ("axis", ["x", "y"], {"units": "1"}),
        },
        attrs={**_optics_attrs(o, spec, kpix), "position_grid": int(opts.position_grid)},
    )


def _optics_attrs(o: OpticsOptions, spec: CellSpec, kpix: float) -> dict:
    return {
        "beam_energy_eV": float(o.energy_eV),
        "convergence_mrad": float(o.convergence_mrad),
        "k_pixel_mrad": float(kpix),
        "thermal_model": o.thermal_model,
        "material": o.material,
        "lattice_A": float(LATTICE_A[o.material]),
        "max_angle_mrad": float(o.max_angle_mrad),
    }


def polar_texture(opts: SimulateOptions) -> np.ndarray:
    """Ti displacement field of the film: ``(rows, cols, 3)`` [pm].

    ``"slush"``: polar nanodomains, a Gaussian-filtered random vector field (correlation length
    ``domain_size_cells``) normalised to ``p_inplane_pm`` rms per component, so neighbouring
    domains point in different <111>-like directions. ``"switched"``: the same slush plus the
    field-induced displacement ``field_pm`` (rotation toward the field).
    """
    rng = np.random.default_rng(opts.seed)
    rows, cols = (int(v) for v in opts.scan_shape)
    raw = rng.normal(size=(rows, cols, 3))
    sm = np.stack(
        [
            ndimage.gaussian_filter(raw[..., c], opts.domain_size_cells, mode="wrap")
            for c in range(3)
        ],
        axis=-1,
    )
    # rms (not std) normalisation: on a scan smaller than a domain the field is nearly uniform
    sm = sm / (np.sqrt(np.mean(sm**2, axis=(0, 1), keepdims=True)) + 1e-12) * opts.p_inplane_pm
    if opts.state == "switched":
        sm = sm + np.asarray(opts.field_pm, float)
    return sm


def specimen_texture(opts: SimulateOptions) -> tuple[np.ndarray, np.ndarray, int, dict]:
    """Ti displacement at the probe positions of a shared specimen (:mod:`scopeflow.io.specimen`).

    The scan (``scan_shape`` at ``scan_step_nm``) is centred on the specimen's field of view;
    ``P -> u`` by ``P = e Z* u / a^3`` with ``born_charge_ti`` (:func:`polarization_uc_cm2`);
    components in the beam frame (dx along rows, dy along cols, dz along the beam).

    Returns
    -------
    disp : (rows, cols, 3) float64 [pm]
    coord : (2, n) list of the row and column coordinates [nm]
    thickness_cells : int
        The specimen's lamella thickness in (even) unit cells.
    info : dict
        Specimen name and thicknesses for the store attrs.
    """
    spec = shared.load_specimen(opts.specimen)
    lattice = LATTICE_A[opts.optics.material]
    step = opts.scan_step_nm or 0.1 * lattice
    coord = [(np.arange(n) - (n - 1) / 2) * step for n in opts.scan_shape]
    for c, fov, name in zip(coord, spec["field_of_view_nm"], ("rows", "cols"), strict=True):
        if c[-1] - c[0] > fov:
            raise ValueError(
                f"polar4d simulate: the scan spans {c[-1] - c[0]:g} nm along {name}, more than "
                f"the field of view of specimen {spec['name']!r} ({fov:g} nm)"
            )
    p = shared.beam_frame(shared.polarization_map(spec, coord[0], coord[1]))
    disp = np.moveaxis(p, 0, -1) / polarization_uc_cm2(1.0, lattice, opts.born_charge_ti)
    cells = max(2, 2 * round(spec["lamella_thickness_nm"] / (0.2 * lattice)))
    info = {
        "specimen": spec["name"],
        "specimen_material": spec["material"],
        "lamella_thickness_nm": spec["lamella_thickness_nm"],
        "film_thickness_nm": spec["film_thickness_nm"],
        "frame": "dx along scan_row = P_z, dy along scan_col = P_x, dz along beam = P_y",
    }
    return disp, coord, cells, info


def simulate_scan(inputs: list, opts: SimulateOptions) -> xr.Dataset:
    """Stage ``simulate``: a ``polar4d.scan`` store (same kind as ``ingest`` writes).

    Returns
    -------
    xarray.Dataset
        ``data (scan_row, scan_col, k_row, k_col)`` float32 [counts] (Poisson at ``dose``),
        ``true_disp_pm (scan_row, scan_col, component)`` [pm]; calibrations as attrs and
        ``ground_truth`` (thickness, dose, thermal model).
    """
    o = opts.optics
    spec = cell_spec(o)
    a_nm = 0.1 * LATTICE_A[o.material]
    g = opts.probes_per_cell
    if opts.specimen:
        if g > 1:
            raise ValueError("polar4d simulate: probes_per_cell > 1 needs the texture mode")
        disp, coord, th, extra = specimen_texture(opts)
    else:
        # n x n probes per cell: every probe of a cell sees that cell's displacement
        disp = np.repeat(np.repeat(polar_texture(opts), g, axis=0), g, axis=1)
        extra = {"probes_per_cell": g}
        coord = [np.arange(n) * a_nm / g for n in disp.shape[:2]]
        th = opts.thickness_cells + (opts.thickness_cells % 2)
    rows, cols = disp.shape[:2]
    rng = np.random.default_rng([opts.seed, 1])
    pos = 0.5 + rng.normal(0.0, opts.position_jitter, (rows, cols, 2))
    sub = np.stack(np.meshgrid(np.arange(rows) % g, np.arange(cols) % g, indexing="ij"), -1)
    pos = pos + sub / g  # the probe's place in its cell (0 for one probe per cell)
    seeds = rng.integers(2**31, size=(rows, cols))

    def make(r: int) -> dict:
        row = [
            cbed_series(
                spec,
                disp[r, c],
                [th],
                pos[r, c][None],
                thermal=o.thermal_model,
                n_configs=o.n_configs,
                seed=int(seeds[r, c]),
            )[0, 0]  # fmt: skip
            for c in range(cols)
        ]
        return {"row": bin_patterns(np.stack(row), o.bin_factor).astype(np.float32)}

    key = {"opts": repr(opts), "v": 1}
    clean = np.stack([c["row"] for c in _chunked(rows, make, opts.cache_dir, key)])
    counts = rng.poisson(clean * opts.dose).astype(np.float32)
    kpix = k_pixel_mrad(spec) * o.bin_factor
    k = counts.shape[-1]
    kc = (np.arange(k) - k // 2) * kpix
    attrs = _optics_attrs(o, spec, kpix)
    attrs["scan_step_nm"] = float(coord[1][1] - coord[1][0]) if cols > 1 else a_nm
    attrs["ground_truth"] = {
        "thickness_nm": th * a_nm,
        "dose_e_per_probe": float(opts.dose),
        "thermal_model": o.thermal_model,
        "state": "specimen" if opts.specimen else opts.state,
        **extra,
    }
    return xr.Dataset(
        {
            "data": (("scan_row", "scan_col", "k_row", "k_col"), counts, {"units": "counts"}),
            "true_disp_pm": (
                ("scan_row", "scan_col", "component"),
                disp.astype(np.float32),
                {"units": "pm"},
            ),  # fmt: skip
        },
        coords={
            "scan_row": ("scan_row", coord[0], {"units": "nm"}),
            "scan_col": ("scan_col", coord[1], {"units": "nm"}),
            "k_row": ("k_row", kc, {"units": "mrad"}),
            "k_col": ("k_col", kc, {"units": "mrad"}),
            "component": ("component", ["dx", "dy", "dz"], {"units": "1"}),
        },
        attrs=attrs,
    )
