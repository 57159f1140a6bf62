"""Determinism on CPU: the same config and seed run twice, in two separate processes (different
PYTHONHASHSEED), give bit-identical results — metrics.json equal except wall-time fields
(``train_time_s``), history.csv equal except ``epoch_time_s``, and the files without timing
(prepared arrays, teacher.pt, cache.pt, embeddings.npz) byte-identical."""

from __future__ import annotations

import json

import numpy as np

import _proc as P


def _chain(tmp, cfg):
    t = {m: tmp / "teachers" / m for m in ("a", "b")}
    cmds = [f"prepare -c {cfg}"]
    for m, d in t.items():
        cmds += [f"train-teacher -c {cfg} --modality {m} --seed 3 --out {d}",
                 f"cache-teacher -c {cfg} --teacher {d} --modality {m}"]
    cmds.append(f"train-student -c {cfg} --method g2d --fusion late --seed 3 --teacher a={t['a']} --teacher b={t['b']} "
                f"--out {tmp / 'student'}")
    return cmds, t


def test_two_runs_are_bit_identical(tmp_path):
    runs = []
    for k in (1, 2):
        d = tmp_path / f"run{k}"
        d.mkdir()
        cfg = P.write_cfg(d, train={"epochs": 4}, teacher={"epochs": 2}, g2d={"schedule": [1, 3]})
        cmds, teachers = _chain(d, cfg)
        r = P.run(["--chain", *cmds], PYTHONHASHSEED=str(k))
        assert r.returncode == 0, r.stderr
        runs.append((d, teachers))
    (a, ta), (b, tb) = runs

    # the only differences allowed: the wall-time fields
    for rel in ["student/metrics.json"] + [f"teachers/{m}/metrics.json" for m in ("a", "b")]:
        ma, mb = json.loads((a / rel).read_text()), json.loads((b / rel).read_text())
        assert set(ma) == set(mb)
        diff = sorted(k for k in ma if ma[k] != mb[k])
        assert set(diff) <= set(P.TIMING_FIELDS), f"{rel}: {diff} differ"
        assert ma["seed"] == 3
    for rel in ["student/history.csv"] + [f"teachers/{m}/history.csv" for m in ("a", "b")]:
        assert P.history_without_timing(a / rel) == P.history_without_timing(b / rel), rel
    # files that hold no timing are byte-identical
    for rel in ["teachers/a/teacher.pt", "teachers/b/teacher.pt", "teachers/a/cache.pt", "teachers/b/cache.pt",
                "student/ckpt/best.pt"]:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    for split in ("train", "val", "test"):
        for f in ("a.npy", "b.npy", "labels.npy", "ids.npy"):
            assert (a / "prep" / split / f).read_bytes() == (b / "prep" / split / f).read_bytes(), f"{split}/{f}"
    with np.load(a / "student/embeddings.npz") as x, np.load(b / "student/embeddings.npz") as y:
        for f in x.files:
            assert np.array_equal(x[f], y[f]), f
