"""WS2 monolayer geometry, class codes, HAADF contrast and the FFT lattice fit.

Projected along c, a 2H MX2 monolayer is a honeycomb: metal (W/Mo) columns on one triangular
sublattice, S2 columns (two S atoms on top of each other) on the other, W-S projected distance
a/sqrt(3). Lattice vectors ``a1 = a (1, 0)``, ``a2 = a (1/2, sqrt(3)/2)`` rotated by the lattice
angle; an S column sits at ``(a1 + a2) / 3`` from its metal column. Positions are (row, col)
pairs in the unit of the caller (Å or px); rotation angles are measured from the +col axis
towards +row.

Class codes (per-pixel network classes and the ``class`` column of every detections table):

====  =========  ===========================================
code  name       meaning
====  =========  ===========================================
0     background no column
1     W          intact W column
2     Mo         Mo substituting W
3     S2         intact S2 column
4     V_S        single S vacancy (one S left in the column)
5     V_S2       double S vacancy (empty S column)
6     V_W        W vacancy (empty metal column)
====  =========  ===========================================
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = [
    "TABLE_FIELDS",
    "A_WS2",
    "CLASS_NAMES",
    "DEFECT_CLASSES",
    "COMPLEX_NAMES",
    "OBJECT_NAMES",
    "CONTRAST",
    "d_ws",
    "hop_sq",
    "lattice_vectors",
    "fit_lattice_fft",
    "align_basis",
    "unwrap_origins",
    "nearest_site",
]

#: WS2 in-plane lattice constant [Å].
A_WS2 = 3.18
CLASS_NAMES = ("background", "W", "Mo", "S2", "V_S", "V_S2", "V_W")
BG, W, MO, S2, V_S, V_S2, V_W = range(7)
#: Classes reported as defects (the detections tables hold only these).
DEFECT_CLASSES = (MO, V_S, V_S2, V_W)
#: Configurations of a Mo + S-vacancy complex (Mo with its three nearest S columns).
COMPLEX_NAMES = ("Mo-V_S", "Mo-V_S2", "Mo-2V_S")
#: Physical classes of classified objects (Mo-centred objects first).
OBJECT_NAMES = ("Mo", "Mo-V_S", "Mo-V_S2", "Mo-2V_S", "V_S", "V_S2", "V_W")
#: Columns of a detections table (prefixed ``nn_`` / ``baseline_`` in the store).
TABLE_FIELDS = ("frame", "row", "col", "class", "score", "site_i", "site_j", "sublattice")


def _z17(z: float) -> float:
    return z**1.7


#: Column peak intensity relative to a W column: HAADF ~ Z^1.7 per atom (e.g. Krivanek et al.,
#: Nature 464, 571 (2010), doi:10.1038/nature08879), S2 = two S atoms.
CONTRAST = {
    W: 1.0,
    MO: _z17(42) / _z17(74),
    S2: 2 * _z17(16) / _z17(74),
    V_S: _z17(16) / _z17(74),
    V_S2: 0.0,
    V_W: 0.0,
}


def d_ws(a: float = A_WS2) -> float:
    """Projected metal-S distance ``a / sqrt(3)`` (same unit as ``a``)."""
    return a / np.sqrt(3.0)


def hop_sq(di: np.ndarray, dj: np.ndarray, a: float = A_WS2) -> np.ndarray:
    """Squared length of lattice displacements ``di a1 + dj a2`` (60-degree basis) [a^2 unit]."""
    return a**2 * (di**2 + dj**2 + di * dj)


def lattice_vectors(a: float, angle: float) -> np.ndarray:
    """Real-space lattice vectors.

    Parameters
    ----------
    a : float
        Lattice constant (any length unit L).
    angle : float
        Rotation of ``a1`` from the +col axis towards +row [rad].

    Returns
    -------
    (2, 2) float64
        Rows ``a1``, ``a2`` as (row, col) vectors [L].
    """
    c, s = np.cos(angle), np.sin(angle)
    a1 = a * np.array([s, c])
    a2 = a * np.array([np.sin(angle + np.pi / 3), np.cos(angle + np.pi / 3)])
    return np.stack([a1, a2])


def fit_lattice_fft(frame: np.ndarray, a_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Fit the metal sublattice of one frame from its first-order Fourier peaks.

    The six first-order peaks of the hexagonal lattice sit near ``|q| = 2 / (sqrt(3) a)``;
    the strongest defines the orientation, sub-pixel peak positions (parabolic interpolation)
    give the reciprocal vectors, and the phases of the two Fourier coefficients give the origin
    of the brighter (metal) sublattice. The S2 sublattice shifts that phase by a constant
    (~0.02 a at 0.15 relative contrast), far below the site spacing.

    Parameters
    ----------
    frame : (row, col) float
        Image [counts].
    a_px : float
        Expected lattice constant [px] (the search ring is ±25 % around it).

    Returns
    -------
    vectors : (2, 2) float64
        ``a1``, ``a2`` (row, col) [px].
    origin : (2,) float64
        (row, col) of one metal site [px], defined modulo the lattice.
    """
    img = np.asarray(frame, dtype=np.float64)
    ny, nx = img.shape
    win, ring = _window_and_ring(ny, nx, float(a_px))
    f = np.fft.fft2((img - img.mean()) * win)
    p = np.abs(f)
    k = int(np.argmax(p[ring]))
    iy, ix = ring[0][k], ring[1][k]
    b1 = _refine_peak(p, iy, ix)
    rot = np.array(
        [[np.cos(np.pi / 3), np.sin(np.pi / 3)], [-np.sin(np.pi / 3), np.cos(np.pi / 3)]]
    )
    # b2 guess: b1 rotated by -60 deg in (row, col) convention, refined on the grid
    guess = rot @ b1
    jy = int(round(guess[0] * ny)) % ny
    jx = int(round(guess[1] * nx)) % nx
    jy, jx = _local_max(p, jy, jx, 2)
    b2 = _refine_peak(p, jy, jx)
    bmat = np.stack([b1, b2])  # rows b1, b2 in cycles/px, (row, col)
    amat = np.linalg.inv(bmat).T  # rows a1, a2 with a_i . b_j = delta_ij
    windowed = img * win
    phases = np.array([np.angle(_dft_at(windowed, b)) for b in (b1, b2)])
    # F(b) ~ sum exp(-2 pi i b.r): a site at r0 gives phase -2 pi b.r0
    frac = -phases / (2 * np.pi)
    origin = frac @ amat
    if amat[0] @ amat[1] < 0:  # make the basis 60 deg apart
        amat = np.stack([amat[0], amat[0] + amat[1]])
    # the S sublattice is the brighter of the two non-metal positions (a1 + a2) / 3 and
    # 2 (a1 + a2) / 3 (|FFT| cannot tell them apart); put it at (a1 + a2) / 3
    if _mean_at(img, amat, origin, 2 / 3) > _mean_at(img, amat, origin, 1 / 3):
        amat = -amat
    return amat, origin


