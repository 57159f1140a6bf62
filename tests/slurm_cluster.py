"""A real, throwaway single-node SLURM cluster for tests (root only, no systemd).

Installs nothing: the Debian packages ``slurm-wlm munge`` must already be there
(``.ci/slurm-setup.sh`` installs them in CI). :class:`SlurmCluster` then

1. writes a fresh munge key into a private temp dir and starts ``munged`` on its own
   socket (so a system munged, if any, is left alone);
2. writes ``/etc/slurm/slurm.conf`` and ``/etc/slurm/gres.conf`` (a file already there is
   moved aside and put back on teardown). They must live in ``/etc/slurm``: the Snakemake
   SLURM jobstep drops ``SLURM_*`` variables, so ``SLURM_CONF`` cannot point elsewhere;
3. starts ``slurmctld -D`` and ``slurmd -D`` as child processes (own session, logs and
   state in the temp dir) and waits until ``sinfo`` reports the node ``idle``;
4. on :meth:`stop`, cancels every job, kills the three daemons it started (by pid) and
   restores ``/etc/slurm``.

The node is this machine (``slurmd -C`` gives CPUs/RealMemory) with one fake GPU
(``gres.conf``: ``Name=gpu File=/dev/null``), ``select/cons_tres``, no accounting
(no slurmdbd, so Snakemake must poll with ``--slurm-status-command squeue``; ``MinJobAge``
is 600 s so finished jobs stay visible to ``squeue``).

Use it as a context manager, or by hand for debugging::

    sudo python tests/slurm_cluster.py          # start, print the conf, wait for Ctrl-C
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ETC = Path("/etc/slurm")
CONF = ETC / "slurm.conf"
GRES_CONF = ETC / "gres.conf"
MARKER = "# written by g2d tests/slurm_cluster.py"
DAEMONS = ("munged", "slurmctld", "slurmd")
NEEDED_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "scancel", "srun")


def unavailable_reason() -> str | None:
    """Why a local SLURM cluster cannot be started here, or None when it can."""
    if os.name != "posix" or not hasattr(os, "geteuid"):
        return "local SLURM cluster needs Linux"
    if os.geteuid() != 0:
        return "local SLURM cluster needs root (slurmctld/slurmd/munged run as root; CI runs as root)"
    missing = [b for b in NEEDED_BINARIES if shutil.which(b, path=_sbin_path()) is None]
    if missing:
        how = "run .ci/slurm-setup.sh (apt-get install slurm-wlm munge)"
        if shutil.which("apt-get") is None:
            how = "apt-get is absent on this machine, so the Debian packages slurm-wlm/munge cannot be installed"
        return f"SLURM binaries missing: {', '.join(missing)}; {how}"
    if CONF.exists() and MARKER not in CONF.read_text(errors="replace"):
        try:
            ping = subprocess.run([_which("scontrol"), "ping"], capture_output=True, text=True, timeout=15).stdout
        except (OSError, subprocess.TimeoutExpired):
            ping = ""
        if "UP" in ping:
            return f"a SLURM controller configured by {CONF} is already running here; not replacing it"
    return None


def _sbin_path() -> str:
    parts = os.environ.get("PATH", "").split(os.pathsep)
    for extra in ("/usr/sbin", "/sbin", "/usr/bin"):
        if extra not in parts:
            parts.append(extra)
    return os.pathsep.join(parts)


def _which(name: str) -> str:
    path = shutil.which(name, path=_sbin_path())
    if path is None:
        raise FileNotFoundError(name)
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _detect_node() -> dict[str, int]:
    """CPUs and RealMemory (MB) of this machine, as slurmd itself sees them."""
    out = subprocess.run([_which("slurmd"), "-C"], capture_output=True, text=True, timeout=30).stdout
    vals = dict(re.findall(r"(\w+)=(\S+)", out.splitlines()[0] if out else ""))
    cpus = int(vals.get("CPUs", os.cpu_count() or 1))
    mem = int(vals.get("RealMemory", 0))
    if not mem:
        with open("/proc/meminfo") as fh:
            mem = int(fh.readline().split()[1]) // 1024
    # a little under the real value: without SlurmdParameters=config_overrides a node
    # configured with more memory than slurmd finds is drained ("Low RealMemory")
    return {"cpus": cpus, "mem_mb": max(256, int(mem * 0.9))}


def _kill_stale() -> None:
    """Kill daemons left by an earlier run of this helper that was itself killed.

    Only pids recorded by this helper (in the ``StateDir`` comment of a slurm.conf it
    wrote) are signalled, and only if the process still has the expected name.
    """
    if not CONF.exists():
        return
    text = CONF.read_text(errors="replace")
    if MARKER not in text:
        return
    m = re.search(r"^# StateDir=(\S+)", text, re.M)
    state = Path(m.group(1)) if m else None
    if state is not None:
        for name in DAEMONS:
            pidfile = state / f"{name}.pid"
            try:
                pid = int(pidfile.read_text().split()[0])
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
            except (OSError, ValueError, IndexError):
                continue
            if comm == name:
                os.kill(pid, signal.SIGKILL)
    # put back what that run had moved aside, else remove its files
    for f in (CONF, GRES_CONF):
        bak = state / f"{f.name}.orig" if state is not None else None
        if bak is not None and bak.is_file():
            shutil.copy2(bak, f)
        elif f.exists() and MARKER in f.read_text(errors="replace"):
            f.unlink()
    if state is not None and state.name.startswith("g2d-slurm-"):
        shutil.rmtree(state, ignore_errors=True)


class SlurmCluster:
    """One-node SLURM 22.05 on this machine. ``with SlurmCluster() as c: ...``"""

    def __init__(self, *, gpus: int = 1, min_job_age: int = 600,
                 partitions: tuple[str, ...] = ("debug",), real_memory_mb: int | None = None,
                 cluster_name: str = "g2dtest") -> None:
        """``partitions``: all contain the one node; the first is the default.
        ``real_memory_mb``: advertise at least this much memory (memory is not enforced:
        task/none), so rules that ask for more than this machine has can still be scheduled."""
        self.gpus = gpus
        self.min_job_age = min_job_age
        self.partitions = tuple(partitions)
        self.partition = self.partitions[0]
        self.real_memory_mb = real_memory_mb
        self.cluster_name = cluster_name
        self.nodename = socket.gethostname().split(".")[0]
        self.state_dir: Path | None = None
        self._procs: dict[str, subprocess.Popen] = {}
        self._backups: dict[Path, Path] = {}
        self._created_etc = False
        self._started = False

    # --- paths -------------------------------------------------------------------------
    def path(self, name: str) -> Path:
        assert self.state_dir is not None, "cluster not started"
        return self.state_dir / name

    @property
    def ctld_log(self) -> Path:
        return self.path("slurmctld.log")

    @property
    def slurmd_log(self) -> Path:
        return self.path("slurmd.log")

    # --- config ------------------------------------------------------------------------
    def slurm_conf(self) -> str:
        node = _detect_node()
        self.cpus, self.mem_mb = node["cpus"], max(node["mem_mb"], self.real_memory_mb or 0)
        s = self.state_dir
        gres = f" Gres=gpu:{self.gpus}" if self.gpus else ""
        return f"""{MARKER}
