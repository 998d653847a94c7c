"""A real single-node Slurm cluster on localhost for the cluster tests (fixture `slurm_cluster`).

Installs Debian's `slurm-wlm` + `munge` with apt-get when they are missing (root only), then starts a private
munged (own key and socket), slurmctld and slurmd from a generated minimal slurm.conf with every state, spool
and log path under a temporary folder and free TCP ports, so nothing on the machine is touched or clashed with.
Everything is torn down at the end, failed tests included: jobs are cancelled, then the daemons stopped.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SLURM_BINARIES = ("slurmctld", "slurmd", "munged", "sbatch", "srun", "scontrol", "squeue", "scancel", "sinfo")
APT_PACKAGES = ("slurm-wlm", "munge")
APT_TIMEOUT_S = 300
TERMINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
                   "DEADLINE", "PREEMPTED"}


def _which_all() -> list[str]:
    """Slurm/munge binaries that are not on PATH (sbin included: root's PATH may lack it under some runners)."""
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return [b for b in SLURM_BINARIES if shutil.which(b, path=path) is None]


def _apt_install() -> str | None:
    """apt-get install the packages (update first only if needed); None on success, else why not."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # Wait for a dpkg lock held by e.g. unattended-upgrades on a freshly booted machine instead of failing.
    install = ["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=120", "--no-install-recommends",
               *APT_PACKAGES]
    log = []
    for cmd in (install, ["apt-get", "update", "-q"], install):
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return f"`{' '.join(cmd)}` timed out after {APT_TIMEOUT_S}s"
        log.append(proc.stdout[-1500:] + proc.stderr[-1500:])
        if proc.returncode == 0 and cmd is install and not _which_all():
            return None
    return "apt-get could not install slurm-wlm/munge (no reachable Debian mirror?):\n" + log[-1].strip()


def ensure_slurm() -> None:
    """Skip the calling test unless we are root (slurmd must be) and Slurm + munge are or can be installed."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("the local Slurm test cluster needs root (slurmd runs jobs as root; apt-get installs Slurm)")
    if not _which_all():
        return
    if shutil.which("apt-get") is None:
        pytest.skip("Slurm is not installed and there is no apt-get to install it (not Debian/Ubuntu)")
    why = _apt_install()
    if why:
        pytest.skip(why)


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class JobTask:
    """One job (or one array task) as `scontrol show job` reports it."""

    job_id: str  # e.g. "12" or "12_1"
    state: str
    exit_code: str
    restarts: int
    fields: dict = field(repr=False)


@dataclass
class LocalSlurm:
    """A running single-node cluster: `sbatch`, `wait`, ... run the real Slurm client commands against it."""

    root: Path
    conf: Path
    node: str
    env: dict
    procs: dict = field(default_factory=dict)  # name -> Popen

    # ------------------------------------------------------------------------------------------ commands
    def run(self, *cmd: str, check: bool = True, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout, **kw)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stdout}{proc.stderr}"
                               f"\n--- slurmctld log tail ---\n{self.log_tail('slurmctld')}")
        return proc

    def sbatch(self, *args: str, cwd: Path | None = None, env: dict | None = None) -> str:
        """Submit; returns the job id (the array job id for arrays)."""
        sub_env = dict(self.env, **(env or {}))
        proc = subprocess.run(["sbatch", "--parsable", *args], env=sub_env, capture_output=True, text=True,
                              timeout=60, cwd=cwd)
        if proc.returncode != 0:
            raise RuntimeError(f"sbatch {' '.join(args)} failed: {proc.stderr}")
        return proc.stdout.strip().split(";")[0]

    def tasks(self, job_id: str) -> list[JobTask]:
        """All tasks of a job (one for a plain job); [] when slurmctld does not know it (yet)."""
        proc = self.run("scontrol", "-o", "show", "job", job_id, check=False)
        out = []
        for line in proc.stdout.splitlines():
            fields = dict(m.groups() for m in re.finditer(r"(\w+)=(\S*)", line))
            if "JobState" not in fields:
                continue
            jid = fields["JobId"]
            if fields.get("ArrayJobId") and fields.get("ArrayTaskId", "").isdigit():
                jid = f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}"
            out.append(JobTask(jid, fields["JobState"], fields.get("ExitCode", ""),
                               int(fields.get("Restarts", 0) or 0), fields))
        return sorted(out, key=lambda t: t.job_id)

    def wait(self, job_id: str, timeout: float, poll: float = 1.0) -> list[JobTask]:
        """Wait until every task of the job reached a terminal state (pending array tasks included)."""
        deadline = time.monotonic() + timeout
        tasks: list[JobTask] = []
        while time.monotonic() < deadline:
            tasks = self.tasks(job_id)
            # A not yet split array shows one PENDING record "123_[0-1]": not terminal, keep waiting.
            if tasks and all(t.state in TERMINAL_STATES for t in tasks):
                return tasks
            time.sleep(poll)
        raise TimeoutError(f"job {job_id} not finished after {timeout:.0f}s: "
                           f"{[(t.job_id, t.state, t.fields.get('Reason')) for t in tasks]}"
                           f"\n--- slurmctld log tail ---\n{self.log_tail('slurmctld')}"
                           f"\n--- slurmd log tail ---\n{self.log_tail('slurmd')}")

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.root / "log" / f"{name}.log"
        if not path.is_file():
            return f"({path} missing)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # ------------------------------------------------------------------------------------------ life cycle
    def start(self, cpus: int = 2) -> None:
        root = self.root
        for d in ("munge", "state", "spool", "log"):
            (root / d).mkdir(parents=True, exist_ok=True)
        (root / "munge").chmod(0o711)  # munged wants its socket dir traversable by clients
        key = root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        sock = root / "munge" / "munge.sock"
        self._spawn("munged", ["munged", "--foreground", "--force", f"--key-file={key}", f"--socket={sock}",
                               f"--pid-file={root / 'munge' / 'munged.pid'}", f"--seed-file={root / 'munge' / 'seed'}",
                               f"--log-file={root / 'log' / 'munged.log'}"])
        self._wait_for(lambda: sock.exists(), 20, "munged socket")
        ctld_port, slurmd_port = _free_ports(2)
        host = self.node
        self.conf.write_text("\n".join([
            "ClusterName=trackforge-test",
            f"SlurmctldHost={host}(127.0.0.1)",
            f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={slurmd_port}",
            # Jobs run as the submitting user; the daemons run as root (the test runs as root).
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            # Private munged socket; cred_expire also sets how long a requeued job waits before it may start
            # again (default 120 s, too long for a test).
            f"AuthInfo=socket={sock},cred_expire=10",
            f"StateSaveLocation={root / 'state'}",
            f"SlurmdSpoolDir={root / 'spool'}",
            f"SlurmctldPidFile={root / 'slurmctld.pid'}",
            f"SlurmdPidFile={root / 'slurmd.pid'}",
            f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            # No cgroups in a container/VM: plain /proc process tracking, no task binding.
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "SchedulerType=sched/backfill",
            # Schedule every 2 s (default 60 s / 30 s): a requeued job becomes eligible again with no event
            # that would wake the scheduler, so it would otherwise sit PENDING until the next periodic pass.
            "SchedulerParameters=sched_interval=2,bf_interval=2",
            "MpiDefault=none",
            "SwitchType=switch/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            # No slurmdbd: finished jobs stay visible to `scontrol show job` for MinJobAge seconds and are
            # appended to a job completion file.
            "JobCompType=jobcomp/filetxt",
            f"JobCompLoc={root / 'log' / 'jobcomp.txt'}",
            "MinJobAge=3600",
            "MailProg=/bin/true",
            "ReturnToService=2",
            # Lightning ignores the SIGTERM of a requeue (it keeps training until SIGKILL): keep that short.
            "KillWait=3",
            "InactiveLimit=0",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=30",
            # Use the node definition below even if the machine has fewer cores than it declares.
            "SlurmdParameters=config_overrides",
            f"NodeName={host} NodeAddr=127.0.0.1 NodeHostname={host} CPUs={cpus} State=UNKNOWN",
            f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]))
        self._spawn("slurmctld", ["slurmctld", "-D", "-f", str(self.conf)])
        self._wait_for(lambda: self.run("scontrol", "ping", check=False).returncode == 0, 30, "slurmctld")
        self._spawn("slurmd", ["slurmd", "-D", "-f", str(self.conf)])
        self._wait_for(lambda: self.run("sinfo", "-h", "-o", "%T", check=False).stdout.strip() == "idle", 60,
                       "the node to become idle")

    def _spawn(self, name: str, cmd: list[str]) -> None:
        out = open(self.root / "log" / f"{name}.out", "wb")
        self.procs[name] = subprocess.Popen(cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)

    def _wait_for(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead:
                out = (self.root / "log" / f"{dead[0]}.out").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{dead[0]} exited ({self.procs[dead[0]].returncode}) while waiting for "
                                   f"{what}:\n{out}\n{self.log_tail(dead[0])}")
            if ready():
                return
            time.sleep(0.5)
        raise TimeoutError(f"timed out after {timeout}s waiting for {what}\n{self.log_tail('slurmctld')}\n"
                           f"{self.log_tail('slurmd')}")

    def stop(self) -> None:
        """Cancel every job, wait for them to go, then stop slurmd, slurmctld and munged (in that order)."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            self.run("scancel", "--full", "--user=root", check=False)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                left = self.run("squeue", "-h", "-o", "%i %T", check=False).stdout.split("\n")
                if not [ln for ln in left if ln.strip()]:
                    break
                time.sleep(0.5)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory) -> LocalSlurm:
    """A started local Slurm cluster (one node, 2 CPUs); torn down after the module, even on failure."""
    ensure_slurm()
    root = tmp_path_factory.mktemp("slurm")
    # Jobs inherit this environment: drop SLURM_* of any outer allocation (CI may itself run under Slurm).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_"))}
    env["PATH"] = env.get("PATH", "") + ":/usr/sbin:/sbin"
    env["SLURM_CONF"] = str(root / "slurm.conf")
    cluster = LocalSlurm(root=root, conf=root / "slurm.conf", node=socket.gethostname().split(".")[0], env=env)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
