"""A throwaway single-node SLURM cluster for the workflow tests.

`running_cluster` writes ``/etc/slurm/slurm.conf`` (and ``gres.conf``), starts munged (unless one
already answers on its default socket), slurmctld and slurmd in the foreground as child processes,
waits until the node is idle, and on exit cancels the cluster's jobs and stops exactly the daemons
it started, by PID, then removes the config files it wrote. It needs root and the Debian packages
slurmctld, slurmd, slurm-client and munge (``.ci/slurm-setup.sh`` installs them);
`unavailable_reason` says why a test must skip otherwise.

The configuration is the one known to work without cgroups or a database (Slurm 22.05, Debian 12):
``SlurmUser=root``, ``ProctrackType=proctrack/linuxproc``, ``TaskPlugin=task/none``,
``select/cons_tres`` with ``CR_Core_Memory``, one node at 127.0.0.1 with the machine's CPUs and 90 %
of its memory, and one default partition. There is no slurmdbd, so ``sacct`` cannot answer: the
completed jobs are recorded by ``jobcomp/filetxt`` (`SlurmCluster.completed_jobs`) and finished jobs
stay visible to ``squeue`` for ``MinJobAge`` seconds, which is what the executor plugin's ``squeue``
status command needs. The node advertises one GPU whose device file is ``/dev/null`` (without a file
slurmd counts no GPU and the node is drained), so jobs that request a GPU are scheduled and their
``--gpus`` request is checked by Slurm although no GPU exists; torch then finds no CUDA device and
the stages run on the CPU.

The config must sit at ``/etc/slurm/slurm.conf``: the job-step plugin removes ``SLURM_CONF`` from
the job environment before it calls ``srun``. A config there that this module did not write is
never touched (the test skips instead), and a lock file keeps two test runs on one machine apart.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SLURM_CONF = Path("/etc/slurm/slurm.conf")
GRES_CONF = Path("/etc/slurm/gres.conf")
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")
LOCK_FILE = Path("/run/lock/scopeflow-slurm-test.lock")
MARKER = "# written by scopeflow tests/workflow/slurm_cluster.py; removed when the test ends"
PARTITION = "scopeflow"
NODE = "scopeflow-node"
COMMANDS = (
    "munged",
    "munge",
    "slurmctld",
    "slurmd",
    "sbatch",
    "srun",
    "squeue",
    "scancel",
    "scontrol",
    "sinfo",
)
# Seconds a finished job stays in slurmctld's memory (and so in `squeue --states=all`). The
# executor plugin only trusts squeue when MinJobAge >= 3 x its first status-check delay.
MIN_JOB_AGE_S = 300


@dataclass
class SlurmCluster:
    """Handles on a running test cluster.

    Attributes
    ----------
    workdir : Path
        Holds the daemons' logs, state, spool and the job-completion file.
    partition : str
        The cluster's single (default) partition.
    cpus, mem_mb : int
        What the node offers: all the machine's CPUs, 90 % of its memory [MB].
    gpus : int
        GPUs the node advertises (backed by /dev/null, no device behind them).
    daemons : dict[str, subprocess.Popen]
        The daemons this module started, by name (munged only if it was not already running).
    """

    workdir: Path
    partition: str
    cpus: int
    mem_mb: int
    gpus: int
    daemons: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def jobcomp(self) -> Path:
        """The ``jobcomp/filetxt`` record: one line per finished job."""
        return self.workdir / "jobcomp.txt"

    def completed_jobs(self) -> list[dict[str, str]]:
        """Every job that ended on this cluster, as ``{"JobId": ..., "JobState": ...}`` dicts."""
        if not self.jobcomp.exists():
            return []
        jobs = []
        for line in self.jobcomp.read_text().splitlines():
            fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
            if "JobId" in fields:
                jobs.append(fields)
        return jobs

    def logs(self) -> str:
        """The tail of each daemon's log, for a failure message."""
        parts = []
        for name in ("slurmctld.log", "slurmd.log", "munged.out"):
            path = self.workdir / name
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-60:]
                parts.append(f"----- {path} (last {len(tail)} lines)\n" + "\n".join(tail))
        return "\n".join(parts)


def unavailable_reason() -> str | None:
    """Why a real SLURM cannot be started here, or None when it can."""
    if os.name != "posix" or os.geteuid() != 0:
        return "starting slurmctld/slurmd/munged needs root"
    missing = [cmd for cmd in COMMANDS if _which(cmd) is None]
    if missing:
        return (
            f"SLURM/munge commands missing: {', '.join(missing)} "
            "(install with `bash .ci/slurm-setup.sh`: Debian slurmctld slurmd slurm-client munge)"
        )
    if not Path("/etc/munge/munge.key").exists():
        return "no munge key at /etc/munge/munge.key (reinstall the munge package)"
    for conf in (SLURM_CONF, GRES_CONF):
        if conf.exists() and MARKER not in conf.read_text(errors="replace"):
            return f"{conf} exists and was not written by this test; refusing to overwrite it"
    return None


@contextlib.contextmanager
def running_cluster(workdir: Path, timeout_s: float = 90.0) -> Iterator[SlurmCluster]:
    """Start a single-node cluster, yield it, and stop what was started.

    Parameters
    ----------
    workdir : Path
        Empty directory for logs, state and spool (kept afterwards for inspection).
    timeout_s : float
        Limit for each daemon to come up [s].

    Raises
    ------
    RuntimeError
        If a daemon exits or the node is not idle within `timeout_s`; the message includes the
        daemons' logs.
    """
    reason = unavailable_reason()
    if reason is not None:
        raise RuntimeError(reason)
    workdir.mkdir(parents=True, exist_ok=True)
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cluster = SlurmCluster(
            workdir=workdir,
            partition=PARTITION,
            cpus=os.cpu_count() or 1,
            mem_mb=int(0.9 * _total_memory_mb()),
            gpus=1,
        )
        try:
            _write_configs(cluster)
            _start_daemons(cluster, timeout_s)
            yield cluster
        finally:
            _stop(cluster)


