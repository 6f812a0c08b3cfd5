"""The tiny config through the SLURM profile on a real single-node SLURM (issue 6).

A module-scoped fixture starts munged, slurmctld and slurmd (`slurm_cluster.py`, root only) and
stops exactly those daemons afterwards. The tests check that every job of the DAG went through
sbatch and ran on the cluster, that the results equal a local run's, and that a job cancelled with
scancel mid-stage leaves no store that looks complete and is redone by ``--rerun-incomplete``.

The runs use the venv that runs pytest (``SCOPEFLOW_SLURM_SDM=none``) instead of the profile's
``--sdm conda``: conda channels cannot be reached on the CI machine, and the profile's conda path is
Snakemake's own. Threads are capped at 2 (the machine's cores) in both runs, so every rule runs with
the same thread count on SLURM and locally and the numbers can be compared exactly.
"""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
import yte

from scopeflow.io import read_store

sys.path.insert(0, str(Path(__file__).parent))
import slurm_cluster  # noqa: E402

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "workflow" / "profiles" / "slurm"
LOCAL_PROFILE = ROOT / "workflow" / "profiles" / "local"
WORKFLOW_FILES = ("Snakefile", "rules", "workflow", "config", "envs")
CONFIG = "config/tiny_slurm.yaml"
MAX_THREADS = 2
RUN_TIMEOUT_S = 600
# entries that measure the run, not the result: "ad.seconds", "cpu_seconds", "peak_rss_mb", ...
TIMING_KEY = re.compile(r"(^|[._])((cpu|wall)_)?seconds$|(^|[._])peak_(rss|mem)\w*$")
# the stage the failure test cancels, and the tiny config's sample
KILL_TECHNIQUE, KILL_STAGE = "ltem", "reconstruct"
SUFFIXES = (".zarr", ".json", ".png")


def _skip_reason():
    reason = slurm_cluster.unavailable_reason()
    if reason is None and importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        reason = "snakemake-executor-plugin-slurm is not installed (pip install -e '.[workflow]')"
    return reason


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = _skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with slurm_cluster.running_cluster(tmp_path_factory.mktemp("slurm")) as running:
        yield running
        # shown by pytest only when a test of this module failed
        print(running.logs())


def _copy_workflow(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name)
        else:
            shutil.copy2(src, dest / name)
    return dest


def _env() -> dict:
    env = dict(os.environ)
    # `python -m scopeflow` in the rules (and in the SLURM jobs, which inherit this environment
    # through sbatch --export=ALL) must be the Python that runs the tests
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["SCOPEFLOW_SLURM_SDM"] = "none"
    return env


def _slurm_args(*extra: str) -> list[str]:
    return [
        "--profile",
        str(PROFILE),
        "--workflow-profile",
        "none",
        "--configfile",
        CONFIG,
        "--max-threads",
        str(MAX_THREADS),
        # no slurmdbd here, so no sacct: squeue sees finished jobs for MinJobAge seconds
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--slurm-keep-successful-logs",
        "--latency-wait",
        "5",
        *extra,
    ]


def _profile_threads() -> list[str]:
    """The SLURM profile's set-threads, for the local run (capped alike by --max-threads)."""
    with open(PROFILE / "config.v9+.yaml") as f:
        profile = yte.process_yaml(f, require_use_yte=True)
    return [f"{rule}={n}" for rule, n in profile.get("set-threads", {}).items()]


def _start(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "snakemake", *args],
            cwd=cwd,
            env=_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _finish(proc: subprocess.Popen, log: Path, cluster=None, timeout_s=RUN_TIMEOUT_S) -> str:
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.terminate()  # Snakemake cancels its SLURM jobs on SIGTERM
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        pytest.fail(f"snakemake ran over {timeout_s} s\n{_tail(log)}\n{_cluster_logs(cluster)}")
    return log.read_text(errors="replace")


def _run(args, cwd: Path, name: str, cluster=None, expect_ok=True) -> str:
    log = cwd / f"{name}.out"
    proc = _start(args, cwd, log)
    text = _finish(proc, log, cluster)
    if expect_ok and proc.returncode != 0:
        pytest.fail(
            f"snakemake {name} exited {proc.returncode}\n{_tail(log)}\n{_job_logs(cwd)}"
            f"\n{_cluster_logs(cluster)}"
        )
    return text


def _tail(log: Path, n: int = 120) -> str:
    lines = log.read_text(errors="replace").splitlines()[-n:] if log.exists() else []
    return f"----- {log}\n" + "\n".join(lines)


def _job_logs(workdir: Path) -> str:
    paths = sorted(workdir.glob("logs/**/*.log")) + sorted(
        workdir.glob(".snakemake/slurm_logs/**/*.log")
    )
    return "\n".join(f"----- {p}\n{p.read_text(errors='replace')[-2000:]}" for p in paths)


def _cluster_logs(cluster) -> str:
    return cluster.logs() if cluster is not None else ""


