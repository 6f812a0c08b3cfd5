"""A cell is reported only when one crystal explains the summed frames over the whole tilt range."""

import numpy as np
import pytest

from scopeflow.tomo4d.analyze import analyze
from scopeflow.tomo4d.consistency import check_consistency
from scopeflow.tomo4d.index import index
from scopeflow.tomo4d.options import (
    AnalyzeOptions,
    IndexOptions,
    ReduceOptions,
    SimulateOptions,
    TrackOptions,
)
from scopeflow.tomo4d.reduce import reduce
from scopeflow.tomo4d.simulate import simulate
from scopeflow.tomo4d.track import track

SMALL = SimulateOptions(
    seed=2,
    tilt_step_deg=2.0,
    scan_shape=(24, 24),
    scan_step_nm=6.5,
    detector_px=96,
    k_pixel_inv_a=0.014,
)
ORACLE = IndexOptions(variants=("oracle",))


def _with_target(series, target: int):
    s = series.copy()
    s.attrs = {**series.attrs, "ground_truth": {**series.attrs["ground_truth"], "target": target}}
    return s


@pytest.fixture(scope="module")
def oracle_frames():
    series = simulate([], SMALL)
    tracks = track([series], TrackOptions())
    out = []
    for target in (0, 1):
        s = _with_target(series, target)
        out.append((s, reduce([s, tracks], ReduceOptions())))
    return series, tracks, out


def test_one_crystal_is_reported(oracle_frames):
    _, tracks, ((series, frames), _) = oracle_frames
    idx = index([frames], ORACLE)
    cell = idx.attrs["cells"]["oracle"]
    assert cell["consistent"] == 1
    assert "cell" in cell
    m = analyze([series, tracks, idx], AnalyzeOptions()).attrs["metrics"]
    assert m["baseline.oracle.consistent"] == 1
    assert m["baseline.oracle.correct_fraction"] == 1.0


def test_two_crystals_spliced_halfway_are_flagged(oracle_frames, caplog):
    _, tracks, ((s0, f0), (_, f1)) = oracle_frames
    n = f0.sizes["frame"]
    spliced = f0.copy(deep=True)
    for var in ("frames_oracle", "beam_offset_oracle"):
        data = spliced[var].values
        data[n // 2 :] = f1[var].values[n // 2 :]  # the track jumps to particle 1 half-way
        spliced[var] = (spliced[var].dims, data, spliced[var].attrs)
    with caplog.at_level("WARNING", logger="scopeflow.tomo4d.index"):
        idx = index([spliced], ORACLE)
    cell = idx.attrs["cells"]["oracle"]
    # no cell is reported: the whole-range cell (either particle's) leaves the other particle's
    # half at the chance rate of indexing, far below the 15 % floor in some tilt window
    assert cell["consistent"] == 0
    assert "cell" not in cell and "tilt window" in cell["error"]
    assert idx.sizes["reflection"] == 0
    assert "no cell reported" in caplog.text
    m = analyze([s0, tracks, idx], AnalyzeOptions()).attrs["metrics"]
    assert m["baseline.oracle.consistent"] == 0
    assert m["baseline.oracle.correct_fraction"] == 0.0


def test_window_check_on_counts():
    frame = np.repeat(np.arange(8), 10)
    intensity = np.ones(80)
    indexed = np.ones(80, bool)
    assert check_consistency(frame, intensity, indexed, 8, 4, 0.15)["consistent"]
    indexed[60:] = False  # the last quarter is not the crystal's
    res = check_consistency(frame, intensity, indexed, 8, 4, 0.15)
    assert not res["consistent"] and res["min_window_fraction"] == 0.0
    # too few spots in the bad window: not judged
    res = check_consistency(frame[:62], intensity[:62], indexed[:62], 8, 4, 0.15)
    assert res["consistent"]
