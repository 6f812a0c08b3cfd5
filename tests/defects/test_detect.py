"""The rim rule of the network detector: an empty site next to a missing column is a hole."""

import numpy as np
import pytest

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


@pytest.mark.parametrize("space_to_depth", [1, 2])
def test_predict_is_softmax_and_argmax_of_the_shuffled_logits(space_to_depth):
    # predict's probabilities and classes are the softmax / arg-max of the network's logits on
    # the binned grid, cropped back from the padding to a multiple of the network's block
    import torch

    from scopeflow.defects.unet import build_model, predict, prepare

    torch.manual_seed(0)
    model = build_model((4, 8), space_to_depth).eval().to(memory_format=torch.channels_last)
    frames = torch.rand(2, 36, 52) * 20
    prob, arg = predict(model, frames)
    with torch.no_grad():
        x, (hy, hx) = prepare(frames, model.multiple)
        logits = model(x)[..., :hy, :hx]
    assert prob.shape == (2, 7, 18, 26) and arg.shape == (2, 18, 26)
    np.testing.assert_allclose(prob.numpy(), torch.softmax(logits, 1).numpy(), atol=1e-6)
    np.testing.assert_array_equal(arg.numpy(), logits.argmax(1).numpy())


def test_model_stores_of_both_architecture_formats_rebuild():
    # stores written before per-level widths carry width and depth (channels doubling per level)
    from scopeflow.defects.unet import architecture_widths

    assert architecture_widths({"width": 8, "depth": 3}) == [8, 16, 32, 64]
    assert architecture_widths({"widths": [16, 24, 32, 64], "depth": 3}) == [16, 24, 32, 64]
