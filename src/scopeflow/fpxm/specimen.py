"""Ferroelectric specimen: domain structures, electrostrictive strain and elastic displacement.

Geometry: the image plane is the crystal (x, z) plane, rows along z = [001] (the default
reflection G = (002) points along rows), columns along x = [100]; the field is projected through a
thin slab along y. Polarization components are stored in crystal order (x, y, z); P_y = 0.

Elasticity: homogeneous cubic stiffness (c11, c12, c44), generalized plane strain in (x, z)
(uniform ε_yy equal to the mean eigenstrain), periodic cell, macroscopically stress-free (mean
strain = mean eigenstrain). The displacement solves ∂_j C_ijkl(∂_l u_k - ε⁰_kl) = 0 in Fourier
space (A. G. Khachaturyan, *Theory of Structural Transformations in Solids*, Wiley 1983; phase-
field practice as in Li, Cross, Chen 2005, doi:10.1063/1.2042528).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from scopeflow.fpxm.lgd import eigenstrain
from scopeflow.io import specimen as shared

__all__ = ["domain_structure", "elastic_fields", "interior_mask", "reference_box"]


def _periodic_band(t: np.ndarray, lo: float, hi: float, width: float) -> np.ndarray:
    """Smooth indicator of lo < t < hi for t periodic in [0, 1) (tanh walls of width ``width``)."""
    out = np.zeros_like(t)
    for k in (-1.0, 0.0, 1.0):
        out += 0.5 * (np.tanh((t - lo + k) / width) - np.tanh((t - hi + k) / width))
    return np.clip(out, 0.0, 1.0)


def domain_structure(
    structure: str,
    n: int,
    pixel_size_nm: float,
    ps: float,
    *,
    wall_width_nm: float = 10.0,
    wall180_width_nm: float = 2.0,
    stripe_period_nm: float = 960.0,
    a_fraction: float = 0.3,
    needle: bool = True,
    nanoregion: bool = True,
    nanoregion_radius_nm: float = 60.0,
    nanoregion_tilt_deg: float = 25.0,
) -> tuple[np.ndarray, dict]:
    """Polarization map of a tetragonal film cross-section.

    Parameters
    ----------
    structure : {"ac_stripes", "twin90", "vortex"} or str
        ``ac_stripes``: c matrix (P ∥ +z) with a-domain stripes (P ∥ +x) on {101} planes (45°
        walls, head-to-tail, strain-compatible); ``twin90``: one a and one c band of equal width
        (a 90° twin pair in the periodic cell); ``vortex``: P circulating in the (x, z) plane
        around the cell centre with a core of radius ``4 wall_width_nm``. Any other name is a
        shared specimen (:func:`scopeflow.io.specimen.load_specimen`): its P (``ps`` and the
        width/period options unused) on this grid, whose size must equal its field of view.
    n : int
        Grid size (n, n).
    pixel_size_nm : float
        Pixel size [nm].
    ps : float
        Spontaneous polarization [C/m²].
    wall_width_nm : float
        tanh half-width of the 90° walls [nm] (real walls are ~1-5 nm; wider walls keep the
        field inside the synthetic aperture).
    wall180_width_nm : float
        tanh half-width of the 180° (Ising) walls of the needle [nm]; P_z passes through zero
        there, so wide walls would add an unphysically large strain deficit.
    stripe_period_nm : float
        Period of the stripes measured along x (rounded so that the cell is periodic) [nm].
    a_fraction : float
        Fraction of a domains in ``ac_stripes``.
    needle : bool
        Add a needle-like c- (P ∥ -z) 180° domain inside a c band (invisible in strain except its
        walls; its sign shows under a ±E pair).
    nanoregion : bool
        Add a polar nanoregion: a disc in a c band where P rotates towards +x by up to
        ``nanoregion_tilt_deg`` (Gaussian profile of rms radius ``nanoregion_radius_nm/2``).

    Returns
    -------
    p : (3, n, n) float64 [C/m²]
        Polarization (x, y, z components).
    info : dict
        ``features`` (n, n) bool (pixels not in a uniform domain), ``c_centre`` (row, col) of a
        point inside a c band far from the features (built-in structures only).
    """
    length = n * pixel_size_nm
    coord = (np.arange(n) - n / 2) * pixel_size_nm
    if structure not in ("ac_stripes", "twin90", "vortex"):
        return _shared_structure(structure, coord, needle or nanoregion)
    z, x = np.meshgrid(coord, coord, indexing="ij")
    if structure in ("ac_stripes", "twin90"):
        repeats = 1 if structure == "twin90" else max(1, round(length / stripe_period_nm))
        frac = 0.5 if structure == "twin90" else a_fraction
        lam = length / repeats  # period along x (and along z) of the (x + z) stripes
        t = np.mod((x + z) / lam, 1.0)
        width_t = wall_width_nm * np.sqrt(2) / lam  # perpendicular width -> units of t
        a_ind = _periodic_band(t, 0.0, frac, width_t)
        phi = 0.5 * np.pi * a_ind  # rotation from +z (c) to +x (a) across the 90° walls
        # the centre line of a c band is x + z = lam (1 + frac) / 2 (mod lam); take x = 0
        z_c = np.mod(lam * (1 + frac) / 2 + length / 2, lam) - length / 2
        centre = np.array([z_c, 0.0])  # (z, x) [nm]
    elif structure == "vortex":
        r = np.hypot(x, z)
        core = 4 * wall_width_nm
        phi = np.arctan2(-x, z)  # P = Ps (-sin, cos)(angle): circulating
        amp = np.tanh(r / core)
        p = ps * np.stack([np.sin(phi) * amp, np.zeros_like(x), np.cos(phi) * amp])
        centre = np.array([length / 4, 0.0])  # below the core, where P is along +z
        a_ind = None
    else:
        raise ValueError(f"unknown domain structure {structure!r}")
    if a_ind is not None:
        p = ps * np.stack([np.sin(phi), np.zeros_like(x), np.cos(phi)])
    features = np.zeros((n, n), bool)
    if a_ind is not None:
        features |= a_ind > 1e-3
    else:
        features |= np.abs(p[0]) > 1e-3 * ps
    along = np.array([-1.0, 1.0]) / np.sqrt(2)  # (z, x) direction along the c band
    pnr_centre = centre - 1.5 * nanoregion_radius_nm * along
    if needle:
        nz, nx = centre + 2.0 * nanoregion_radius_nm * along
        half_x, half_z = 2.5 * wall_width_nm, 1.5 * nanoregion_radius_nm
        d = np.sqrt(((x - nx) / half_x) ** 2 + ((z - nz) / half_z) ** 2) - 1.0
        sign = np.tanh(d * half_x / wall180_width_nm)  # d * half_x ~ distance to wall [nm]
        p[2] *= sign
        features |= np.abs(sign) < 1 - 1e-3
    if nanoregion:
        pz0, px0 = pnr_centre
        r2 = (x - px0) ** 2 + (z - pz0) ** 2
        sigma = nanoregion_radius_nm / 2
        beta = np.deg2rad(nanoregion_tilt_deg) * np.exp(-r2 / (2 * sigma**2))
        px_new = p[2] * np.sin(beta) + p[0] * np.cos(beta)
        pz_new = p[2] * np.cos(beta) - p[0] * np.sin(beta)
        p[0], p[2] = px_new, pz_new
        features |= beta > 1e-3
    row = int(round(centre[0] / pixel_size_nm + n / 2)) % n
    col = int(round(centre[1] / pixel_size_nm + n / 2)) % n
    return p, {"features": features, "c_centre": (row, col)}


def _shared_structure(name: str, coord: np.ndarray, extras: bool) -> tuple[np.ndarray, dict]:
    """P [C/m²] and wall features of a shared specimen on the centred grid ``coord`` [nm]."""
    spec = shared.load_specimen(name)
    length = len(coord) * (coord[1] - coord[0])
    if not np.allclose(spec["field_of_view_nm"], length, rtol=1e-6):
        raise ValueError(
            f"specimen {name!r}: field of view {spec['field_of_view_nm'].tolist()} nm, but the "
            f"fpxm object grid covers {length:g} nm (set n_object * pixel_size_nm to match)"
        )
    if extras:
        raise ValueError(
            f"specimen {name!r}: needle/nanoregion belong to the built-in structures; set both "
            "false with a shared specimen"
        )
    p = shared.polarization_map(spec, coord, coord) / 100.0  # µC/cm² -> C/m²
    features = shared.domain_walls(spec, coord, coord)
    return p, {"features": features}


def interior_mask(p: np.ndarray, features: np.ndarray, margin_px: float) -> np.ndarray:
    """Domain interiors of the c variant: |P_z| > |P_x| and ``margin_px`` away from any feature.

    Parameters
    ----------
    p : (3, n, n) float [C/m²]
    features : (n, n) bool
        Pixels not in a uniform domain (walls, cores, nanoregions).
    margin_px : float
        Minimum distance to a feature [px] (periodic cell).

    Returns
    -------
    (n, n) bool
    """
    n = p.shape[-1]
    bad = features | (np.abs(p[2]) <= np.abs(p[0]))
    padded = np.pad(~bad, n // 2, mode="wrap")
    dist = ndimage.distance_transform_edt(padded)[n // 2 : n // 2 + n, n // 2 : n // 2 + n]
    return dist >= margin_px


def reference_box(interior: np.ndarray, half_size: int) -> tuple[int, int, int, int]:
    """Square reference region (row0, row1, col0, col1) centred deepest inside ``interior``.

    The box lies inside the grid (no wrap) and is at most ``2 half_size + 1`` wide.
    """
    dist = ndimage.distance_transform_edt(np.pad(interior, 1))[1:-1, 1:-1]
    r, c = np.unravel_index(int(np.argmax(dist)), dist.shape)
    if dist[r, c] < 3:
        raise ValueError("no domain interior wide enough for a reference region")
    h = int(min(half_size, dist[r, c] - 1))
    return int(r - h), int(r + h + 1), int(c - h), int(c + h + 1)


def elastic_fields(p: np.ndarray, pixel_size_nm: float, c: dict) -> dict:
    """Elastic equilibrium of the electrostrictive eigenstrain of ``p`` (periodic cell).

    Parameters
    ----------
    p : (3, n, n) float64 [C/m²]
        Polarization (x, y, z).
    pixel_size_nm : float
        Pixel size [nm].
    c : dict
        LGD coefficients (Q, c_ij) from :func:`scopeflow.fpxm.lgd.load_lgd`.

    Returns
    -------
    dict
        ``u`` (2, n, n) displacement (x, z) [nm] including the mean strain about the cell centre;
        ``strain`` (2, 2, n, n) total strain in the (x, z) basis; ``eigenstrain`` (3, 3, n, n).
    """
    n = p.shape[-1]
    e0 = np.moveaxis(eigenstrain(np.moveaxis(p, 0, -1), c), (-2, -1), (0, 1))
    c11, c12, c44 = c["c11"], c["c12"], c["c44"]
    dyy = e0[1, 1] - e0[1, 1].mean()
    tau_xx = c11 * e0[0, 0] + c12 * e0[2, 2] + c12 * dyy
    tau_zz = c12 * e0[0, 0] + c11 * e0[2, 2] + c12 * dyy
    tau_xz = 2 * c44 * e0[0, 2]
    k = 2 * np.pi * np.fft.fftfreq(n, pixel_size_nm)
    kz, kx = np.meshgrid(k, k, indexing="ij")
    t_xx, t_zz, t_xz = (np.fft.fft2(a) for a in (tau_xx, tau_zz, tau_xz))
    b_x = t_xx * kx + t_xz * kz
    b_z = t_xz * kx + t_zz * kz
    o_xx = c11 * kx**2 + c44 * kz**2
    o_zz = c11 * kz**2 + c44 * kx**2
    o_xz = (c12 + c44) * kx * kz
    det = o_xx * o_zz - o_xz**2
    det[0, 0] = 1.0
    u_x_hat = -1j * (o_zz * b_x - o_xz * b_z) / det
    u_z_hat = -1j * (-o_xz * b_x + o_xx * b_z) / det
    u_x_hat[0, 0] = 0.0
    u_z_hat[0, 0] = 0.0
    coord = (np.arange(n) - n / 2) * pixel_size_nm
    z, x = np.meshgrid(coord, coord, indexing="ij")
    mxx, mzz, mxz = e0[0, 0].mean(), e0[2, 2].mean(), e0[0, 2].mean()
    u_x = np.fft.ifft2(u_x_hat).real + mxx * x + mxz * z
    u_z = np.fft.ifft2(u_z_hat).real + mxz * x + mzz * z
    e_xx = np.fft.ifft2(1j * kx * u_x_hat).real + mxx
    e_zz = np.fft.ifft2(1j * kz * u_z_hat).real + mzz
    e_xz = 0.5 * np.fft.ifft2(1j * (kz * u_x_hat + kx * u_z_hat)).real + mxz
    strain = np.array([[e_xx, e_xz], [e_xz, e_zz]])
    return {"u": np.stack([u_x, u_z]), "strain": strain, "eigenstrain": e0}