def _which(cmd: str) -> str | None:
    # the daemons live in /usr/sbin, which a non-login PATH may lack
    return shutil.which(cmd, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def _total_memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("MemTotal not found in /proc/meminfo")


def _free_ports(n: int) -> list[int]:
    """`n` distinct TCP ports free on 127.0.0.1 (all held open until all are chosen)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def _write_configs(cluster: SlurmCluster) -> None:
    w = cluster.workdir
    for sub in ("state", "spool"):
        (w / sub).mkdir(exist_ok=True)
    host = socket.gethostname().split(".")[0]
    ctld_port, slurmd_port = _free_ports(2)
    slurm_conf = f"""{MARKER}
ClusterName=scopeflow-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation={w}/state
SlurmdSpoolDir={w}/spool
SlurmctldPidFile={w}/slurmctld.pid
SlurmdPidFile={w}/slurmd.pid
SlurmctldLogFile={w}/slurmctld.log
SlurmdLogFile={w}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
ReturnToService=2
MinJobAge={MIN_JOB_AGE_S}
KillWait=5
JobCompType=jobcomp/filetxt
JobCompLoc={cluster.jobcomp}
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
MailProg=/bin/true
SlurmdParameters=config_overrides
NodeName={NODE} NodeHostname={host} NodeAddr=127.0.0.1 CPUs={cluster.cpus} \
RealMemory={cluster.mem_mb} Gres=gpu:{cluster.gpus} State=UNKNOWN
PartitionName={cluster.partition} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
"""
    gres_conf = f"{MARKER}\nNodeName={NODE} Name=gpu File=/dev/null Count={cluster.gpus}\n"
    SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
    SLURM_CONF.write_text(slurm_conf)
    GRES_CONF.write_text(gres_conf)


def _munge_answers() -> bool:
    if not MUNGE_SOCKET.exists():
        return False
    try:
        cred = subprocess.run(["munge", "-n"], capture_output=True, timeout=5, check=True).stdout
        subprocess.run(["unmunge"], input=cred, capture_output=True, timeout=5, check=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return False
    return True


def _spawn(cluster: SlurmCluster, name: str, argv: list[str]) -> None:
    with open(cluster.workdir / f"{name}.out", "wb") as out:
        cluster.daemons[name] = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )


def _wait(cluster: SlurmCluster, what: str, ready, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for name, proc in cluster.daemons.items():
            if proc.poll() is not None:
                stdout = (cluster.workdir / f"{name}.out").read_text(errors="replace")
                raise RuntimeError(
                    f"{name} exited with {proc.returncode} while waiting for {what}:\n"
                    f"{stdout}\n{cluster.logs()}"
                )
        if ready():
            return
        time.sleep(0.5)
    raise RuntimeError(f"timed out after {timeout_s} s waiting for {what}\n{cluster.logs()}")


def _start_daemons(cluster: SlurmCluster, timeout_s: float) -> None:
    if not _munge_answers():
        MUNGE_SOCKET.parent.mkdir(parents=True, exist_ok=True)
        # --force: run although an old socket or the root user trip munged's safety checks
        _spawn(cluster, "munged", [_which("munged"), "--foreground", "--force"])
        _wait(cluster, "munged to answer", _munge_answers, timeout_s)
    # -D: stay in the foreground, so the PID we hold is the daemon's; -i: ignore old state
    _spawn(cluster, "slurmctld", [_which("slurmctld"), "-D", "-i"])
    _wait(cluster, "slurmctld to answer", lambda: _ok(["scontrol", "ping"], "UP"), timeout_s)
    _spawn(cluster, "slurmd", [_which("slurmd"), "-D", "-N", NODE])
    _wait(
        cluster,
        f"node {NODE} to become idle",
        lambda: _ok(["sinfo", "-h", "-n", NODE, "-o", "%T"], "idle"),
        timeout_s,
    )


def _ok(argv: list[str], expect: str) -> bool:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
    except subprocess.TimeoutExpired:
        return False
    return expect in out


def active_jobs() -> list[str]:
    """IDs of the jobs pending, running, completing or suspended on the cluster."""
    out = subprocess.run(
        ["squeue", "-h", "-t", "PD,R,CG,S", "-o", "%i"], capture_output=True, text=True, timeout=30
    ).stdout
    return out.split()


def _stop(cluster: SlurmCluster) -> None:
    """Cancel the cluster's jobs, stop the daemons we started by PID, remove our configs."""
    if "slurmctld" in cluster.daemons and cluster.daemons["slurmctld"].poll() is None:
        # every job on this private cluster was submitted by the test; ending them first
        # keeps slurmstepd processes from outliving slurmd
        subprocess.run(["scancel", "--full", "--partition", cluster.partition], timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and active_jobs():
            time.sleep(0.5)
    for name in ("slurmd", "slurmctld", "munged"):
        proc = cluster.daemons.get(name)
        if proc is None or proc.poll() is not None:
            continue
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    for conf in (SLURM_CONF, GRES_CONF):
        if conf.exists() and MARKER in conf.read_text(errors="replace"):
            conf.unlink()
