"""Magnetization textures on a pixel grid (numpy).

Every function returns unit-vector fields ``(mx, my, mz)`` and a film mask, each
``(rows, cols)`` float64, with ``x`` along columns and ``y`` along rows, coordinates in nm
centred on the grid. Skyrmion profiles use the 360-degree domain-wall ansatz
``theta(r) = 2 arctan(exp(-(r - R) / w))`` (core ``mz = -1`` in a ``mz = +1`` background), so the
in-plane part has modulus ``sin theta = sech((r - R) / w)``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "TEXTURES",
    "grid_coordinates",
    "bloch_skyrmion",
    "neel_skyrmion",
    "vortex_disc",
    "skyrmion_lattice",
    "stripes",
]


def grid_coordinates(shape: tuple[int, int], pixel_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Centred pixel-centre coordinates.

    Returns
    -------
    y, x : (rows, cols) ndarray [nm]
        Zero at the grid centre ``((rows - 1) / 2, (cols - 1) / 2)``.
    """
    rows, cols = shape
    y = (np.arange(rows) - (rows - 1) / 2) * pixel_size
    x = (np.arange(cols) - (cols - 1) / 2) * pixel_size
    return np.meshgrid(y, x, indexing="ij")


def _skyrmion(y, x, radius, wall_width, chirality, kind):
    r = np.hypot(x, y)
    s = np.exp(-(r - radius) / wall_width)
    theta = 2 * np.arctan(s)
    azim = np.arctan2(y, x)
    inplane = chirality * np.sin(theta)
    if kind == "bloch":
        mx, my = -inplane * np.sin(azim), inplane * np.cos(azim)
    else:
        mx, my = inplane * np.cos(azim), inplane * np.sin(azim)
    return mx, my, np.cos(theta)


def bloch_skyrmion(shape, pixel_size, *, radius_nm, wall_width_nm, chirality=1, **_):
    """Isolated Bloch skyrmion (in-plane magnetization curls around the core).

    Parameters
    ----------
    shape : (int, int)
    pixel_size : float [nm]
    radius_nm, wall_width_nm : float [nm]
        Skyrmion radius R (where ``mz = 0``) and wall width w.
    chirality : {1, -1}
        Sense of the curl (counter-clockwise for +1 in x-y).

    Returns
    -------
    mx, my, mz, mask : (rows, cols) ndarray
    """
    y, x = grid_coordinates(shape, pixel_size)
    mx, my, mz = _skyrmion(y, x, radius_nm, wall_width_nm, chirality, "bloch")
    return mx, my, mz, np.ones(shape)


def neel_skyrmion(shape, pixel_size, *, radius_nm, wall_width_nm, chirality=1, **_):
    """Isolated Néel skyrmion (radial in-plane magnetization; invisible at zero tilt).

    Parameters and returns as :func:`bloch_skyrmion`.
    """
    y, x = grid_coordinates(shape, pixel_size)
    mx, my, mz = _skyrmion(y, x, radius_nm, wall_width_nm, chirality, "neel")
    return mx, my, mz, np.ones(shape)


def vortex_disc(shape, pixel_size, *, disc_radius_nm, core_radius_nm, chirality=1, polarity=1, **_):
    """Patterned magnetic disc in the vortex state, surrounded by vacuum.

    Parameters
    ----------
    disc_radius_nm : float [nm]
        Disc radius (the mask has a one-pixel soft edge).
    core_radius_nm : float [nm]
        Gaussian radius of the out-of-plane vortex core.
    chirality, polarity : {1, -1}
        Curl sense and core direction.

    Returns
    -------
    mx, my, mz, mask : (rows, cols) ndarray (m = 0 outside the disc)
    """
    y, x = grid_coordinates(shape, pixel_size)
    r = np.hypot(x, y)
    azim = np.arctan2(y, x)
    mz = polarity * np.exp(-((r / core_radius_nm) ** 2))
    inplane = chirality * np.sqrt(np.clip(1 - mz**2, 0, 1))
    mask = np.clip(0.5 - (r - disc_radius_nm) / pixel_size, 0.0, 1.0)
    return -inplane * np.sin(azim) * mask, inplane * np.cos(azim) * mask, mz * mask, mask


def skyrmion_lattice(
    shape, pixel_size, *, lattice_constant_nm, radius_nm, wall_width_nm, chirality=1, **_
):
    """Hexagonal lattice of Bloch skyrmions (each pixel takes its nearest skyrmion's profile).

    Parameters
    ----------
    lattice_constant_nm : float [nm]
        Nearest-neighbour distance a (should exceed ``2 R + 6 w`` for isolated cores).
    radius_nm, wall_width_nm, chirality
        As in :func:`bloch_skyrmion`.

    Returns
    -------
    mx, my, mz, mask : (rows, cols) ndarray
    """
    y, x = grid_coordinates(shape, pixel_size)
    half = 0.5 * max(shape) * pixel_size + lattice_constant_nm
    n = int(np.ceil(half / lattice_constant_nm)) + 1
    i, j = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
    sx = (i + 0.5 * j).ravel() * lattice_constant_nm
    sy = (j * np.sqrt(3) / 2).ravel() * lattice_constant_nm
    keep = (np.abs(sx) < half) & (np.abs(sy) < half)
    sx, sy = sx[keep], sy[keep]
    d2 = (x[..., None] - sx) ** 2 + (y[..., None] - sy) ** 2
    k = np.argmin(d2, axis=-1)
    mx, my, mz = _skyrmion(y - sy[k], x - sx[k], radius_nm, wall_width_nm, chirality, "bloch")
    return mx, my, mz, np.ones(shape)


def stripes(shape, pixel_size, *, period_nm, stripe_angle_deg=0.0, **_):
    """Helical (Bloch-wall) stripe domains, commensurate with the periodic grid.

    The wave vector of direction ``stripe_angle_deg`` (from +x toward +y) is rounded to the
    nearest one with a whole number of periods across the grid, so the texture is periodic.

    Parameters
    ----------
    period_nm : float [nm]
        Helix period (two domains).
    stripe_angle_deg : float [deg]

    Returns
    -------
    mx, my, mz, mask : (rows, cols) ndarray
    """
    rows, cols = shape
    a = np.deg2rad(stripe_angle_deg)
    kx = np.round(cols * pixel_size * np.cos(a) / period_nm) / (cols * pixel_size)
    ky = np.round(rows * pixel_size * np.sin(a) / period_nm) / (rows * pixel_size)
    if kx == 0 and ky == 0:
        raise ValueError(f"stripe period {period_nm} nm is longer than the field of view")
    y, x = grid_coordinates(shape, pixel_size)
    arg = 2 * np.pi * (kx * x + ky * y)
    kn = np.hypot(kx, ky)
    # m rotates in the plane spanned by z and e = z x k_hat = (-ky, kx) / |k|
    ex, ey = -ky / kn, kx / kn
    return np.sin(arg) * ex, np.sin(arg) * ey, np.cos(arg), np.ones(shape)


#: Texture name -> generator (the simulate stage's ``texture`` option).
TEXTURES = {
    "bloch_skyrmion": bloch_skyrmion,
    "neel_skyrmion": neel_skyrmion,
    "vortex_disc": vortex_disc,
    "skyrmion_lattice": skyrmion_lattice,
    "stripes": stripes,
}