def _rule_jobs(log_text: str) -> set[tuple[str, str]]:
    """(rule, wildcards) of every job that a Snakemake log shows starting."""
    jobs = set()
    for match in re.finditer(r"^(local)?rule (\w+):\n((?:    .*\n)*)", log_text, re.M):
        wildcards = re.search(r"^    wildcards: (.*)$", match.group(3), re.M)
        jobs.add((match.group(2), wildcards.group(1) if wildcards else ""))
    return jobs


def _local_rules(log_text: str) -> set[str]:
    return set(re.findall(r"^localrule (\w+):", log_text, re.M))


def _submitted(log_text: str) -> dict[str, Path]:
    """SLURM job id -> its SLURM log file, from 'submitted with SLURM jobid' lines."""
    found = re.findall(r"submitted with SLURM jobid (\d+) \(log: (.+?)\)", log_text)
    return {jobid: Path(path) for jobid, path in found}


def _run_id(log_text: str) -> str:
    match = re.search(r"SLURM run ID: (\S+)", log_text)
    assert match, "no 'SLURM run ID' in Snakemake's log: the slurm executor did not run"
    return match.group(1)


def _squeue_states(run_id: str) -> dict[str, str]:
    out = subprocess.run(
        ["squeue", "--states=all", "--noheader", "--format=%i|%T", "--name", run_id],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    return dict(line.split("|", 1) for line in out.split())


def _without_timings(value):
    """`value` with every dict entry that measures the run (not the result) removed."""
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if not TIMING_KEY.search(k)}
    return value


def _comparable_attrs(attrs: dict) -> dict:
    return _without_timings({k: v for k, v in attrs.items() if k != "provenance"})


def _result_entries(base: Path) -> list[str]:
    """Stores, JSON files and PNGs under `base` (not inside stores, not hidden temporaries)."""
    entries = []
    for path in base.rglob("*"):
        rel = path.relative_to(base)
        inside_store = any(part.endswith(".zarr") for part in rel.parts[:-1])
        if not inside_store and not rel.name.startswith(".") and path.suffix in SUFFIXES:
            entries.append(rel.as_posix())
    return sorted(entries)


def _assert_same_results(got: Path, want: Path) -> None:
    """Same stores (variables, coords, attrs less provenance, values), metrics and figures."""
    names = _result_entries(want)
    assert _result_entries(got) == names
    for name in names:
        a, b = got / name, want / name
        if name.endswith(".zarr"):
            with warnings.catch_warnings():
                # Snakemake marks directory outputs with a `.snakemake_timestamp` file, which
                # zarr warns about when it lists the store; the store itself is intact
                warnings.filterwarnings("ignore", "Object at .snakemake_timestamp is not")
                ds_a, ds_b = read_store(a).load(), read_store(b).load()
            assert sorted(ds_a.variables) == sorted(ds_b.variables), name
            assert dict(ds_a.sizes) == dict(ds_b.sizes), name
            assert _comparable_attrs(ds_a.attrs) == _comparable_attrs(ds_b.attrs), name
            for var in ds_b.variables:
                va, vb = ds_a[var], ds_b[var]
                assert va.dims == vb.dims and va.attrs == vb.attrs, f"{name}:{var}"
                # same code, seeds, inputs and thread count on the same CPU: bit-identical
                # arithmetic is expected, so any difference is a real discrepancy
                np.testing.assert_array_equal(va.values, vb.values, err_msg=f"{name}:{var}")
        elif name.endswith(".json"):
            ma, mb = json.loads(a.read_text()), json.loads(b.read_text())
            assert _comparable_attrs(ma) == _comparable_attrs(mb), name


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """The tiny config run locally with the local workflow profile: the reference results."""
    if _skip_reason() is not None:
        pytest.skip(_skip_reason())
    workdir = _copy_workflow(tmp_path_factory.mktemp("local"))
    text = _run(
        [
            "--workflow-profile",
            str(LOCAL_PROFILE),
            "--configfile",
            CONFIG,
            "--cores",
            str(MAX_THREADS),
            "--max-threads",
            str(MAX_THREADS),
            "--set-threads",
            *_profile_threads(),
        ],
        workdir,
        "local",
    )
    return workdir, text


