"""Defect kinetics of a simulated Mo-doped WS2 monolayer, frame by frame, in sample coordinates.

What happens (all seeded, all recorded as ground truth):

- free single S vacancies (``V_S``) hop to a random free nearest S site (distance ``a``) a
  Poisson number of times per frame with rate ``k = 4 D / a^2``, so that the mean squared
  displacement per frame is ``4 D`` (a blocked target is replaced by another free neighbour,
  so every hop moves by ``a``); a walker with no free neighbour stays, and next to obstacles
  the hops of one frame correlate, so the realised D (ground truth ``D_realised_A2_per_s``)
  is 1.6 % below the set value on the acceptance settings (bench/defects ``kinetics_floor``);
- Mo + S-vacancy complexes switch between the configurations of
  :data:`~scopeflow.defects.lattice.COMPLEX_NAMES` with a known per-frame transition matrix (the
  vacancies re-draw their positions among the Mo's three S neighbours at each switch);
- static Mo substitutions, double S vacancies and W vacancies;
- from ``disorder_start`` on, beam damage: growing holes (columns removed), lines of double S
  vacancies, and small rotated, W-dimerised (1T'-like) patches where the host lattice is
  replaced. A 1T' patch keeps doubly occupied S columns: a projection simplification.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scopeflow.defects.lattice import A_WS2, MO, S2, V_S, V_S2, V_W, W, lattice_vectors

__all__ = [
    "SampleState",
    "new_sample",
    "step",
    "add_disorder",
    "grow_holes",
    "columns",
    "labelled_complexes",
]

ABSENT = -1
#: the six S-sublattice nearest-neighbour offsets (di, dj)
_S_NEIGH = np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (1, -1), (-1, 1)])
#: the three S sites nearest to metal site (i, j): (i, j), (i-1, j), (i, j-1)
_M_TO_S = np.array([(0, 0), (-1, 0), (0, -1)])


@dataclass
class SampleState:
    """Mutable state of the simulated sample (sites on an (ni, nj) grid, positions in Å)."""

    metal_pos: np.ndarray  # (ni, nj, 2) Å
    s_pos: np.ndarray  # (ni, nj, 2) Å
    inside: np.ndarray  # (ni, nj) bool: within the simulated area
    metal: np.ndarray  # (ni, nj) int8 class (W, MO, V_W, ABSENT)
    sulfur: np.ndarray  # (ni, nj) int8 class (S2, V_S, V_S2, ABSENT)
    metal_track: np.ndarray  # (ni, nj) int64, -1 none
    s_track: np.ndarray  # (ni, nj) int64, -1 none
    walkers: dict  # track id -> (i, j) of a free V_S
    complexes: dict  # track id -> [(i, j) of Mo, config, tuple of vacant S (i, j)]
    extra: list  # list of (pos (n, 2) Å, class (n,) int8, object (n,) int8) static columns
    holes: list  # list of [centre (2,) Å, radius Å]
    disordered: np.ndarray  # (ni, nj) bool: site in a damaged region
    vectors: np.ndarray  # (2, 2) Å
    next_id: int


def new_sample(
    extent: tuple[float, float],
    rng: np.random.Generator,
    *,
    a: float,
    angle: float,
    n_walkers: int,
    n_complexes: int,
    n_mo: int,
    n_vs2: int,
    n_vw: int,
    transition: np.ndarray,
) -> SampleState:
    """Create a sample covering ``extent`` = (rows, cols) Å with randomly placed defects.

    Defects are placed in random order (random sequential adsorption) on cells whose six
    neighbouring cells are free, so that shells of different defects never overlap; when the
    lattice is full, the remaining defects are dropped.
    """
    vec = lattice_vectors(a, angle)
    corners = np.array([[0, 0], [extent[0], 0], [0, extent[1]], [extent[0], extent[1]]])
    frac = np.linalg.solve(vec.T, corners.T).T
    lo = np.floor(frac.min(0)).astype(int) - 1
    hi = np.ceil(frac.max(0)).astype(int) + 2
    ii, jj = np.meshgrid(np.arange(lo[0], hi[0]), np.arange(lo[1], hi[1]), indexing="ij")
    metal_pos = ii[..., None] * vec[0] + jj[..., None] * vec[1]
    s_pos = metal_pos + (vec[0] + vec[1]) / 3.0
    inside = (
        (metal_pos[..., 0] >= 0)
        & (metal_pos[..., 0] <= extent[0])
        & (metal_pos[..., 1] >= 0)
        & (metal_pos[..., 1] <= extent[1])
    )
    shape = ii.shape
    st = SampleState(
        metal_pos=metal_pos,
        s_pos=s_pos,
        inside=inside,
        metal=np.where(inside, W, ABSENT).astype(np.int8),
        sulfur=np.where(inside, S2, ABSENT).astype(np.int8),
        metal_track=np.full(shape, -1, np.int64),
        s_track=np.full(shape, -1, np.int64),
        walkers={},
        complexes={},
        extra=[],
        holes=[],
        disordered=np.zeros(shape, bool),
        vectors=vec,
        next_id=0,
    )
    taken = ~inside.copy()
    # keep 2 cells from the grid border so neighbour look-ups never wrap
    taken[:2], taken[-2:], taken[:, :2], taken[:, -2:] = True, True, True, True
    stationary = _stationary(transition)

    def claim() -> tuple[int, int] | None:
        free = np.argwhere(~taken)
        if len(free) == 0:
            return None
        i, j = free[rng.integers(len(free))]
        taken[i, j] = True
        for di, dj in _S_NEIGH:  # the six neighbouring cells stay free
            taken[i + di, j + dj] = True
        return int(i), int(j)

    kinds = ["complex"] * n_complexes + ["mo"] * n_mo + ["vw"] * n_vw + ["vs2"] * n_vs2
    kinds += ["walker"] * n_walkers
    for kind in rng.permutation(np.array(kinds, dtype=object)):  # no kind is starved
        site = claim()
        if site is None:
            break
        tid = st.next_id
        st.next_id += 1
        if kind == "complex":
            cfg = int(rng.choice(len(stationary), p=stationary))
            st.metal[site], st.metal_track[site] = MO, tid
            st.complexes[tid] = [site, cfg, ()]
            _place_complex(st, tid, rng)
        elif kind in ("mo", "vw"):
            st.metal[site], st.metal_track[site] = (MO if kind == "mo" else V_W), tid
        elif kind == "vs2":
            st.sulfur[site], st.s_track[site] = V_S2, tid
        else:
            st.sulfur[site], st.s_track[site] = V_S, tid
            st.walkers[tid] = site
    return st


def _stationary(p: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eig(p.T)
    pi = np.real(v[:, np.argmin(np.abs(w - 1))])
    return pi / pi.sum()


def _place_complex(st: SampleState, tid: int, rng: np.random.Generator) -> None:
    """Set the vacant S neighbours of complex ``tid`` for its current configuration."""
    (i, j), cfg, old = st.complexes[tid]
    for s in old:
        st.sulfur[s] = S2
        st.s_track[s] = -1
    neigh = [(i + di, j + dj) for di, dj in _M_TO_S]
    order = rng.permutation(3)
    if cfg == 0:
        vac, cls = [neigh[order[0]]], V_S
    elif cfg == 1:
        vac, cls = [neigh[order[0]]], V_S2
    else:
        vac, cls = [neigh[order[0]], neigh[order[1]]], V_S
    for s in vac:
        st.sulfur[s] = cls
        st.s_track[s] = tid
    st.complexes[tid][2] = tuple(vac)


def _s_free(st: SampleState, i: int, j: int) -> bool:
    """An S site a walker may enter: intact, undamaged, not next to a Mo or a W vacancy."""
    ni, nj = st.sulfur.shape
    if not (2 <= i < ni - 2 and 2 <= j < nj - 2):
        return False
    if st.sulfur[i, j] != S2 or st.disordered[i, j] or not st.inside[i, j]:
        return False
    # not in the S shell of a Mo or a W vacancy
    return all(st.metal[i - di, j - dj] not in (MO, V_W) for di, dj in _M_TO_S)


def step(
    st: SampleState, rng: np.random.Generator, hop_rate: float, transition: np.ndarray
) -> None:
    """Advance the sample by one frame: walker hops and complex switches."""
    for tid, (i, j) in list(st.walkers.items()):
        for _ in range(rng.poisson(hop_rate)):
            cands = [(i + di, j + dj) for di, dj in _S_NEIGH if _s_free(st, i + di, j + dj)]
            if not cands:
                break
            ni_, nj_ = cands[rng.integers(len(cands))]
            st.sulfur[i, j], st.s_track[i, j] = S2, -1
            st.sulfur[ni_, nj_], st.s_track[ni_, nj_] = V_S, tid
            i, j = ni_, nj_
        st.walkers[tid] = (i, j)
    for tid, (_site, cfg, _vac) in list(st.complexes.items()):
        new = int(rng.choice(transition.shape[0], p=transition[cfg]))
        if new != cfg:
            st.complexes[tid][1] = new
            _place_complex(st, tid, rng)


def add_disorder(
    st: SampleState,
    rng: np.random.Generator,
    *,
    n_holes: int,
    hole_radius: float,
    n_lines: int,
    line_length: int,
    n_patches: int,
    patch_radius: float,
    a: float,
    angle: float,
) -> None:
    """Create beam damage: holes, double-S-vacancy lines and rotated 1T'-like patches."""
    extent = st.metal_pos[st.inside].max(0)
    for _ in range(n_holes):
        centre = rng.uniform(0.15, 0.85, 2) * extent
        st.holes.append([centre, hole_radius])
    for _ in range(n_patches):
        centre = rng.uniform(0.15, 0.85, 2) * extent
        _add_patch(st, rng, centre, patch_radius, a, angle)
    for _ in range(n_lines):
        ok = np.argwhere(st.inside & (st.sulfur == S2) & ~st.disordered)
        i, j = ok[rng.integers(len(ok))]
        di, dj = _S_NEIGH[rng.integers(6)]
        for k in range(line_length):
            s = (i + k * di, j + k * dj)
            if not (0 <= s[0] < st.sulfur.shape[0] and 0 <= s[1] < st.sulfur.shape[1]):
                break
            if st.sulfur[s] == S2 and st.s_track[s] < 0:
                st.sulfur[s] = V_S2
                st.s_track[s] = st.next_id
                st.disordered[s] = True
                st.next_id += 1
    _apply_holes(st, 0.0)


