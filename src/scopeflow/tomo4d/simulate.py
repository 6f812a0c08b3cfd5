"""Simulated tilt series of kinematic 4D-STEM scans of agglomerated nanocrystals (``simulate``).

Particles (brookite rods elongated along c, or CsPbBr3 cubes) touch and overlap on a carbon film,
with random in-plane azimuths and random rotations about their long axis. The goniometer tilts
them about an in-plane axis; the field drifts (random walk + linear) and the particles sit above
the tilt axis (eucentric error), so they wander across the scan. Each probe's pattern is the
kinematic sum over the particles it crosses: reflection ``g`` gets the fraction

``I_g = (lambda |F_g| / V)^2 * T / w * exp(-pi s_g^2 / w^2)``,  ``w^2 = 1/T^2 + (alpha |g|)^2``

of the electrons (Gaussian approximation of the thickness ``sinc^2`` broadened by the probe
convergence ``alpha``; T = projected thickness, s = excitation error), spread over a disk of the
convergence radius; plus the direct beam and a diffuse background from the film and particles.
Counts are drawn as Poisson numbers per reflection and per direct-beam pixel, so a tilt is built
from sparse (pattern, pixel, count) entries and a dense 4D cube never exists.

Store (kind ``tomo4d.series``): ``pixel (count)`` uint16 flat detector index and ``counts (count)``
uint16, sorted by pattern; ``pattern_offset (tilt, scan_row, scan_col)`` int64 start into
``count`` (``pattern_nnz`` the length); truth ``true_thickness_nm (particle, tilt, scan_row,
scan_col)``, ``true_beam_row_px``/``true_beam_col_px (tilt)`` and ``attrs["ground_truth"]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from scopeflow.optics.kinematic import (
    cell_matrix,
    excitation_error,
    hkl_within,
    read_cif,
    reciprocal_basis,
    structure_factors,
)
from scopeflow.optics.wavelength import electron_wavelength
from scopeflow.tomo4d.geometry import axis_rotation, tilt_rotations
from scopeflow.tomo4d.options import SimulateOptions

__all__ = ["simulate", "load_material", "particle_thickness", "series_dataset"]

_RESOURCES = Path(__file__).resolve().parents[3] / "resources" / "tomo4d"
_CIF = {"brookite": "brookite_TiO2.cif", "CsPbBr3": "CsPbBr3_cubic.cif"}
_CARBON_DIFFUSE_PER_NM = 1.0 / 150.0  # scattered fraction per nm of amorphous carbon (mfp ~150 nm)
_PARTICLE_DIFFUSE_PER_NM = 1.0 / 120.0  # diffuse (thermal + inelastic) fraction per nm of crystal
_DIFFUSE_K0 = 0.08  # [1/Å] half-width of the Lorentzian radial profile of the diffuse background


def load_material(name: str) -> dict:
    """Structure of a stored material (``brookite`` or ``CsPbBr3``) from resources/tomo4d."""
    return read_cif(_RESOURCES / _CIF[name])


def _random_rotation_about(axis: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return axis_rotation(axis, rng.uniform(0, 2 * np.pi))


def _orientation(opts: SimulateOptions, long_axis: np.ndarray, rng: np.random.Generator):
    """Orientation U (crystal Cartesian -> specimen), semi-axes [nm] and shape of one particle."""
    psi = rng.uniform(0, np.pi)
    e1 = np.array([np.cos(psi), np.sin(psi), rng.normal(0, 0.1)])
    e1 /= np.linalg.norm(e1)
    # rotation taking the crystal long axis onto e1, then a random spin about e1
    v = np.cross(long_axis, e1)
    ang = np.arctan2(np.linalg.norm(v), long_axis @ e1)
    align = axis_rotation(v if np.linalg.norm(v) > 1e-9 else np.array([1.0, 0, 0]), ang)
    if opts.material == "brookite":
        u = _random_rotation_about(e1, rng) @ align
        half = np.array([opts.particle_width_nm, opts.particle_width_nm, opts.particle_length_nm])
        return u, half / 2.0, "ellipsoid"
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q)), np.full(3, opts.particle_length_nm) / 2.0, "box"


def _touching_centre(parts: list, new: dict, rng: np.random.Generator, max_overlap: float):
    """Centre (2,) [nm] bringing ``new`` in from afar until it touches the agglomerate.

    On a 2 nm grid at tilt 0 the particle comes in along a random direction towards the centroid
    of the earlier particles and stops before more than a random share (up to ``max_overlap``)
    of its footprint lies on their footprints: touching or partly overlapping, a compact
    agglomerate as on a real grid (ballistic aggregation).
    """
    step = 2.0
    size = max(float(np.max(p["half_nm"])) for p in [*parts, new])
    reach = 2.0 * size * (len(parts) + 1)
    anchor = np.mean([p["centre"][:2] for p in parts], axis=0)
    ax = np.arange(-reach - size, reach + size + step, step)
    xy = np.column_stack([g.ravel() + a for g, a in zip(np.meshgrid(ax, ax), anchor, strict=True)])
    occupied = np.zeros(len(xy), bool)
    for p in parts:
        occupied |= particle_thickness(xy, p["centre"], p["U"].T, p["half_nm"], p["shape"]) > 0
    allowed = rng.uniform(0.0, max_overlap)
    ang = rng.uniform(0, 2 * np.pi)
    direction = np.array([np.cos(ang), np.sin(ang)])
    centre = anchor + reach * direction
    for dist in np.arange(reach, -step, -step):
        trial = anchor + dist * direction
        near = np.abs(xy - trial).max(axis=1) <= size * np.sqrt(3)  # holds the whole particle
        foot = particle_thickness(
            xy[near], np.array([*trial, new["centre"][2]]), new["U"].T, new["half_nm"], new["shape"]
        )
        foot = foot > 0
        if (foot & occupied[near]).sum() > allowed * max(foot.sum(), 1):
            break
        centre = trial
    return centre


def _make_particles(opts: SimulateOptions, structure: dict, rng: np.random.Generator) -> list:
    """Centres [nm] (specimen frame), orientation U (crystal Cartesian -> specimen) and shape."""
    basis = cell_matrix(structure["cell"])
    long_axis_cryst = basis[2] / np.linalg.norm(basis[2])  # brookite rods grow along c
    parts: list[dict] = []
    for _ in range(opts.n_particles):
        u, half, shape = _orientation(opts, long_axis_cryst, rng)
        z = opts.eucentric_error_nm + rng.normal(0, 2.0)
        new = {"centre": np.array([0.0, 0.0, z]), "U": u, "half_nm": half, "shape": shape}
        if parts and opts.packing == "touching":
            new["centre"][:2] = _touching_centre(parts, new, rng, opts.max_overlap)
        elif parts:  # dense: a random neighbour's centre at spacing_nm, shapes ignored
            for _ in range(200):
                anchor = parts[rng.integers(len(parts))]["centre"][:2]
                ang = rng.uniform(0, 2 * np.pi)
                dist = opts.spacing_nm * rng.uniform(0.9, 1.1)
                centre = anchor + dist * np.array([np.cos(ang), np.sin(ang)])
                others = np.array([q["centre"][:2] for q in parts])
                if np.min(np.linalg.norm(others - centre, axis=1)) >= 0.85 * opts.spacing_nm:
                    break
            new["centre"][:2] = centre
        parts.append(new)
    # centre the agglomerate in the field
    mean = np.mean([p["centre"][:2] for p in parts], axis=0)
    for p in parts:
        p["centre"][:2] -= mean
    return parts


def particle_thickness(
    xy: np.ndarray, centre: np.ndarray, axes: np.ndarray, half: np.ndarray, shape: str
) -> np.ndarray:
    """Projected thickness along z of an ellipsoid or box at lab points ``xy`` (n, 2) [nm].

    Parameters
    ----------
    xy : (n, 2) float [nm]
    centre : (3,) float [nm] lab centre
    axes : (3, 3) float, rows = the body axes in the lab frame
    half : (3,) float [nm] semi-axes / half edges
    shape : {"ellipsoid", "box"}

    Returns
    -------
    t : (n,) float [nm]
    """
    d = np.column_stack([xy - centre[:2], np.full(len(xy), -centre[2])])  # point at z = 0
    q0 = d @ axes.T  # body coordinates at z = 0, (n, 3)
    qz = axes[:, 2]  # d q / d z, (3,)
    if shape == "ellipsoid":
        a = np.sum((qz / half) ** 2)
        b = 2.0 * np.sum(q0 * qz / half**2, axis=1)
        c = np.sum((q0 / half) ** 2, axis=1) - 1.0
        disc = b**2 - 4 * a * c
        return np.where(disc > 0, np.sqrt(np.clip(disc, 0, None)) / a, 0.0)
    lo = np.full(len(xy), -np.inf)
    hi = np.full(len(xy), np.inf)
    for i in range(3):
        if abs(qz[i]) < 1e-12:
            inside = np.abs(q0[:, i]) <= half[i]
            lo = np.where(inside, lo, np.inf)
            continue
        z1 = (-half[i] - q0[:, i]) / qz[i]
        z2 = (half[i] - q0[:, i]) / qz[i]
        lo = np.maximum(lo, np.minimum(z1, z2))
        hi = np.minimum(hi, np.maximum(z1, z2))
    return np.clip(hi - lo, 0.0, None)


def _disk_template(centre: np.ndarray, radius: float, n_det: int, over: int = 6):
    """Pixel weights (sum 1) of a uniform disk at sub-pixel ``centre`` (row, col)."""
    r = int(np.ceil(radius)) + 2
    r0, c0 = np.floor(centre).astype(int)
    rows = np.arange(r0 - r, r0 + r + 1)
    cols = np.arange(c0 - r, c0 + r + 1)
    sub = (np.arange(over) + 0.5) / over - 0.5
    rr = rows[:, None, None, None] + sub[None, :, None, None]
    cc = cols[None, None, :, None] + sub[None, None, None, :]
    inside = ((rr - centre[0]) ** 2 + (cc - centre[1]) ** 2) <= radius**2
    w = inside.sum(axis=(1, 3)).astype(float)
    w /= w.sum()
    rg, cg = np.meshgrid(rows, cols, indexing="ij")
    ok = (w > 0) & (rg >= 0) & (rg < n_det) & (cg >= 0) & (cg < n_det)
    return (rg[ok] * n_det + cg[ok]).astype(np.int64), w[ok]


def _diffuse_positions(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 2) offsets [1/Å] of diffusely scattered electrons (2D Lorentzian radial profile)."""
    u = rng.uniform(0, 0.999, n)
    k = _DIFFUSE_K0 * np.sqrt(u / (1 - u))
    a = rng.uniform(0, 2 * np.pi, n)
    return np.column_stack([k * np.sin(a), k * np.cos(a)])


