"""The rim rule of the network detector: an empty site next to a missing column is a hole."""

import numpy as np

from scopeflow.defects.detect import drop_rim_vacancies
from scopeflow.defects.lattice import MO, V_S2, V_W, lattice_vectors


def test_drop_rim_vacancies_keeps_isolated_and_drops_rim_ones():
    vec = lattice_vectors(16.0, np.deg2rad(9.0))  # 3.18 Å at 0.2 Å/px
    p_bg = np.full((128, 128), 0.02)  # binned grid: every column present
    det = {
        "row": np.array([60.0, 160.0, 100.0, 160.0]),
        "col": np.array([60.0, 60.0, 180.0, 180.0]),
        "class": np.array([V_W, V_W, V_S2, MO], np.int8),
        "score": np.ones(4, np.float32),
    }
    s_off = (vec[0] + vec[1]) / 3.0  # metal -> S neighbour
    # a hole removes one S neighbour of the second W vacancy and one metal neighbour of the
    # double S vacancy: the background probability there is 0.9
    for r, c in ((160.0, 60.0) + s_off, (100.0, 180.0) - s_off):
        rb, cb = int(round((r - 0.5) / 2)), int(round((c - 0.5) / 2))
        p_bg[rb - 1 : rb + 2, cb - 1 : cb + 2] = 0.9
    out = drop_rim_vacancies(det, p_bg, vec, 0.5)
    # the isolated W vacancy and the Mo (not a vacancy: never tested) stay
    np.testing.assert_array_equal(out["class"], [V_W, MO])
    np.testing.assert_array_equal(out["row"], [60.0, 160.0])
    # with every neighbour present nothing is dropped
    assert len(drop_rim_vacancies(det, np.full((128, 128), 0.02), vec, 0.5)["row"]) == 4


def test_w_vacancy_needs_its_metal_shell():
    vec = lattice_vectors(16.0, np.deg2rad(-4.0))
    p_bg = np.full((128, 128), 0.02)
    det = {
        "row": np.array([120.0]),
        "col": np.array([120.0]),
        "class": np.array([V_W], np.int8),
        "score": np.ones(1, np.float32),
    }
    r, c = np.array([120.0, 120.0]) + vec[0] - vec[1]  # one second-neighbour metal missing
    rb, cb = int(round((r - 0.5) / 2)), int(round((c - 0.5) / 2))
    p_bg[rb - 1 : rb + 2, cb - 1 : cb + 2] = 0.9
    assert len(drop_rim_vacancies(det, p_bg, vec, 0.5)["row"]) == 0