@functools.lru_cache(maxsize=8)
def _window_and_ring(ny: int, nx: int, a_px: float) -> tuple[np.ndarray, tuple]:
    """Hann window ``(ny, nx)`` and the indices of the first-order search ring (|q| within
    +-25 % of ``2 / (sqrt(3) a)``, ``q_col >= 0``), cached per frame shape (every frame of a
    movie shares them)."""
    win = np.outer(np.hanning(ny), np.hanning(nx))
    qy = np.fft.fftfreq(ny)[:, None]
    qx = np.fft.fftfreq(nx)[None, :]
    q = np.hypot(qy, qx)
    q0 = 2.0 / (np.sqrt(3.0) * a_px)
    ring = np.nonzero((q > 0.75 * q0) & (q < 1.25 * q0) & (qx >= 0))
    win.setflags(write=False)
    for r in ring:
        r.setflags(write=False)
    return win, ring


def _mean_at(img: np.ndarray, amat: np.ndarray, origin: np.ndarray, shift: float) -> float:
    """Mean image value at the lattice positions ``origin + (i + shift) a1 + (j + shift) a2``."""
    ny, nx = img.shape
    n = int(np.ceil(max(ny, nx) / np.linalg.norm(amat[0]) * 1.5))
    ii, jj = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
    p = origin + (ii.ravel()[:, None] + shift) * amat[0] + (jj.ravel()[:, None] + shift) * amat[1]
    r, c = np.round(p).astype(int).T
    ok = (r >= 0) & (r < ny) & (c >= 0) & (c < nx)
    return float(img[r[ok], c[ok]].mean())


def _local_max(p: np.ndarray, iy: int, ix: int, r: int) -> tuple[int, int]:
    ny, nx = p.shape
    best = (p[iy, ix], iy, ix)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            y, x = (iy + dy) % ny, (ix + dx) % nx
            if p[y, x] > best[0]:
                best = (p[y, x], y, x)
    return best[1], best[2]