def _tilt_entries(ctx: dict, it: int, rng: np.random.Generator):
    """Sparse (pattern, pixel) -> counts entries of one tilt, sorted by pattern then pixel."""
    opts, n_det, dk = ctx["opts"], ctx["n_det"], ctx["opts"].k_pixel_inv_a
    n_probe = len(ctx["xy"])
    rot = ctx["rot"][it]
    centre = ctx["beam_centre"][it]
    radius_px = ctx["alpha"] / ctx["lam"] / dk
    keys, vals = [], []
    scat_total = np.zeros(n_probe)
    thick_total = np.zeros(n_probe)
    for ip, p in enumerate(ctx["particles"]):
        t_nm = ctx["thickness"][ip, it]
        thick_total += t_nm
        hit = np.nonzero(t_nm > 0)[0]
        if len(hit) == 0:
            continue
        g_lab = ctx["g_cryst"] @ (rot @ p["U"]).T  # (n_g, 3)
        s = excitation_error(g_lab, ctx["lam"])
        gmag = np.linalg.norm(g_lab, axis=1)
        t_a = t_nm[hit] * 10.0  # [Å]
        w = np.sqrt(1.0 / t_a[:, None] ** 2 + (ctx["alpha"] * gmag[None, :]) ** 2)
        inten = ctx["kin"][None, :] * t_a[:, None] / w * np.exp(-np.pi * (s[None, :] / w) ** 2)
        det = centre[None, :] + g_lab[:, [1, 0]] / dk
        on = np.all((det > radius_px) & (det < n_det - 1 - radius_px), axis=1)
        inten[:, ~on] = 0.0
        scat_total[hit] += inten.sum(axis=1)
        n_e = rng.poisson(opts.dose_e_per_probe * inten)
        pi, gi = np.nonzero(n_e)
        reps = n_e[pi, gi]
        probe = np.repeat(hit[pi], reps)
        pos = np.repeat(det[gi], reps, axis=0)
        rad = radius_px * np.sqrt(rng.uniform(0, 1, len(pos)))
        ang = rng.uniform(0, 2 * np.pi, len(pos))
        pos += np.column_stack([rad * np.sin(ang), rad * np.cos(ang)])
        pix = np.floor(pos + 0.5).astype(np.int64)
        keys.append(probe * n_det**2 + pix[:, 0] * n_det + pix[:, 1])
        vals.append(np.ones(len(probe), np.int64))
    # diffuse background of film + particles
    f_diff = opts.carbon_nm * _CARBON_DIFFUSE_PER_NM + thick_total * _PARTICLE_DIFFUSE_PER_NM
    scale = np.minimum(1.0, 0.9 / np.maximum(scat_total + f_diff, 1e-12))
    n_bg = rng.poisson(opts.dose_e_per_probe * f_diff * scale)
    probe = np.repeat(np.arange(n_probe), n_bg)
    pos = centre + _diffuse_positions(len(probe), rng)[:, [0, 1]] / dk
    pix = np.floor(pos + 0.5).astype(np.int64)
    ok = np.all((pix >= 0) & (pix < n_det), axis=1)
    keys.append(probe[ok] * n_det**2 + pix[ok, 0] * n_det + pix[ok, 1])
    vals.append(np.ones(int(ok.sum()), np.int64))
    # direct beam: Poisson per disk pixel
    idx, wts = _disk_template(centre, radius_px, n_det)
    direct = opts.dose_e_per_probe * np.clip(1.0 - (scat_total + f_diff) * scale, 0, 1)
    n_d = rng.poisson(direct[:, None] * wts[None, :])
    pi, ki = np.nonzero(n_d)
    keys.append(pi * n_det**2 + idx[ki])
    vals.append(n_d[pi, ki].astype(np.int64))
    keys = np.concatenate(keys)
    vals = np.concatenate(vals)
    uk, inv = np.unique(keys, return_inverse=True)
    cnt = np.bincount(inv, weights=vals).astype(np.int64)
    probe_of = uk // n_det**2
    return probe_of, (uk % n_det**2).astype(np.uint16), np.minimum(cnt, 65535).astype(np.uint16)


