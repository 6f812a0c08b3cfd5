"""Stages end to end on a CI-sized movie; detector precision/recall against truth."""

import numpy as np
import pytest
import torch
import xarray as xr

from scopeflow.defects.analyze import detection_counts
from scopeflow.defects.lattice import MO, V_S, V_S2, V_W
from scopeflow.defects.options import (
    AnalyzeOptions,
    ClassifyOptions,
    DetectOptions,
    FiguresOptions,
    KineticsOptions,
    SimulateOptions,
    TrackOptions,
    TrainOptions,
)
from scopeflow.defects.scoring import prf
from scopeflow.defects.stages import STAGES
from scopeflow.options import from_dict, json_schema


def _roundtrip(ds, path):
    ds.to_zarr(path, zarr_format=3, consolidated=False)
    return xr.open_zarr(path, consolidated=False)


@pytest.fixture(scope="module")
def movie(tmp_path_factory):
    opts = SimulateOptions(shape=(192, 192), n_frames=6, disorder_start=4, seed=11)
    return _roundtrip(STAGES["simulate"].func([], opts), tmp_path_factory.mktemp("m") / "m.zarr")


def test_stage_table_and_schemas():
    assert set(STAGES) == {
        "simulate",
        "ingest",
        "train",
        "detect",
        "classify",
        "track",
        "kinetics",
        "analyze",
        "figures",
    }
    for st in STAGES.values():
        schema = json_schema(st.options)
        assert schema["additionalProperties"] is False
        from_dict(st.options, {})
    with pytest.raises(ValueError, match="method"):
        from_dict(DetectOptions, {"method": "magic"})


def test_retraining_reproduces_the_weights(movie):
    torch.set_num_threads(1)
    opts = TrainOptions(steps=3, crop=64, pool_frames=4, batch_size=2, widths=(4, 8, 16))
    a, b = (STAGES["train"].func([movie], opts) for _ in range(2))
    # seeded pools, batches and initial weights, deterministic algorithms, same thread count:
    # the stored weights are byte-identical (not merely close)
    assert np.array_equal(a["weights"].values, b["weights"].values)
    assert a.attrs["torch_threads"] == 1


def test_pipeline_runs_end_to_end(movie, tmp_path):
    torch.set_num_threads(1)
    model = STAGES["train"].func(
        [movie], TrainOptions(steps=2, crop=64, pool_frames=4, batch_size=2, widths=(4, 8, 16))
    )
    model = _roundtrip(model, tmp_path / "model.zarr")
    det = STAGES["detect"].func([movie, model], DetectOptions(chunk_frames=4, batch_frames=2))
    det = _roundtrip(det, tmp_path / "det.zarr")
    assert det["nn_row"].dims == ("nn_point",)
    assert det["lattice_vectors"].shape == (6, 2, 2)
    # the temporal table keeps every per-frame detection but the single S vacancies, which it
    # places on S sites (sublattice 1)
    other = det["nn_class"].values != V_S
    assert (det["nn_temporal_class"].values != V_S).sum() == other.sum()
    assert (det["nn_temporal_sublattice"].values[det["nn_temporal_class"].values == V_S] == 1).all()
    cls = _roundtrip(
        STAGES["classify"].func([det, movie], ClassifyOptions(source="baseline")),
        tmp_path / "cls.zarr",
    )
    trk = _roundtrip(STAGES["track"].func([cls], TrackOptions()), tmp_path / "trk.zarr")
    kin = _roundtrip(
        STAGES["kinetics"].func([trk], KineticsOptions(n_boot=20)), tmp_path / "kin.zarr"
    )
    res = STAGES["analyze"].func([movie, det, cls, trk, kin], AnalyzeOptions())
    metrics = res.attrs["metrics"]
    for key in (
        "detect.nn.f1.V_S",
        "detect.nn_temporal.f1.V_S",
        "detect.baseline.f1.V_S",
        "detect.nn.frames_per_second",
        "track.purity",
        "kinetics.D_rel_error",
        "detect.baseline.late.f1.V_W",
    ):
        assert key in metrics
    assert all("." in k for k in metrics)
    paths = STAGES["figures"].func([movie, det, trk, kin], FiguresOptions(), tmp_path / "fig")
    assert all(p.exists() for p in paths) and len(paths) >= 6


