"""The CLI: helpful --help, clear one-line errors, schemas in sync with the options classes."""

import subprocess
import sys
from pathlib import Path

from scopeflow.cli import available_techniques, load_stages, main
from scopeflow.options import json_schema

ROOT = Path(__file__).resolve().parents[1]


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "scopeflow", *args], capture_output=True, text=True, timeout=120
    )


def test_help_lists_techniques_and_stage_options():
    top = _run("--help")
    assert top.returncode == 0
    for tech in available_techniques():
        assert tech in top.stdout
    tech = available_techniques()[0]
    stage, spec = next(iter(load_stages(tech).items()))
    sub = _run(tech, stage, "--help")
    assert sub.returncode == 0
    for name in json_schema(spec.options)["properties"]:
        assert name in sub.stdout


def test_unknown_option_is_a_one_line_error(tmp_path):
    tech = available_techniques()[0]
    stage = next(iter(load_stages(tech)))
    res = _run(tech, stage, "--out", str(tmp_path / "x.zarr"), "--params", '{"no_such_key": 1}')
    assert res.returncode == 2
    assert f"{tech}.{stage}: unknown key(s) ['no_such_key']" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "x.zarr").exists()


def test_wrong_input_kind_is_refused(tmp_path, capsys):
    import numpy as np
    import xarray as xr

    from scopeflow.io import write_store

    bogus = write_store(xr.Dataset({"a": ("x", np.zeros(3))}), tmp_path / "b.zarr", "bogus.kind")
    for tech in available_techniques():
        for stage, spec in load_stages(tech).items():
            if spec.inputs:
                out = tmp_path / "o.zarr"
                args = [tech, stage, "--out", str(out)]
                for _ in spec.inputs:
                    args += ["--in", str(bogus)]
                assert main(args) == 2
                err = capsys.readouterr().err
                assert "store kind is 'bogus.kind', expected" in err
                assert not out.exists()
                return
    raise AssertionError("no stage with inputs found")


def test_schemas_are_in_sync_with_options():
    res = _run("schema", "--check", "--dir", str(ROOT / "workflow" / "schemas"))
    assert res.returncode == 0, res.stdout + res.stderr


def test_stage_targets_resolve_and_threads_reach_torch():
    # Stage functions are import paths resolved when the stage runs; a typo would only show
    # when that rule runs, so every one is resolved here.
    for tech in available_techniques():
        for name, stage in load_stages(tech).items():
            assert callable(stage.func), f"{tech}.{name}: {stage.target!r}"
    # --threads must reach torch even though the CLI no longer imports it before the stage does
    # (torch reads OMP_NUM_THREADS at import); run in a fresh interpreter without torch loaded.
    code = (
        "import sys; from scopeflow.cli import _set_threads; _set_threads(int(sys.argv[1])); "
        "assert 'torch' not in sys.modules; import torch; print(torch.get_num_threads())"
    )
    for n in (1, 2):
        out = subprocess.run(
            [sys.executable, "-c", code, str(n)], capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == str(n)