# StateDir={s}
ClusterName={self.cluster_name}
SlurmctldHost={self.nodename}(127.0.0.1)
SlurmctldPort={self.ctld_port}
SlurmdPort={self.slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={s}/munge.socket
StateSaveLocation={s}/ctld-state
SlurmdSpoolDir={s}/slurmd-spool
SlurmctldPidFile={s}/slurmctld.pid
SlurmdPidFile={s}/slurmd.pid
SlurmctldLogFile={s}/slurmctld.log
SlurmdLogFile={s}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SlurmdParameters=config_overrides
GresTypes=gpu
ReturnToService=2
MinJobAge={self.min_job_age}
KillWait=5
InactiveLimit=0
Waittime=0
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName={self.nodename} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.mem_mb}{gres} State=UNKNOWN
""" + "".join(
            f"PartitionName={p} Nodes={self.nodename} Default={'YES' if i == 0 else 'NO'} MaxTime=INFINITE State=UP\n"
            for i, p in enumerate(self.partitions))

    def gres_conf(self) -> str:
        # File=/dev/null: a gpu GRES needs a device file; nothing is ever opened
        return f"{MARKER}\nAutoDetect=off\nNodeName={self.nodename} Name=gpu File=/dev/null\n" if self.gpus else f"{MARKER}\n"

    # --- lifecycle ---------------------------------------------------------------------
    def start(self, timeout: float = 90.0) -> "SlurmCluster":
        reason = unavailable_reason()
        if reason:
            raise RuntimeError(reason)
        _kill_stale()
        self._started = True
        atexit.register(self.stop)
        self.state_dir = Path(tempfile.mkdtemp(prefix="g2d-slurm-"))
        os.chmod(self.state_dir, 0o755)
        for sub in ("ctld-state", "slurmd-spool"):
            self.path(sub).mkdir()
        self.ctld_port, self.slurmd_port = _free_port(), _free_port()
        while self.slurmd_port == self.ctld_port:
            self.slurmd_port = _free_port()

        # munge: own key, socket, pid, log, seed
        key = self.path("munge.key")
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self._spawn("munged", [_which("munged"), "--foreground", "--force",
                               f"--key-file={key}", f"--socket={self.path('munge.socket')}",
                               f"--pid-file={self.path('munged.pid')}",
                               f"--log-file={self.path('munged.log')}",
                               f"--seed-file={self.path('munged.seed')}"])
        self._wait(lambda: self.path("munge.socket").exists(), 20, "munged socket")

        # /etc/slurm
        if not ETC.exists():
            ETC.mkdir(parents=True)
            self._created_etc = True
        for f in (CONF, GRES_CONF):
            if f.exists():
                bak = self.path(f.name + ".orig")
                shutil.copy2(f, bak)
                self._backups[f] = bak
        CONF.write_text(self.slurm_conf())
        GRES_CONF.write_text(self.gres_conf())
        shutil.copy2(CONF, self.path("slurm.conf"))

        self._spawn("slurmctld", [_which("slurmctld"), "-D", "-c", "-f", str(CONF)])
        self._wait(lambda: self._run(["scontrol", "ping"]).stdout.find("UP") >= 0, timeout / 2,
                   "slurmctld to answer scontrol ping")
        self._spawn("slurmd", [_which("slurmd"), "-D", "-f", str(CONF), "-N", self.nodename])
        self._wait(lambda: self.node_state() == "idle", timeout, "node idle in sinfo")
        return self

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        try:
            atexit.unregister(self.stop)
        except Exception:
            pass
        if self._procs.get("slurmctld") and self._procs["slurmctld"].poll() is None:
            self._run(["scancel", "--quiet", "--full", "--user", "root"], check=False)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and self._run(
                    ["squeue", "-h", "-t", "RUNNING,COMPLETING,PENDING", "-o", "%i"]).stdout.strip():
                time.sleep(0.5)
        for name in ("slurmd", "slurmctld", "munged"):
            p = self._procs.pop(name, None)
            if p is None or p.poll() is not None:
                continue
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        for f in (CONF, GRES_CONF):
            if f in self._backups:
                shutil.copy2(self._backups.pop(f), f)
            elif f.exists() and MARKER in f.read_text(errors="replace"):
                f.unlink()
        if self._created_etc:
            try:
                ETC.rmdir()
            except OSError:
                pass
        if self.state_dir and os.environ.get("G2D_KEEP_SLURM_STATE") != "1":
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> "SlurmCluster":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- helpers -----------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.path(f"{name}.stdout"), "wb")
        self._procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self.path(f"{name}.pid").write_text(f"{self._procs[name].pid}\n")

    def _run(self, argv: list[str], check: bool = False, timeout: float = 30) -> subprocess.CompletedProcess:
        argv = [_which(argv[0]), *argv[1:]]
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=check)
        except subprocess.TimeoutExpired as e:
            return subprocess.CompletedProcess(argv, 124, e.stdout or "", e.stderr or "")

    def node_state(self) -> str:
        """``idle``, ``mix``, ``drain``... (one line per partition in sinfo; all the same node)."""
        states = set(self._run(["sinfo", "-h", "-N", "-n", self.nodename, "-o", "%t"]).stdout.split())
        return ",".join(sorted(states))

    def _wait(self, cond, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, p in self._procs.items():
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited with {p.returncode} while waiting for {what}:\n"
                                       + self.diagnostics())
            try:
                if cond():
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}:\n" + self.diagnostics())

    def diagnostics(self, tail: int = 40) -> str:
        """Tail of every daemon log, for assertion messages."""
        out = []
        if self.state_dir is None:
            return "(not started)"
        for f in sorted(self.state_dir.glob("*.log")) + sorted(self.state_dir.glob("*.stdout")):
            lines = f.read_text(errors="replace").splitlines()[-tail:]
            out.append(f"==> {f} <==\n" + "\n".join(lines))
        if self._procs.get("slurmctld") and self._procs["slurmctld"].poll() is None:
            out.append("==> sinfo -N -l <==\n" + self._run(["sinfo", "-N", "-l"]).stdout)
            out.append("==> squeue <==\n" + self._run(["squeue", "-t", "all"]).stdout)
        return "\n".join(out)


if __name__ == "__main__":  # manual debugging: start, show, wait for Ctrl-C
    why = unavailable_reason()
    if why:
        raise SystemExit(f"cannot start: {why}")
    with SlurmCluster() as c:
        print(CONF.read_text())
        print(c._run(["sinfo", "-N", "-l"]).stdout)
        print(f"state dir: {c.state_dir}; Ctrl-C to stop")
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
