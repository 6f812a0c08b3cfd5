"""Stage table, analyze/figures on a tiny pipeline, ingest from TIFF files."""

import numpy as np
import pytest
import tifffile

from scopeflow.io.ingest import IngestError
from scopeflow.ltem.options import (
    AdOptions,
    AnalyzeOptions,
    FiguresOptions,
    IngestOptions,
    ReconstructOptions,
    SimulateOptions,
)
from scopeflow.ltem.stages import STAGES
from scopeflow.options import from_dict, json_schema

KEYS = (
    "ad.phase_rel_l2",
    "ad.phase_scale",
    "ad.ncc",
    "tie.phase_rel_l2",
    "tie.phase_scale",
    "ad.seconds",
    "ad.defocus_rel_error",
    "ad.frc_resolution_nm",
    "tie.ncc",
    "ad.shift_error_max_px",
)


def test_stage_table():
    assert set(STAGES) == {"simulate", "ingest", "reconstruct", "analyze", "figures"}
    assert STAGES["reconstruct"].inputs == ("ltem.series",)
    assert STAGES["analyze"].kind == "ltem.analysis"
    for st in STAGES.values():
        json_schema(st.options)
        from_dict(st.options, {})


@pytest.fixture(scope="module")
def pipeline():
    ds = STAGES["simulate"].func(
        [], SimulateOptions(size=32, pixel_size_nm=20.0, seed=2, shift_px=0.5)
    )
    rec = STAGES["reconstruct"].func(
        [ds], ReconstructOptions(ad=AdOptions(max_iter=20, uncertainty="none"))
    )
    return ds, rec, STAGES["analyze"].func([rec], AnalyzeOptions())


def test_analyze_metrics(pipeline):
    _, _, ana = pipeline
    m = ana.attrs["metrics"]
    for k in KEYS:
        assert k in m and np.isfinite(m[k]), k
    assert ana["bx_ad_t"].attrs["units"] == "T"


def test_analyze_without_truth(pipeline):
    _, rec, _ = pipeline
    bare = rec.drop_vars([v for v in rec.data_vars if str(v).startswith("true_")])
    m = STAGES["analyze"].func([bare], AnalyzeOptions()).attrs["metrics"]
    assert "ad.phase_rel_l2" not in m and "ad.b_t_max_tnm" in m


def test_figures(pipeline, tmp_path):
    _, _, ana = pipeline
    paths = STAGES["figures"].func([ana], FiguresOptions(dpi=40), tmp_path)
    assert {p.name for p in paths} >= {"phase.png", "induction.png", "comparison.png"}
    assert all(p.stat().st_size > 0 for p in paths)


def _series():
    rng = np.random.default_rng(0)
    return rng.poisson(50, size=(3, 16, 16)).astype(np.float32)


def test_ingest_imagej_tiff(tmp_path):
    path = tmp_path / "series.tif"
    tifffile.imwrite(
        path,
        _series(),
        imagej=True,
        resolution=(1 / 2.5, 1 / 2.5),
        metadata={"unit": "nm", "axes": "ZYX"},
    )
    # rosettasciio reads this file's scale but not its ImageJ unit, so the pixel size (and
    # the voltage, which ImageJ TIFFs do not carry) come from the options
    opts = IngestOptions(
        path=str(path),
        defocus_nm=(-1e5, 0.0, 1e5),
        energy_ev=300e3,
        pixel_size_nm=2.5,
        flip_defocus_sign=True,
    )
    ds = STAGES["ingest"].func([], opts)
    assert ds["image"].shape == (3, 16, 16)
    assert ds.attrs["pixel_size_nm"] == pytest.approx(2.5)
    assert list(ds["defocus"].values) == [1e5, 0.0, -1e5]
    assert "flip_defocus_sign" in ds.attrs["defocus_sign_convention"]
    # without defocus values the series is refused
    with pytest.raises(IngestError, match="defocus"):
        STAGES["ingest"].func([], IngestOptions(path=str(path), energy_ev=300e3, pixel_size_nm=2.5))
    # a missing voltage or pixel size is never guessed
    with pytest.raises(IngestError, match="energy_ev"):
        STAGES["ingest"].func(
            [], IngestOptions(path=str(path), defocus_nm=(-1.0, 0.0, 1.0), pixel_size_nm=2.5)
        )
    with pytest.raises(IngestError, match="pixel_size_nm"):
        STAGES["ingest"].func(
            [], IngestOptions(path=str(path), defocus_nm=(-1.0, 0.0, 1.0), energy_ev=300e3)
        )


def test_ingest_rosettasciio_tiff_per_image(tmp_path):
    from rsciio.tiff import file_writer

    paths = []
    for i, img in enumerate(_series()):
        p = tmp_path / f"im{i}.tif"
        axes = [
            {"name": n, "size": 16, "scale": 0.004, "offset": 0.0, "units": "µm", "navigate": False}
            for n in ("y", "x")
        ]
        file_writer(str(p), {"data": img, "axes": axes, "metadata": {}, "original_metadata": {}})
        paths.append(str(p))
    ds = STAGES["ingest"].func(
        [], IngestOptions(paths=tuple(paths), defocus_nm=(-5.0, 0.0, 5.0), energy_ev=200e3)
    )
    assert ds.attrs["pixel_size_nm"] == pytest.approx(4.0)
    # no pixel size in the file and none in the options: refused
    bare = tmp_path / "bare.tif"
    tifffile.imwrite(bare, _series(), photometric="minisblack")
    with pytest.raises(IngestError, match="pixel_size_nm"):
        STAGES["ingest"].func(
            [], IngestOptions(path=str(bare), defocus_nm=(-5.0, 0.0, 5.0), energy_ev=200e3)
        )