def test_tiny_config_runs_through_sbatch_and_matches_local(cluster, local_run, tmp_path):
    local_dir, local_log = local_run
    workdir = _copy_workflow(tmp_path / "slurm")
    started = time.monotonic()
    log = _run(_slurm_args(), workdir, "slurm", cluster)
    wall_s = time.monotonic() - started

    run_id = _run_id(log)
    submitted = _submitted(log)
    assert submitted, f"no job was submitted with sbatch\n{log}"
    # every submitted job: a SLURM log of its own, a COMPLETED record in slurmctld's job
    # completion log and in squeue's history, under this run's job name
    completed = {job["JobId"]: job for job in cluster.completed_jobs() if job.get("Name") == run_id}
    states = _squeue_states(run_id)
    for jobid, slurm_log in submitted.items():
        assert slurm_log.is_file(), f"SLURM log of job {jobid} missing: {slurm_log}"
        assert completed.get(jobid, {}).get("JobState") == "COMPLETED", (jobid, completed)
        assert states.get(jobid) == "COMPLETED", (jobid, states)
    assert set(completed) == set(submitted), "jobs ran under this run's name without sbatch"

    # every job of the DAG ran inside one of those SLURM jobs; only the target rule `all`
    # ran in the submitting Snakemake itself
    in_slurm = set()
    for slurm_log in submitted.values():
        in_slurm |= _rule_jobs(slurm_log.read_text(errors="replace"))
    expected = {job for job in _rule_jobs(local_log) if job[0] != "all"}
    assert expected, local_log
    assert in_slurm == expected
    assert _local_rules(log) <= {"all"}

    # threads: the CLI got --threads N and SLURM allocated N CPUs to that job; a grouped job
    # running independent rules side by side gets at least the largest of their thread counts
    # (Snakemake sums parallel group components, so each rule still has its own N CPUs)
    for jobid, slurm_log in submitted.items():
        threads = [int(n) for n in re.findall(r"--threads (\d+)", slurm_log.read_text())]
        cpus = int(completed[jobid]["ProcCnt"])
        if len(threads) == 1:
            assert cpus == threads[0], jobid
        elif threads:
            assert max(threads) <= cpus <= sum(threads), (jobid, cpus, threads)

    _assert_same_results(workdir / "results", local_dir / "results")
    print(f"SLURM run: {len(submitted)} sbatch jobs, {len(expected)} rule jobs, {wall_s:.0f} s")


def _find_stage_process(workdir: Path, technique: str, stage: str) -> int | None:
    """PID of a running `python -m scopeflow <technique> <stage>` whose cwd is `workdir`."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if b"scopeflow" not in argv or technique.encode() not in argv:
                continue
            if stage.encode() in argv and Path(os.readlink(proc / "cwd")) == workdir.resolve():
                if _alive(int(proc.name)):
                    return int(proc.name)
        except OSError:  # the process ended while we looked
            continue
    return None


def _alive(pid: int) -> bool:
    """Whether a process runs (a zombie that nobody reaped yet does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_for(predicate, timeout_s: float, what: str, proc, log: Path, cluster):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"snakemake ended before {what}\n{_tail(log)}\n{cluster.logs()}")
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}\n{_tail(log)}\n{cluster.logs()}")


def test_scancel_mid_stage_leaves_no_complete_store_and_rerun_finishes(
    cluster, local_run, tmp_path
):
    local_dir, _ = local_run
    workdir = _copy_workflow(tmp_path / "slurm")
    sample = next(iter(yaml.safe_load((ROOT / CONFIG).read_text())[KILL_TECHNIQUE]["samples"]))
    target = workdir / "results" / KILL_TECHNIQUE / sample / f"{KILL_STAGE}.zarr"
    rule = f"{KILL_TECHNIQUE}_{KILL_STAGE}"

    log = workdir / "killed.out"
    # no retries: a cancelled job would otherwise be resubmitted
    proc = _start(_slurm_args("--retries", "0"), workdir, log)
    pid = _wait_for(
        lambda: _find_stage_process(workdir, KILL_TECHNIQUE, KILL_STAGE),
        RUN_TIMEOUT_S,
        f"the {rule} stage to start",
        proc,
        log,
        cluster,
    )
    jobid = _wait_for(
        lambda: next(
            (
                j
                for j, p in _submitted(log.read_text(errors="replace")).items()
                if f"rule_{rule}" in p.as_posix()
            ),
            None,
        ),
        60,
        f"the SLURM job id of {rule}",
        proc,
        log,
        cluster,
    )
    # mid-stage: the stage's own log has begun (imports done, options parsed, work started)
    stage_log = workdir / "logs" / KILL_TECHNIQUE / sample / f"{KILL_STAGE}.log"
    _wait_for(
        lambda: _alive(pid) and stage_log.exists() and stage_log.stat().st_size > 0,
        120,
        f"{stage_log} to begin",
        proc,
        log,
        cluster,
    )
    subprocess.run(["scancel", jobid], check=True, timeout=30)
    text = _finish(proc, log, cluster)
    assert proc.returncode != 0, "the run succeeded although a job was cancelled"
    state = {j["JobId"]: j["JobState"] for j in cluster.completed_jobs()}.get(jobid)
    assert state == "CANCELLED", (jobid, state, text[-3000:])
    deadline = time.monotonic() + 30  # SIGKILL follows SIGTERM after KillWait (5 s)
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(pid), "the cancelled stage process still runs"

    # nothing at the store's path; at most hidden temporary siblings, which no reader opens
    assert not target.exists(), f"{target} exists after its job was cancelled"
    for sibling in target.parent.glob(f".{target.name}*"):
        assert re.fullmatch(rf"\.{re.escape(target.name)}\.tmp-\d+", sibling.name), sibling
    assert not (target.parent / "metrics.json").exists()

    _run(_slurm_args("--rerun-incomplete"), workdir, "rerun", cluster)
    _assert_same_results(workdir / "results", local_dir / "results")