def _refine_peak(p: np.ndarray, iy: int, ix: int) -> np.ndarray:
    """Sub-pixel (parabolic) peak position in cycles/px, signed frequencies."""
    ny, nx = p.shape

    def offset(m1: float, c0: float, p1: float) -> float:
        den = m1 - 2 * c0 + p1
        return 0.0 if den == 0 else 0.5 * (m1 - p1) / den

    def lp(y: int, x: int) -> float:
        return float(np.log(p[y % ny, x % nx] + 1e-12))

    dy = offset(lp(iy - 1, ix), lp(iy, ix), lp(iy + 1, ix))
    dx = offset(lp(iy, ix - 1), lp(iy, ix), lp(iy, ix + 1))
    fy = np.fft.fftfreq(ny)[iy] + dy / ny
    fx = np.fft.fftfreq(nx)[ix] + dx / nx
    return np.array([fy, fx])


def _dft_at(img: np.ndarray, b: np.ndarray) -> complex:
    """Fourier coefficient of ``img`` at the (non-integer) frequency ``b`` (cycles/px)."""
    ny, nx = img.shape
    ey = np.exp(-2j * np.pi * b[0] * np.arange(ny))
    ex = np.exp(-2j * np.pi * b[1] * np.arange(nx))
    row = ey.real @ img + 1j * (ey.imag @ img)  # two real products: no complex copy of img
    return complex(row @ ex)


def align_basis(vectors: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Choose, among the three 120-degree rotations of a basis, the one closest to a reference.

    The Fourier fit may pick any of the equivalent bases; rotating ``(a1, a2)`` by 120 degrees
    gives ``(a2 - a1, -a1)`` and keeps the S sublattice at ``(a1 + a2) / 3``. Consistent bases
    make site indices comparable between frames.

    Parameters
    ----------
    vectors, reference : (2, 2) float
        Bases (rows ``a1``, ``a2``) [px].

    Returns
    -------
    (2, 2) float64
    """
    cands = [np.asarray(vectors, np.float64)]
    for _ in range(2):
        a1, a2 = cands[-1]
        cands.append(np.stack([a2 - a1, -a1]))
    return min(cands, key=lambda v: float(np.linalg.norm(v[0] - reference[0])))


def unwrap_origins(origins: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Make per-frame lattice origins continuous (drift below half a lattice vector per frame).

    Parameters
    ----------
    origins : (frame, 2) float
        Origins defined modulo the lattice [px].
    vectors : (frame, 2, 2) float
        Per-frame lattice vectors [px].

    Returns
    -------
    (frame, 2) float64
        Origins shifted by lattice vectors so each is the one closest to its predecessor.
    """
    out = np.array(origins, dtype=np.float64)
    for t in range(1, len(out)):
        amat = vectors[t]
        frac = np.linalg.solve(amat.T, out[t - 1] - out[t])
        out[t] = out[t] + np.round(frac) @ amat
    return out


def nearest_site(
    pos: np.ndarray, vectors: np.ndarray, origin: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Nearest lattice site (metal or S) of each position.

    Parameters
    ----------
    pos : (n, 2) float
        (row, col) positions [px].
    vectors : (2, 2) float
        ``a1``, ``a2`` [px].
    origin : (2,) float
        A metal site [px].

    Returns
    -------
    i, j : (n,) int64
        Cell indices.
    sub : (n,) int8
        0 for a metal site, 1 for an S site (at ``(a1 + a2) / 3`` from the metal).
    dist : (n,) float64
        Distance to that site [px].
    """
    pos = np.asarray(pos, dtype=np.float64).reshape(-1, 2)
    frac = np.linalg.solve(vectors.T, (pos - origin).T).T
    best = None
    for sub, shift in ((0, 0.0), (1, 1.0 / 3.0)):
        ij = np.round(frac - shift)
        site = (ij + shift) @ vectors + origin
        d = np.hypot(*(pos - site).T)
        cand = (ij[:, 0].astype(np.int64), ij[:, 1].astype(np.int64), d)
        if best is None:
            best = (cand[0], cand[1], np.zeros(len(pos), np.int8), d)
        else:
            take = d < best[3]
            best = (
                np.where(take, cand[0], best[0]),
                np.where(take, cand[1], best[1]),
                np.where(take, np.int8(sub), best[2]).astype(np.int8),
                np.where(take, d, best[3]),
            )
    return best