def _add_patch(st, rng, centre, radius, a, angle) -> None:
    phi = angle + rng.uniform(np.deg2rad(12), np.deg2rad(25)) * rng.choice([-1, 1])
    vec = lattice_vectors(a * 1.02, phi)
    n = int(np.ceil(radius / a)) + 2
    ii, jj = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
    m = centre + ii[..., None] * vec[0] + jj[..., None] * vec[1]
    # 1T'-like dimerisation: alternate metal rows shift by +-0.12 a along a1
    m = m + (np.where(ii % 2 == 0, 0.12, -0.12) * a)[..., None] * vec[0] / np.linalg.norm(vec[0])
    s = centre + (ii[..., None] + 1 / 3) * vec[0] + (jj[..., None] + 1 / 3) * vec[1]
    pos, cls = [], []
    for p_, c_ in ((m, W), (s, S2)):
        p_ = p_.reshape(-1, 2)
        keep = np.hypot(*(p_ - centre).T) < radius
        pos.append(p_[keep])
        cls.append(np.full(keep.sum(), c_, np.int8))
    pos, cls = np.concatenate(pos), np.concatenate(cls)
    obj = np.full(len(cls), -1, np.int8)
    # a few defects inside the patch: V_S (object 4) and Mo (object 0)
    for target, new, code in ((S2, V_S, 4), (W, MO, 0)):
        idx = np.flatnonzero(cls == target)
        pick = rng.choice(idx, size=max(1, len(idx) // 12), replace=False)
        pick = pick[np.hypot(*(pos[pick] - centre).T) < radius - a]
        cls[pick], obj[pick] = new, code
    # host sites under the patch (plus a boundary seam) are replaced
    for p_, arr, trk in ((st.metal_pos, st.metal, st.metal_track), (st.s_pos, st.sulfur, None)):
        under = np.hypot(p_[..., 0] - centre[0], p_[..., 1] - centre[1]) < radius + 0.6 * a
        arr[under & st.inside] = ABSENT
        if trk is not None:
            trk[under] = -1
    st.disordered |= (
        np.hypot(st.s_pos[..., 0] - centre[0], st.s_pos[..., 1] - centre[1]) < radius + 1.5 * a
    )
    _absorb_rim_vacancies(st)
    _drop_defects(st)
    st.extra.append((pos, cls, obj))


def _apply_holes(st: SampleState, growth: float) -> None:
    for h in st.holes:
        h[1] += growth
        c, r = h
        for p_, arr in ((st.metal_pos, st.metal), (st.s_pos, st.sulfur)):
            d = np.hypot(p_[..., 0] - c[0], p_[..., 1] - c[1])
            arr[(d < r) & st.inside] = ABSENT
            st.disordered |= d < r + 1.5 * A_EDGE
        st.extra = [
            (
                p_[np.hypot(*(p_ - c).T) >= r],
                k[np.hypot(*(p_ - c).T) >= r],
                o[np.hypot(*(p_ - c).T) >= r],
            )
            for p_, k, o in st.extra
        ]
    _absorb_rim_vacancies(st)
    _drop_defects(st)


#: width unit of the damaged rim around a hole [Å]
A_EDGE = 3.18


def grow_holes(st: SampleState, growth: float) -> None:
    """Grow every hole by ``growth`` Å (called once per frame after the damage onset)."""
    _apply_holes(st, growth)


def _absorb_rim_vacancies(st: SampleState) -> None:
    """Empty sites touching removed columns become part of the hole (``ABSENT``).

    A W vacancy is a missing metal column inside an intact lattice: one with a missing
    nearest-neighbour S column (or an empty S column with a missing metal neighbour) is a notch
    in the rim of a hole or seam, indistinguishable from it in an image, so neither the truth
    nor the training labels call it a point defect. Repeated until no empty site touches one.
    """
    while True:
        s_gone = np.pad((st.sulfur == ABSENT) & st.inside, 1)  # outside the area is not a hole
        m_gone = np.pad((st.metal == ABSENT) & st.inside, 1)
        # metal (i, j) touches S (i, j), (i-1, j), (i, j-1); S (i, j) touches metal (i, j),
        # (i+1, j), (i, j+1) (see _M_TO_S); the padding adds one to every index
        m_touch = s_gone[1:-1, 1:-1] | s_gone[:-2, 1:-1] | s_gone[1:-1, :-2]
        s_touch = m_gone[1:-1, 1:-1] | m_gone[2:, 1:-1] | m_gone[1:-1, 2:]
        hit_m = (st.metal == V_W) & m_touch
        hit_s = (st.sulfur == V_S2) & s_touch
        if not (hit_m.any() or hit_s.any()):
            return
        st.metal[hit_m] = ABSENT
        st.sulfur[hit_s] = ABSENT


def _drop_defects(st: SampleState) -> None:
    """Remove walkers and complexes whose sites were destroyed."""
    for tid, site in list(st.walkers.items()):
        if st.sulfur[site] != V_S:
            del st.walkers[tid]
            st.s_track[site] = -1
    for tid, (site, _cfg, vac) in list(st.complexes.items()):
        if st.metal[site] != MO or any(st.sulfur[s] == ABSENT for s in vac):
            del st.complexes[tid]
            for s in vac:
                if st.sulfur[s] != ABSENT:
                    st.sulfur[s] = S2
                st.s_track[s] = -1
            if st.metal[site] == MO:
                st.metal[site] = W
            st.metal_track[site] = -1
    st.metal_track[st.metal == ABSENT] = -1
    st.s_track[st.sulfur == ABSENT] = -1


def columns(st: SampleState) -> dict[str, np.ndarray]:
    """All present columns and vacant sites of the current frame.

    Returns
    -------
    dict
        ``pos`` (n, 2) Å, ``cls`` (n,) int8, ``track`` (n,) int64 (-1 for intact atoms),
        ``object`` (n,) int8 (object code of :data:`~scopeflow.defects.lattice.OBJECT_NAMES`
        for object centres, -1 otherwise), ``complex`` (n,) int8 (configuration of a Mo complex,
        -1 otherwise), ``disordered`` (n,) bool.
    """
    out = {k: [] for k in ("pos", "cls", "track", "object", "complex", "disordered")}
    cfg_of = {site: cfg for site, cfg, _ in st.complexes.values()}
    for pos, arr, trk in (
        (st.metal_pos, st.metal, st.metal_track),
        (st.s_pos, st.sulfur, st.s_track),
    ):
        sel = st.inside & (arr != ABSENT)
        idx = np.argwhere(sel)
        cls = arr[sel]
        n = len(idx)
        obj = np.full(n, -1, np.int8)
        cpx = np.full(n, -1, np.int8)
        if arr is st.metal:
            for k, (i, j) in enumerate(idx):
                if cls[k] == MO:
                    c = cfg_of.get((int(i), int(j)), -1)
                    cpx[k] = c
                    obj[k] = 0 if c < 0 else c + 1
                elif cls[k] == V_W:
                    obj[k] = 6
        else:
            in_cpx = {s for _, _, vac in st.complexes.values() for s in vac}
            for k, (i, j) in enumerate(idx):
                if cls[k] in (V_S, V_S2) and (int(i), int(j)) not in in_cpx:
                    obj[k] = 4 if cls[k] == V_S else 5
        out["pos"].append(pos[sel])
        out["cls"].append(cls)
        out["track"].append(trk[sel])
        out["object"].append(obj)
        out["complex"].append(cpx)
        out["disordered"].append(st.disordered[sel])
    for pos, cls, obj in st.extra:
        out["pos"].append(pos)
        out["cls"].append(cls)
        out["track"].append(np.full(len(cls), -1, np.int64))
        out["object"].append(obj)
        out["complex"].append(np.full(len(cls), -1, np.int8))
        out["disordered"].append(np.ones(len(cls), bool))
    return {k: np.concatenate(v) for k, v in out.items()}


def labelled_complexes(
    seed: int,
    transition: np.ndarray,
    confusion: np.ndarray,
    memory: float,
    *,
    n_frames: int = 40,
    n_complexes: int = 30,
    n_mo: int = 15,
    extent: float = 250.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Complex configurations switching by :func:`step`, static Mo, and classifier labels.

    The label of an object whose true state did not change keeps the previous frame's label
    with probability ``memory`` and is otherwise drawn from ``confusion[state]`` (so every
    frame's label follows the confusion; ``memory`` = 0: independent errors).

    Parameters
    ----------
    transition : (3, 3) float
        Per-frame transition matrix between the configurations.
    confusion : (4, O) float
        P(label | true state) for states 0 (static Mo) and 1..3 (configurations).
    memory : float in [0, 1)

    Returns
    -------
    track, frame, label, true : (n,) int64
        One row per object and frame (true state codes 0 static Mo, 1..3 configurations).
    """
    rng = np.random.default_rng(seed)
    st = new_sample(
        (extent, extent),
        rng,
        a=A_WS2,
        angle=0.0,
        n_walkers=0,
        n_complexes=n_complexes,
        n_mo=n_mo,
        n_vs2=0,
        n_vw=0,
        transition=transition,
    )
    ids = list(st.complexes)
    n_static = int(((st.metal == MO) & ~np.isin(st.metal_track, ids)).sum())
    true = np.zeros((len(ids) + n_static, n_frames), np.int64)
    for f in range(n_frames):
        true[: len(ids), f] = [st.complexes[t][1] + 1 for t in ids]
        step(st, rng, 0.0, transition)
    cum = np.cumsum(confusion, 1)
    label = np.zeros_like(true)
    for f in range(n_frames):
        draw = (rng.random(len(true))[:, None] > cum[true[:, f]]).sum(1)
        draw = np.minimum(draw, confusion.shape[1] - 1)  # rounding of the cumulative sum
        keep = (rng.random(len(true)) < memory) & (f > 0) & (true[:, f] == true[:, f - 1])
        label[:, f] = np.where(keep, label[:, f - 1], draw)
    track = np.repeat(np.arange(len(true)), n_frames)
    frame = np.tile(np.arange(n_frames), len(true))
    return track, frame, label.ravel(), true.ravel()
