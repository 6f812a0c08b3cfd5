"""Symmetry-pooled canonical crops and GMM classes on a synthetic lattice."""

import numpy as np
import xarray as xr

from scopeflow.defects.classify import build_objects, canonical_crops
from scopeflow.defects.lattice import CONTRAST, MO, S2, V_S, V_S2, W, d_ws, lattice_vectors
from scopeflow.defects.simulate import render_frame

PS = 0.2
A_PX = 3.18 / PS


def _frame(angle, complexes):
    """Noise-free frame; ``complexes`` maps a metal cell (i, j) to {S neighbour k: class}."""
    vec = lattice_vectors(A_PX, angle)
    ii, jj = np.meshgrid(np.arange(-20, 21), np.arange(-20, 21), indexing="ij")
    ij = np.stack([ii.ravel(), jj.ravel()], 1)
    centre = np.array([150.0, 150.0])
    metal = centre + ij @ vec
    sulf = centre + (ij + 1 / 3) @ vec
    m_cls = np.full(len(ij), W)
    s_cls = np.full(len(ij), S2)
    lookup = {tuple(x): k for k, x in enumerate(ij)}
    nb = [(0, 0), (-1, 0), (0, -1)]  # the three S cells of metal (i, j)
    for (i, j), vac in complexes.items():
        m_cls[lookup[(i, j)]] = MO
        for k, c in vac.items():
            s_cls[lookup[(i + nb[k][0], j + nb[k][1])]] = c
    pos = np.concatenate([metal, sulf])
    cls = np.concatenate([m_cls, s_cls])
    amp = np.array([CONTRAST.get(int(c), 0.0) for c in cls])
    img = render_frame(pos, amp, (300, 300), 0.45 / PS, np.zeros(300))
    return img, vec, centre


def test_canonical_crops_pool_symmetry_equivalents():
    angle = np.deg2rad(11.0)
    cells = [(-4, 0), (0, 4), (4, -4)]
    img, vec, centre = _frame(angle, {cells[k]: {k: V_S} for k in range(3)})
    centres = np.array([centre + np.array(c) @ vec for c in cells])
    crops = canonical_crops(img, centres, np.ones(3, bool), angle, A_PX)
    # the three complexes differ only by 120-degree rotations: canonical crops agree up to
    # bilinear interpolation, which misses a sigma = 2.25 px peak by up to h^2 / (8 sigma^2)
    # ~ 2.5 % at half-pixel offsets (W peak = 1)
    assert np.abs(crops - crops[0]).max() < 0.03
    # centre (Mo, 0.38) and first shell (S, 0.15): the same 2.5 % of their heights, < 0.01
    assert np.abs(crops[:, :4] - crops[0, :4]).max() < 0.01
    # a Mo without vacancy and a Mo with a double vacancy give different canonical crops
    img2, _, _ = _frame(angle, {cells[0]: {}, cells[1]: {1: V_S2}, cells[2]: {0: V_S, 2: V_S}})
    other = canonical_crops(img2, centres, np.ones(3, bool), angle, A_PX)
    diffs = [np.abs(other[k] - crops[0]).max() for k in range(3)]
    # each differs at a first-shell site by a single S column (0.074 of the W peak)
    assert min(diffs) > 0.07


def test_build_objects_absorbs_vacancies_next_to_mo():
    table = {
        "frame": np.array([0, 0, 0, 0]),
        "row": np.array([10.0, 10.0, 50.0, 10.0]),
        "col": np.array([10.0, 19.0, 50.0, 40.0]),
        "class": np.array([MO, V_S, V_S, V_S], np.int8),
    }
    obj = build_objects(table, absorb_px=1.35 * d_ws(A_PX))
    # the V_S 9 px (= d_WS) from the Mo joins it; the two far ones stay objects
    assert len(obj["row"]) == 3
    assert obj["n_members"][obj["class"] == MO][0] == 1


def test_classify_and_track_accept_a_movie_without_defects(caplog):
    from scopeflow.defects.detect import TABLE_FIELDS
    from scopeflow.defects.options import ClassifyOptions, KineticsOptions, TrackOptions
    from scopeflow.defects.stages import STAGES

    img, vec, centre = _frame(0.2, {})  # a perfect lattice: no defect anywhere
    nf = 2
    movie = xr.Dataset(
        {"image": (("frame", "row", "col"), np.stack([img] * nf).astype(np.float32))},
        attrs={"pixel_size": PS, "frame_time": 1.0},
    )
    det = xr.Dataset(
        {f"nn_{k}": ("nn_point", np.zeros(0)) for k in TABLE_FIELDS},
        attrs={"pixel_size": PS, "frame_time": 1.0, "methods": ["nn"]},
    )
    det["lattice_vectors"] = (("frame", "basis", "axis"), np.stack([vec] * nf))
    det["lattice_origin"] = (("frame", "axis"), np.stack([centre] * nf))
    with caplog.at_level("WARNING", logger="scopeflow.defects.classify"):
        cls = STAGES["classify"].func([det, movie], ClassifyOptions())
    assert cls.sizes["point"] == 0 and cls.attrs["n_clusters"] == 0
    assert "no defect detections" in caplog.text
    tracks = STAGES["track"].func([cls], TrackOptions())
    assert tracks.sizes["point"] == 0 and tracks.attrs["tracks"] == {}
    STAGES["kinetics"].func([tracks], KineticsOptions())


def test_smooth_patches_match_the_smoothed_frame():
    # the patch read-out must be the same numbers as smoothing the whole frame (ndimage's
    # reflect border included), only cheaper: float32 rounding is the only allowed difference
    from scipy import ndimage

    from scopeflow.defects.classify import smooth_patches

    rng = np.random.default_rng(3)
    frame = rng.poisson(5.0, (120, 90)).astype(np.float32)
    sigma = 1.6
    centres = np.array([[60.3, 44.8], [2.2, 3.9], [118.6, 88.1], [0.0, 89.0]])
    patches, corners = smooth_patches(frame, centres, sigma, 9.2)
    full = ndimage.gaussian_filter(frame, sigma, truncate=3.0)
    pad = np.pad(full, 30, mode="symmetric")  # patches at the border reach outside the frame
    for k in range(len(centres)):
        r0, c0 = corners[k] + 30
        ref = pad[r0 : r0 + patches.shape[1], c0 : c0 + patches.shape[2]]
        inside = np.s_[max(0, -corners[k, 0]) :, max(0, -corners[k, 1]) :]
        np.testing.assert_allclose(patches[k][inside][:, :], ref[inside][:, :], atol=1e-4)
    # canonical crops read from the patches equal those read from the smoothed frame
    angle = np.deg2rad(11.0)
    a = canonical_crops(full, centres[:1], np.ones(1, bool), angle, A_PX, n_sites=4)
    b = canonical_crops(
        patches[:1], centres[:1], np.ones(1, bool), angle, A_PX, n_sites=4, corners=corners[:1]
    )
    np.testing.assert_allclose(a, b, atol=1e-4)