def series_dataset(
    pixel: np.ndarray,
    counts: np.ndarray,
    nnz: np.ndarray,
    tilt_deg: np.ndarray,
    attrs: dict,
    scan_step_nm: float,
) -> xr.Dataset:
    """Build the canonical sparse series store from CSR arrays.

    Parameters
    ----------
    pixel, counts : (count,) uint16
        Flat detector index and counts, grouped by pattern in (tilt, scan_row, scan_col) order.
    nnz : (tilt, scan_row, scan_col) int
        Entries per pattern.
    tilt_deg : (tilt,) float [deg]
    attrs : dict
        Calibration attrs (beam_energy_eV, k_pixel_inv_A, detector_shape, tilt_axis_deg, ...).
    scan_step_nm : float [nm]
    """
    offset = np.concatenate([[0], np.cumsum(nnz.ravel())[:-1]]).reshape(nnz.shape)
    n_t, n_r, n_c = nnz.shape
    ds = xr.Dataset(
        {
            "pixel": (("count",), pixel.astype(np.uint16)),
            "counts": (("count",), counts.astype(np.uint16)),
            "pattern_offset": (("tilt", "scan_row", "scan_col"), offset.astype(np.int64)),
            "pattern_nnz": (("tilt", "scan_row", "scan_col"), nnz.astype(np.int32)),
        },
        coords={
            "tilt": ("tilt", np.asarray(tilt_deg, float), {"units": "deg"}),
            "scan_row": ("scan_row", np.arange(n_r) * scan_step_nm, {"units": "nm"}),
            "scan_col": ("scan_col", np.arange(n_c) * scan_step_nm, {"units": "nm"}),
        },
        attrs={**attrs, "scan_step_nm": float(scan_step_nm)},
    )
    ds["pixel"].attrs.update(units="1", description="flat detector index k_row * n + k_col")
    ds["counts"].attrs["units"] = "electrons"
    return ds


