"""The tomo4d stages end to end on a small seeded simulation with known truth."""

import numpy as np
import pytest

from scopeflow.tomo4d.analyze import analyze
from scopeflow.tomo4d.export import export, read_hkl, read_pets2
from scopeflow.tomo4d.index import index
from scopeflow.tomo4d.options import (
    AnalyzeOptions,
    ExportOptions,
    IndexOptions,
    ReduceOptions,
    SimulateOptions,
    TrackOptions,
)
from scopeflow.tomo4d.reduce import reduce
from scopeflow.tomo4d.simulate import simulate
from scopeflow.tomo4d.sparse import check_series
from scopeflow.tomo4d.stages import STAGES
from scopeflow.tomo4d.track import track

SMALL = SimulateOptions(
    seed=1,
    tilt_step_deg=2.0,
    scan_shape=(24, 24),
    scan_step_nm=6.5,
    detector_px=96,
    k_pixel_inv_a=0.014,
)


@pytest.fixture(scope="module")
def chain():
    series = simulate([], SMALL)
    tracks = track([series], TrackOptions())
    frames = reduce([series, tracks], ReduceOptions())
    idx = index([frames], IndexOptions())
    ana = analyze([series, tracks, idx], AnalyzeOptions())
    return series, tracks, frames, idx, ana


def test_series_is_sparse_and_counts_follow_the_dose(chain):
    series = chain[0]
    n_t, n_r, n_c, n_det = check_series(series)
    assert series["pixel"].dims == ("count",)
    # far fewer stored entries than detector pixels: the store never holds a dense cube
    assert series.sizes["count"] < 0.2 * n_t * n_r * n_c * n_det**2
    per_pattern = np.add.reduceat(
        series["counts"].values.astype(float), series["pattern_offset"].values.ravel()
    )
    # Poisson total at 1500 e/probe (sd ~39): the mean over 15 616 patterns is within ~0.3 e of
    # the dose minus the few diffuse electrons scattered off the detector (< 2 %)
    assert 0.98 * SMALL.dose_e_per_probe < per_pattern.mean() <= 1.001 * SMALL.dose_e_per_probe


def test_simulation_is_seeded():
    a = simulate([], SMALL)
    b = simulate([], SMALL)
    assert np.array_equal(a["counts"].values, b["counts"].values)


def test_oracle_mask_gives_the_targets_cell_and_orientation(chain):
    m = chain[4].attrs["metrics"]
    assert m["baseline.oracle.correct_fraction"] == 1.0
    # lengths: ~250 indexed spots with ~0.1 px centroid errors at 0.014 1/A/px, over a +-30 deg
    # wedge (the beam-direction component is the least constrained) -> a few 0.1 %
    assert m["baseline.oracle.length_error_max_pct"] < 0.5
    assert m["baseline.oracle.angle_error_max_deg"] < 0.5
    # the tilt axis is refined near its true 20 deg (residual minimum within the +-5 deg search)
    assert abs(m["baseline.oracle.tilt_axis_deg"] - SMALL.tilt_axis_deg) < 1.0


def test_a_cell_is_credited_to_one_particle_only(chain):
    series, tracks, _, idx, _ = chain
    credited = []
    for p in range(SMALL.n_particles):
        s = series.copy()
        s.attrs = {**series.attrs, "ground_truth": {**series.attrs["ground_truth"], "target": p}}
        m = analyze([s, tracks, idx], AnalyzeOptions()).attrs["metrics"]
        credited.append(m["baseline.whole_field.correct_fraction"])
    # the five particles share the cell but have random orientations (axes tens of degrees
    # apart): the whole-field lattice is credited to at most the one particle it belongs to,
    # never to a neighbour as well
    assert sum(credited) <= 1.0


def test_masks_scored_against_the_footprint(chain):
    m = chain[4].attrs["metrics"]
    assert 0.0 <= m["track.purity_mean"] <= 1.0
    assert 0.0 <= m["track.capture_mean"] <= 1.0
    tracks = chain[1]
    assert tracks["mask"].dtype == bool
    assert tracks["mask"].any(axis=(1, 2)).all()  # a mask on every tilt


def test_analyze_without_truth_skips_truth_metrics(chain):
    series, tracks, _, idx, _ = chain
    bare = series.drop_vars(["true_thickness_nm", "true_beam_row_px", "true_beam_col_px"])
    bare.attrs = {k: v for k, v in series.attrs.items() if k != "ground_truth"}
    m = analyze([bare, tracks, idx], AnalyzeOptions()).attrs["metrics"]
    assert not any(k.endswith("correct_fraction") or "purity" in k for k in m)


def test_export_reads_back(chain, tmp_path):
    frames = chain[2]
    idx = index([frames], IndexOptions(variants=("oracle",)))  # tables of the oracle frames
    assert idx.sizes["reflection"] > 50
    paths = export([frames, idx], ExportOptions(variant="oracle"), tmp_path)
    assert all(p.exists() for p in paths)
    proj = read_pets2(tmp_path / "tomo4d.pts2")
    assert np.allclose(proj["tilt_deg"], frames["tilt"].values, atol=1e-4)
    assert np.allclose(proj["frames"], frames["frames_oracle"].values)
    assert float(proj["Aperpixel"]) == pytest.approx(SMALL.k_pixel_inv_a)
    hkl, inten, sig = read_hkl(tmp_path / "tomo4d.hkl")
    assert np.array_equal(hkl, idx["hkl"].values)
    scale = 9999.0 / idx["intensity"].values.max()
    # F8.2: two decimals after scaling
    assert np.allclose(inten, idx["intensity"].values * scale, atol=0.006)
    assert np.allclose(sig, idx["sigma"].values * scale, atol=0.006)


def test_bad_series_raises_a_clear_error(chain):
    series = chain[0].drop_vars("pattern_nnz")
    with pytest.raises(ValueError, match="pattern_nnz"):
        track([series], TrackOptions())


def test_track_needs_a_box_inside_the_scan(chain):
    series = chain[0].copy()
    series.attrs = {k: v for k, v in chain[0].attrs.items() if k != "target_box"}
    with pytest.raises(ValueError, match="init_box"):  # real data: no stored box
        track([series], TrackOptions())
    with pytest.raises(ValueError, match="inside the"):
        track([series], TrackOptions(init_box=(4, 4, 2, 30)))


def test_tracking_purer_than_the_fixed_box(chain):
    m = chain[4].attrs["metrics"]
    # the fixed box holds the target's bounding box plus neighbours and drifts off the target;
    # the tracked, diffraction-split mask follows the target's own crystal
    assert m["track.purity_mean"] > m["baseline.fixed_box.purity_mean"]


def test_stage_table():
    assert set(STAGES) == {
        "simulate",
        "ingest",
        "track",
        "reduce",
        "index",
        "export",
        "analyze",
        "figures",
    }
    assert STAGES["index"].inputs == ("tomo4d.frames",)
    assert STAGES["export"].output == "figures"
