"""Helpers for tests that run the real CLI in subprocesses (tests/_g2d_cli.py) and kill them."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, str(REPO / "tests" / "_g2d_cli.py")]

#: fields that are wall-clock times (the only ones allowed to differ between identical runs)
TIMING_FIELDS = ("train_time_s",)
TIMING_COLUMNS = ("epoch_time_s",)


def write_cfg(tmp: Path, name: str = "synth2", prepared: Path | None = None, **sections) -> Path:
    """A study config YAML for a tests' synthetic dataset; ``sections`` are merged per top-level key."""
    cfg = {
        "dataset": {"name": name, "raw_dir": str(tmp / "raw"), "prepared_dir": str(prepared or tmp / "prep")},
        "train": {"epochs": 6, "batch_size": 16, "lr": 0.05, "threads": 1},
        "g2d": {"schedule": [2, 4]},
        "study": {"seeds": [0]},
    }
    for k, v in sections.items():
        cfg.setdefault(k, {}).update(v)
    p = tmp / f"cfg_{name}.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def env(slow: float = 0.0, **extra) -> dict:
    e = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    e.pop("G2D_FAULT_SLOW", None)
    if slow:
        e["G2D_FAULT_SLOW"] = str(slow)
    e.update({k: str(v) for k, v in extra.items()})
    return e


def run(args: list[str], slow: float = 0.0, timeout: float = 600, **extra) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env=env(slow, **extra))


class Proc:
    """A CLI subprocess whose stderr is read line by line in the background."""

    def __init__(self, args: list[str], slow: float = 0.0):
        self.p = subprocess.Popen(CLI + list(args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                  cwd=REPO, env=env(slow))
        self.lines: list[str] = []
        self.q: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stderr:
            self.lines.append(line.rstrip("\n"))
            self.q.put(line)
        self.q.put(None)

    def wait_for(self, text: str, timeout: float = 120.0) -> bool:
        """Block until a stderr line contains ``text`` (True) or the process ends / times out (False)."""
        end = time.monotonic() + timeout
        if any(text in ln for ln in self.lines):
            return True
        while time.monotonic() < end:
            try:
                line = self.q.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                return False
            if line is None:
                return False
            if text in line:
                return True
        return False

    def kill(self) -> int:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGKILL)
        return self.p.wait(timeout=60)


def metrics_without_timing(path: Path) -> dict:
    m = json.loads(Path(path).read_text())
    for k in TIMING_FIELDS:
        m.pop(k, None)
    return m


def history_without_timing(path: Path) -> list[dict]:
    import csv
    with open(path) as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in TIMING_COLUMNS:
            r.pop(k, None)
    return rows
