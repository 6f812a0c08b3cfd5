"""DAG-level tests: lint, dry runs of every config, config errors, a real tiny run, the
parameter-edit rerun, stores meeting the contract, and the HTML report."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from scopeflow.io import read_store

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW_FILES = ("Snakefile", "rules", "workflow", "config", "envs", "resources")
CONFIGS = sorted(p.name for p in (ROOT / "config").glob("*.yaml"))


def snakemake(*args, cwd, check=True, timeout=900):
    """Run Snakemake from this test's Python environment (so `python -m scopeflow` resolves)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and res.returncode != 0:
        logs = "".join(
            f"\n--- {p}\n{p.read_text()[-3000:]}" for p in Path(cwd).glob("logs/**/*.log")
        )
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{res.stderr[-6000:]}{logs}")
    return res


def copy_workflow(dest: Path) -> Path:
    for name in WORKFLOW_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name)
        else:
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture
def workdir(tmp_path):
    return copy_workflow(tmp_path)


def test_lint_is_clean():
    res = snakemake("--lint", "json", cwd=ROOT, check=False)
    assert res.returncode == 0, res.stderr
    if res.stdout.strip():  # lints are printed as JSON; a clean workflow prints none
        lints = json.loads(res.stdout)
        assert not lints.get("snakefiles") and not lints.get("rules"), res.stdout
    assert "Congratulations" in res.stderr


@pytest.mark.parametrize("config", CONFIGS)
def test_dry_run(config, workdir):
    res = snakemake("-n", "--configfile", f"config/{config}", cwd=workdir)
    assert "Nothing to be done" not in res.stdout
    cfg = yaml.safe_load((ROOT / "config" / config).read_text())
    for technique, section in cfg.items():
        for sample in section["samples"]:
            assert f"results/{technique}/{sample}/metrics.json" in res.stdout


def test_unknown_config_key_names_the_key(workdir):
    cfg = yaml.safe_load((ROOT / "config" / "tiny.yaml").read_text())
    sample = next(iter(cfg["ltem"]["samples"].values()))
    sample["reconstruct"]["ad"]["max_itre"] = 10
    (workdir / "config" / "typo.yaml").write_text(yaml.safe_dump(cfg))
    res = snakemake("-n", "--configfile", "config/typo.yaml", cwd=workdir, check=False)
    out = res.stdout + res.stderr  # Snakemake prints workflow errors on stdout
    assert res.returncode != 0
    assert "max_itre" in out and "Additional properties are not allowed" in out
    (workdir / "config" / "typo.yaml").write_text("ltm:\n  samples: {}\n")
    res = snakemake("-n", "--configfile", "config/typo.yaml", cwd=workdir, check=False)
    assert res.returncode != 0 and "'ltm' was unexpected" in res.stdout + res.stderr


def _mtimes(workdir, sample):
    base = workdir / "results" / "ltem" / sample
    return {p.name: p.stat().st_mtime_ns for p in base.iterdir()}


@pytest.mark.slow
def test_tiny_run_param_edit_rerun_and_report(workdir):
    """The whole ltem path on the tiny config; then one reconstruction parameter is edited and
    exactly reconstruct -> analyze -> figures rerun while the simulated store is untouched."""
    snakemake("--cores", "2", "--configfile", "config/tiny.yaml", cwd=workdir)
    sample = "tiny"
    base = workdir / "results" / "ltem" / sample
    kinds = {
        "simulate.zarr": "ltem.series",
        "reconstruct.zarr": "ltem.phase",
        "analyze.zarr": "ltem.analysis",
    }
    for name, kind in kinds.items():
        ds = read_store(base / name, kind)
        prov = ds.attrs["provenance"]
        assert prov["stage"] == name.split(".")[0] and prov["scopeflow_version"]
        assert all("sha256" in i for i in prov["inputs"])
        for dim in ds.dims:
            if dim in ds.coords and ds[dim].dtype.kind == "f":
                assert "units" in ds[dim].attrs
    metrics = json.loads((base / "metrics.json").read_text())
    assert {"ad.phase_rel_l2", "tie.phase_rel_l2", "ad.seconds"} <= set(metrics)
    figures = [p for p in (base / "figures").iterdir() if not p.name.startswith(".")]
    assert figures and all(p.suffix == ".png" and p.stat().st_size > 1000 for p in figures)
    assert (workdir / "logs" / "ltem" / sample / "reconstruct.log").stat().st_size > 0
    assert (workdir / "benchmarks" / "ltem" / sample / "reconstruct.tsv").is_file()

    before = _mtimes(workdir, sample)
    cfg = yaml.safe_load((workdir / "config" / "tiny.yaml").read_text())
    cfg["ltem"]["samples"][sample]["reconstruct"]["ad"]["max_iter"] = 41
    (workdir / "config" / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    # `--summary` marks exactly the edited stage (Snakemake 9.27's `--list-changes params`
    # lists every output that has recorded params, changed or not, so the README uses this)
    summary = snakemake("--summary", "--configfile", "config/tiny.yaml", cwd=workdir).stdout
    status = {
        Path(line.split("\t")[0]).name: line.split("\t")[4]
        for line in summary.splitlines()[1:]
        if line.startswith("results/")
    }
    assert status["reconstruct.zarr"] == "params changed"
    assert status["simulate.zarr"] == "ok" and status["analyze.zarr"] == "ok"
    dry = snakemake("-n", "--configfile", "config/tiny.yaml", cwd=workdir).stdout
    for rule in ("ltem_reconstruct", "ltem_analyze", "ltem_figures"):
        assert f"rule {rule}:" in dry or f"{rule} " in dry
    assert "ltem_simulate" not in dry
    time.sleep(1.1)  # distinguishable mtimes
    snakemake("--cores", "2", "--configfile", "config/tiny.yaml", cwd=workdir)
    after = _mtimes(workdir, sample)
    assert after["simulate.zarr"] == before["simulate.zarr"]
    for name in ("reconstruct.zarr", "analyze.zarr", "metrics.json", "figures"):
        assert after[name] > before[name], name
    assert (
        read_store(base / "reconstruct.zarr").attrs["provenance"]["parameters"]["ad"]["max_iter"]
        == 41
    )
    nothing = snakemake("-n", "--configfile", "config/tiny.yaml", cwd=workdir).stdout
    assert "Nothing to be done" in nothing

    snakemake("--configfile", "config/tiny.yaml", "--report", "report.html", cwd=workdir)
    html = (workdir / "report.html").read_text(errors="replace")
    assert "metrics.json" in html and ".png" in html