def test_baseline_precision_recall_on_intact_frames():
    """Classical detector on intact frames at dose 20 with 0.5 px jitter."""
    opts = SimulateOptions(
        shape=(256, 256),
        n_frames=4,
        disorder_start=9,
        seed=13,
        mo_density=0.3,
        vw_density=0.3,
        vs2_density=0.2,
    )
    mv = STAGES["simulate"].func([], opts)
    det = STAGES["detect"].func([mv, xr.Dataset()], DetectOptions(method="baseline"))
    counts = detection_counts(mv, det, "baseline", 4.5, 6.5, np.arange(4))
    # Mo (0.38 of W) and V_W (empty metal site) are > 10 noise sd from W at dose 20; with only
    # ~10-40 of each in this small movie, one miss (e.g. a site the lattice fit misplaces near
    # the edge) is allowed
    for c in (MO, V_W):
        p, r, _ = prf(*counts[c])
        assert counts[c][2] >= 8
        assert p >= 1 - 1.5 / counts[c][2] and r >= 1 - 1.5 / counts[c][2]
    # an empty S site is 2.5 noise sd of the S-site read-out below S2: recall is high
    assert prf(*counts[V_S2])[1] > 0.9


def test_spilled_tables_equal_the_in_memory_ones(movie, monkeypatch):
    # a long movie's tables go to disk once they hold SPILL_ROWS rows; forcing a spill after
    # every chunk must give the same table, now dask-backed
    import scopeflow.defects.detect as det_mod

    opts = DetectOptions(method="baseline", chunk_frames=2)
    mem = STAGES["detect"].func([movie, xr.Dataset()], opts)
    monkeypatch.setattr(det_mod, "SPILL_ROWS", 1)
    disk = STAGES["detect"].func([movie, xr.Dataset()], opts)
    assert not hasattr(mem["baseline_row"].data, "dask")
    assert hasattr(disk["baseline_row"].data, "dask")
    assert mem.sizes["baseline_point"] > 50
    for key in ("frame", "row", "col", "class", "site_i", "site_j"):
        np.testing.assert_array_equal(mem[f"baseline_{key}"].values, disk[f"baseline_{key}"].values)


def test_baseline_resolves_single_s_vacancies_at_high_dose(tmp_path):
    # at dose 200 the S2 / single-S read-out difference is ~8 noise sd (sqrt(10) x dose 20)
    opts = SimulateOptions(shape=(192, 192), n_frames=2, dose=200.0, disorder_start=9, seed=12)
    mv = STAGES["simulate"].func([], opts)
    det = STAGES["detect"].func([mv, xr.Dataset()], DetectOptions(method="baseline"))
    p, r, f = prf(*detection_counts(mv, det, "baseline", 4.5, 6.5, np.arange(2))[V_S])
    assert f > 0.95


@pytest.mark.slow
def test_small_network_learns_defects(movie):
    """A short training run (crop 128, 1000 steps) already finds Mo and vacancies."""
    torch.set_num_threads(1)
    # 400 steps left V_S just at the bound below (F1 0.47 with this session's packages, for the
    # old and the new code alike): too short to say whether the network learns; 600 gave 0.86
    # for the plain 8-channel network but 0.38 for the default unshuffled (16, 24, 32, 64) one,
    # which starts slower; 1000 steps give it 0.79
    model = STAGES["train"].func([movie], TrainOptions(steps=1000, crop=128, pool_frames=16))
    # the default per-class probability cuts were tuned for the fully trained network; a
    # short-trained network is less confident, so every class is cut at the plain majority 0.5
    det = STAGES["detect"].func(
        [movie, model], DetectOptions(method="nn", min_score=(0.5, 0.5, 0.5, 0.5))
    )
    counts = detection_counts(movie, det, "nn", 4.5, 6.5, np.arange(4))
    # Mo columns are the easiest class (0.38 of W, > 10 noise sd): nearly all found
    assert prf(*counts[MO])[2] > 0.9
    # single S vacancies: well above chance (which is ~0.05 F1 at 4 % of S sites)
    assert prf(*counts[V_S])[2] > 0.5
