"""The PtyLab baseline adapter: geometry (shift sign, pupil reflection) and the ptylab.* metrics.

PtyLab (pip ``ptylab``, imported as ``PtyLab``) is optional: tests that run it are skipped
when it is not installed.
"""

import sys

import numpy as np
import pytest

from scopeflow.fpxm import analyze as analyze_module
from scopeflow.fpxm import ptylab_baseline
from scopeflow.fpxm.analyze import analyze, field_metrics
from scopeflow.fpxm.options import AnalyzeOptions, ReconstructOptions, SimulateOptions
from scopeflow.fpxm.reconstruct import reconstruct
from scopeflow.fpxm.simulate import simulate
from scopeflow.optics.wavelength import xray_wavelength

TRUE_Z = (0.8, -0.6, 0.5, 0.7, -0.4)  # defocus, astigmatism x2, coma x2 [rad RMS]


def _exact_stack(n: int):
    """Noise-free stack that PtyLab's FPM model represents exactly: whole-pixel pupil shifts,
    one coherence mode, no detector blur."""
    px_mrad = xray_wavelength(17000.0) / (n * 7.5) * 1e3  # spectral pixel [mrad]
    opts = SimulateOptions(
        n_object=n,
        photons_per_px=None,
        shift_error_mrad=0.0,
        coherence_modes=1,
        detector_blur_px=0.0,
        zernike_rad=TRUE_Z,
        shift_step_mrad=4 * px_mrad,  # 4 px of a 13.6-px aperture radius: 81 % overlap
    )
    return simulate([], opts)


def _score(stack, field):
    truth = stack["true_field_re"].values[0] + 1j * stack["true_field_im"].values[0]
    amp = np.abs(truth)
    return field_metrics(field, truth, amp > 0.5 * np.percentile(amp, 90))["nrmse"]


@pytest.fixture(scope="module")
def exact_stack():
    return _exact_stack(128)


def test_ptylab_geometry(exact_stack):
    pytest.importorskip("PtyLab")
    res = ptylab_baseline.ptylab_reconstruct(exact_stack, 100)
    assert res["field"].shape == (128, 128)
    assert res["iterations"] == 100
    # noise-free data of a model PtyLab represents exactly: only its convergence limits the
    # error (about 1e-3 after 100 mPIE sweeps); a mis-signed shift or a mis-reflected pupil
    # leaves errors of tens of percent (below)
    assert _score(exact_stack, res["field"]) < 0.02


def test_ptylab_wrong_geometry_fails(exact_stack):
    pytest.importorskip("PtyLab")
    # shifts of the opposite sign: every image is fitted with the wrong spectrum window
    flipped = exact_stack.assign(pupil_shift=-exact_stack["pupil_shift"])
    assert _score(exact_stack, ptylab_baseline.ptylab_reconstruct(flipped, 100)["field"]) > 0.2
    # pupil not point-reflected: equivalent to coma (odd terms) of the wrong sign
    wrong = tuple(-c if j in (7, 8) else c for j, c in zip((4, 5, 6, 7, 8), TRUE_Z, strict=True))
    res = ptylab_baseline.ptylab_reconstruct(
        exact_stack, 100, zernike_noll=(4, 5, 6, 7, 8), zernike_rad=wrong
    )
    assert _score(exact_stack, res["field"]) > 0.05


def test_missing_ptylab_raises_clear_error(monkeypatch, exact_stack):
    monkeypatch.setitem(sys.modules, "PtyLab", None)  # makes `import PtyLab` fail
    assert not ptylab_baseline.ptylab_available()
    with pytest.raises(ImportError, match="pip install ptylab"):
        ptylab_baseline.ptylab_reconstruct(exact_stack, 1)


def test_known_pupil_needs_truth_or_coefficients(exact_stack):
    bare = exact_stack.copy()
    bare.attrs = {k: v for k, v in exact_stack.attrs.items() if k != "ground_truth"}
    with pytest.raises(ValueError, match="no known pupil"):
        ptylab_baseline.known_pupil_modes(bare)


@pytest.fixture(scope="module")
def small_pipeline():
    stack = simulate([], SimulateOptions(n_object=128, photons_per_px=1e4, zernike_rad=TRUE_Z))
    rec = {"pupil": "known", "zernike_init_rad": TRUE_Z, "refine_shifts": False}
    field = reconstruct([stack], ReconstructOptions(iterations=20, **rec))
    return stack, field


def test_analyze_adds_ptylab_metrics(small_pipeline):
    pytest.importorskip("PtyLab")
    stack, field = small_pipeline
    m = analyze([stack, field], AnalyzeOptions()).attrs["metrics"]
    assert m["ptylab.iterations"] == field.attrs["iterations"]  # same budget
    assert np.isfinite(m["ptylab.nrmse"]) and np.isfinite(m["ptylab.phase_rmse_rad"])
    assert m["ptylab.seconds"] > 0


def test_analyze_without_ptylab(small_pipeline, monkeypatch):
    stack, field = small_pipeline
    off = analyze([stack, field], AnalyzeOptions(ptylab=False)).attrs["metrics"]
    monkeypatch.setattr(analyze_module, "ptylab_available", lambda: False)
    absent = analyze([stack, field], AnalyzeOptions()).attrs["metrics"]
    for m in (off, absent):
        assert "recon.nrmse" in m
        assert not any(k.startswith("ptylab.") for k in m)