def simulate(inputs: list, opts: SimulateOptions) -> xr.Dataset:
    """Simulate the sparse tilt series with its ground truth (see module docstring)."""
    if inputs:
        raise ValueError("tomo4d simulate takes no input store")
    rng = np.random.default_rng(opts.seed)
    structure = load_material(opts.material)
    lam = electron_wavelength(opts.beam_energy_ev) * 10.0  # [Å]
    n_det = opts.detector_px
    basis = cell_matrix(structure["cell"])
    recip = reciprocal_basis(basis)
    g_max = (n_det / 2 - 2) * opts.k_pixel_inv_a * np.sqrt(2)
    hkl = hkl_within(recip, g_max)
    f = structure_factors(structure, hkl)
    vol = abs(np.linalg.det(basis))
    kin = (lam * np.abs(f) / vol) ** 2
    strong = kin > 1e-6 * kin.max()
    hkl, kin = hkl[strong], kin[strong]
    t0, t1 = opts.tilt_range_deg[:2]
    tilts = np.arange(t0, t1 + 1e-9, opts.tilt_step_deg)
    n_t = len(tilts)
    rot = tilt_rotations(tilts, opts.tilt_axis_deg)
    parts = _make_particles(opts, structure, rng)
    n_r, n_c = opts.scan_shape[:2]
    yy, xx = np.meshgrid(
        (np.arange(n_r) - (n_r - 1) / 2) * opts.scan_step_nm,
        (np.arange(n_c) - (n_c - 1) / 2) * opts.scan_step_nm,
        indexing="ij",
    )
    xy = np.column_stack([xx.ravel(), yy.ravel()])
    steps = rng.normal(0, opts.drift_walk_nm, (n_t, 2))
    walk = np.cumsum(steps, axis=0) - steps[n_t // 2]
    lin = (np.arange(n_t) - n_t // 2)[:, None] * np.asarray(opts.drift_linear_nm[:2])[None, [1, 0]]
    drift_xy = walk + lin
    thickness = np.zeros((len(parts), n_t, n_r * n_c))
    for it in range(n_t):
        for ip, p in enumerate(parts):
            c_lab = rot[it] @ p["centre"]
            c_lab[:2] += drift_xy[it]
            axes = (rot[it] @ p["U"]).T  # rows: body axes (crystal Cartesian) in the lab
            thickness[ip, it] = particle_thickness(xy, c_lab, axes, p["half_nm"], p["shape"])
    jumps = rng.normal(0, opts.descan_px, (n_t, 2)) + rng.uniform(-0.5, 0.5, (n_t, 2))
    beam_centre = n_det / 2 + jumps
    ctx = {
        "opts": opts,
        "n_det": n_det,
        "xy": xy,
        "rot": rot,
        "particles": parts,
        "thickness": thickness,
        "g_cryst": hkl @ recip,
        "kin": kin,
        "lam": lam,
        "alpha": opts.convergence_mrad * 1e-3,
        "beam_centre": beam_centre,
    }
    pix_all, cnt_all, nnz = [], [], np.zeros((n_t, n_r * n_c), np.int64)
    for it in range(n_t):
        probe, pix, cnt = _tilt_entries(ctx, it, rng)
        nnz[it] = np.bincount(probe, minlength=n_r * n_c)
        pix_all.append(pix)
        cnt_all.append(cnt)
    if opts.target >= len(parts):
        raise ValueError(f"simulate: target {opts.target} >= n_particles {len(parts)}")
    foot = thickness[opts.target, 0].reshape(n_r, n_c) > 0
    rows, cols = np.nonzero(foot)
    box = []  # target outside the scanned field: no box (track then needs init_box)
    if len(rows):
        box = [int(rows.min()) - 1, int(cols.min()) - 1, int(rows.max()) + 2, int(cols.max()) + 2]
    attrs = {
        "beam_energy_eV": float(opts.beam_energy_ev),
        "k_pixel_inv_A": float(opts.k_pixel_inv_a),
        "detector_shape": [n_det, n_det],
        "tilt_axis_deg": float(opts.tilt_axis_deg),
        "convergence_mrad": float(opts.convergence_mrad),
        "dose_e_per_probe": float(opts.dose_e_per_probe),
        "target_box": [max(b, 0) for b in box],
        "ground_truth": {
            "material": opts.material,
            "target": int(opts.target),
            "cell": [float(v) for v in structure["cell"]],
            "orientation": [p["U"].tolist() for p in parts],
            "particle_centre_nm": [p["centre"].tolist() for p in parts],
            "drift_nm": drift_xy.tolist(),
        },
    }
    ds = series_dataset(
        np.concatenate(pix_all),
        np.concatenate(cnt_all),
        nnz.reshape(n_t, n_r, n_c),
        tilts,
        attrs,
        opts.scan_step_nm,
    )
    ds["true_thickness_nm"] = (
        ("particle", "tilt", "scan_row", "scan_col"),
        thickness.reshape(len(parts), n_t, n_r, n_c).astype(np.float32),
        {"units": "nm"},
    )
    ds["true_beam_row_px"] = (("tilt",), beam_centre[:, 0], {"units": "px"})
    ds["true_beam_col_px"] = (("tilt",), beam_centre[:, 1], {"units": "px"})
    return ds.assign_coords(particle=("particle", np.arange(len(parts)), {"units": "1"}))
