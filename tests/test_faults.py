"""Fault injection on the real CLI: SIGKILL at seeded random points of `g2d train-student`,
`g2d prepare` and `g2d cache-teacher` (run as subprocesses through tests/_g2d_cli.py, with slowed
writes so that a kill lands mid-write), and a full disk (a 1 MiB tmpfs when mounting is possible,
else skipped; plus monkeypatched ENOSPC writes, always).

Invariants: a rerun after a kill finishes with metrics identical to an uninterrupted run; an
output is either absent or complete (never half-written) and a temp file is never consumed; a
full disk gives one line `g2d: <file>: ...` and exit status 2.
"""

from __future__ import annotations

import errno
import random
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import _proc as P
from conftest import _register_synth

SEED_RNG = 20250611  # the kill points are drawn from this seed


def _teacher_args(teachers: dict) -> list[str]:
    return [a for m, d in teachers.items() for a in ("--teacher", f"{m}={d}")]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Prepared synth2 + trained and cached teachers (a, b), all made by one CLI process."""
    tmp = tmp_path_factory.mktemp("faults")
    cfg = P.write_cfg(tmp, teacher={"epochs": 2})
    teachers = {m: tmp / "teachers" / m for m in ("a", "b")}
    chain = [f"prepare -c {cfg}"]
    for m, d in teachers.items():
        chain += [f"train-teacher -c {cfg} --modality {m} --seed 0 --out {d}",
                  f"cache-teacher -c {cfg} --teacher {d} --modality {m}"]
    r = P.run(["--chain", *chain])
    assert r.returncode == 0, r.stderr
    _register_synth("synth2", {"a": 12, "b": 10})
    return {"tmp": tmp, "cfg": cfg, "teachers": teachers}


def _no_temps(d: Path) -> list[Path]:
    return [p for p in Path(d).rglob("*") if ".tmp" in p.name or ".old-" in p.name]


def test_sigkill_train_student_then_rerun_gives_identical_metrics(study, tmp_path):
    cfg, teachers = study["cfg"], study["teachers"]
    base = ["train-student", "-c", str(cfg), "--method", "g2d", "--fusion", "late", "--seed", "0",
            *_teacher_args(teachers)]
    ref = tmp_path / "ref"
    r = P.run(base + ["--out", str(ref)])
    assert r.returncode == 0, r.stderr
    rng = random.Random(SEED_RNG)
    interrupted = 0
    for k in range(3):
        out = tmp_path / f"killed{k}"
        delay = rng.uniform(0.0, 1.2)
        p = P.Proc(base + ["--out", str(out)], slow=0.2)  # >= 1.2 s of checkpoint writes after the first
        assert p.wait_for("[fault] writing"), "\n".join(p.lines)  # the first checkpoint write: training runs
        time.sleep(delay)
        rc = p.kill()
        interrupted += rc == -9
        r = P.run(base + ["--out", str(out)])
        assert r.returncode == 0, r.stderr
        assert P.metrics_without_timing(out / "metrics.json") == P.metrics_without_timing(ref / "metrics.json"), \
            f"kill point {k} ({delay:.2f}s after the first write)"
        assert P.history_without_timing(out / "history.csv") == P.history_without_timing(ref / "history.csv")
        with np.load(out / "embeddings.npz") as a, np.load(ref / "embeddings.npz") as b:
            assert sorted(a.files) == sorted(b.files)
            for f in a.files:
                assert np.array_equal(a[f], b[f]), f
        assert _no_temps(out) == [], "temp files of the killed run were not cleaned up"
    assert interrupted >= 1, "no kill landed while the run was still going (machine too slow/fast?)"


def _prepared_ok(d: Path) -> dict:
    """The prepared dataset at ``d`` is complete: meta readable, every split's arrays load with N rows."""
    from g2d.data.prepared import PreparedDataset, read_meta
    meta = read_meta(d)
    for split, n in meta["splits"].items():
        ds = PreparedDataset(d, split)
        assert len(ds) == n and all(a.shape[0] == n for a in ds.arrays.values())
        _, x, _ = ds[n - 1]
        assert all(torch.isfinite(v).all() for v in x.values())
    return meta


def _same_arrays(a: Path, b: Path) -> None:
    for split in ("train", "val", "test"):
        for f in sorted(p.name for p in (a / split).iterdir()):
            assert np.array_equal(np.load(a / split / f), np.load(b / split / f)), f"{split}/{f}"


def test_sigkill_prepare_never_exposes_a_partial_dataset(tmp_path):
    rng = random.Random(SEED_RNG + 1)
    prep = tmp_path / "prep"
    cfg = P.write_cfg(tmp_path, prepared=prep)
    ref = tmp_path / "ref"
    (tmp_path / "r").mkdir()
    assert P.run(["prepare", "-c", str(P.write_cfg(tmp_path / "r", prepared=ref))]).returncode == 0

    # (a) the first build is killed mid-write: the output dir must not exist at all
    p = P.Proc(["prepare", "-c", str(cfg)], slow=0.15)
    assert p.wait_for("[fault] writing"), "\n".join(p.lines)
    time.sleep(rng.uniform(0.0, 0.6))
    assert p.kill() == -9
    assert not prep.exists(), "a killed first prepare left a (partial) output directory"
    assert list(tmp_path.glob("prep.tmp-*")), "expected the killed run's temp dir"
    r = P.run(["prepare", "-c", str(cfg)])
    assert r.returncode == 0, r.stderr
    _prepared_ok(prep)
    _same_arrays(prep, ref)
    assert not list(tmp_path.glob("prep.tmp-*")) and not list(tmp_path.glob("prep.old-*")), "stale temp dir kept"

    # (b) a rebuild (params changed) is killed: the previous complete dataset stays in place
    old_meta = _prepared_ok(prep)
    (tmp_path / "c2").mkdir()
    cfg2 = P.write_cfg(tmp_path / "c2", prepared=prep, dataset={"params": {"seed": 1}})
    p = P.Proc(["prepare", "-c", str(cfg2)], slow=0.15)
    assert p.wait_for("[fault] writing"), "\n".join(p.lines)
    time.sleep(rng.uniform(0.0, 0.6))
    p.kill()
    assert _prepared_ok(prep)["params_hash"] == old_meta["params_hash"]  # old one, complete
    r = P.run(["prepare", "-c", str(cfg2)])
    assert r.returncode == 0 and "stale" in r.stderr, r.stderr  # detected as stale and rebuilt
    assert _prepared_ok(prep)["params_hash"] != old_meta["params_hash"]
    assert not list(tmp_path.glob("prep.tmp-*")) and not list(tmp_path.glob("prep.old-*"))


def test_sigkill_cache_teacher_never_exposes_a_partial_cache(study, tmp_path):
    from g2d.config import load_config
    from g2d.train.common import safe_load
    from g2d.train.student import TeacherOutputs
    rng = random.Random(SEED_RNG + 2)
    cfg = study["cfg"]
    ref = safe_load(study["teachers"]["a"] / "cache.pt", "g2d.teacher_cache")
    for k in range(2):
        tdir = tmp_path / f"t{k}"
        tdir.mkdir()
        for f in ("teacher.pt", "metrics.json"):
            shutil.copy(study["teachers"]["a"] / f, tdir / f)
        p = P.Proc(["cache-teacher", "-c", str(cfg), "--teacher", str(tdir), "--modality", "a"], slow=0.6)
        assert p.wait_for("[fault] writing"), "\n".join(p.lines)
        time.sleep(rng.uniform(0.0, 0.5))
        assert p.kill() == -9
        assert not (tdir / "cache.pt").exists(), "half-written cache.pt visible"
        assert list(tdir.glob(".cache.pt.tmp-*")), "expected the killed write's temp file"
        if k == 0:  # a consumer (the student trainer) rebuilds instead of reading the temp file
            msgs = []
            c = load_config(cfg)
            tout = TeacherOutputs.build(c, {"a": tdir}, ["a"], torch.device("cpu"), "cached", log=msgs.append)
            assert any("missing or stale" in m for m in msgs)
            assert torch.equal(tout.caches["a"]["train_logits"], ref["train_logits"])
        else:  # or the CLI is simply run again
            r = P.run(["cache-teacher", "-c", str(cfg), "--teacher", str(tdir), "--modality", "a"])
            assert r.returncode == 0, r.stderr
        got = safe_load(tdir / "cache.pt", "g2d.teacher_cache")
        for key in ("train_logits", "train_features", "val_logits", "test_features"):
            assert torch.equal(got[key], ref[key]), key
        assert _no_temps(tdir) == []


# ---- disk full ------------------------------------------------------------------------------------

@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 1 MiB tmpfs (needs root / CAP_SYS_ADMIN; skipped otherwise)."""
    d = tmp_path / "full"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(d)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode}); monkeypatched ENOSPC tests cover it")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


def _one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert "Traceback" not in stderr, stderr
    errs = [ln for ln in lines if ln.startswith("g2d: ")]
    assert len(errs) == 1 and lines[-1] == errs[0], stderr
    return errs[0]


def test_disk_full_prepare_on_tmpfs(tiny_tmpfs, tmp_path):
    prep = tiny_tmpfs / "prep"
    cfg = P.write_cfg(tmp_path, name="synthbig", prepared=prep)  # ~2 MB of arrays for a 1 MiB disk
    r = P.run(["prepare", "-c", str(cfg)])
    assert r.returncode == 2, (r.returncode, r.stderr)  # not a SIGBUS (-7) from a memory-mapped write
    line = _one_error_line(r.stderr)
    assert str(tiny_tmpfs) in line and "No space left on device" in line, line
    assert list(tiny_tmpfs.iterdir()) == [], "partial prepared data left on the full disk"


def test_disk_full_cache_teacher_on_tmpfs(tiny_tmpfs, study):
    filler = tiny_tmpfs / "filler"
    with open(filler, "wb") as f:  # leave ~4 KiB free
        try:
            f.write(b"\0" * (1024 * 1024 - 4096))
        except OSError:
            pass
    out = tiny_tmpfs / "cache.pt"
    r = P.run(["cache-teacher", "-c", str(study["cfg"]), "--teacher", str(study["teachers"]["a"]),
               "--modality", "a", "--out", str(out)])
    assert r.returncode == 2, r.stderr
    line = _one_error_line(r.stderr)
    assert line.startswith(f"g2d: {out}: cannot write") and "No space left on device" in line, line
    assert sorted(p.name for p in tiny_tmpfs.iterdir()) == ["filler"]


def _enospc(*a, **k):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_monkeypatched_cache_write(study, tmp_path, monkeypatch, capsys):
    from g2d.cli import main
    import g2d.train.common as common
    monkeypatch.setattr(common.torch, "save", _enospc)
    out = tmp_path / "cache.pt"
    rc = main(["cache-teacher", "-c", str(study["cfg"]), "--teacher", str(study["teachers"]["a"]),
               "--modality", "a", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert _one_error_line(err) == f"g2d: {out}: cannot write (No space left on device)"
    assert list(tmp_path.iterdir()) == []


def test_disk_full_monkeypatched_prepare_write(tmp_path, monkeypatch, capsys):
    from g2d.cli import main
    _register_synth("synth2", {"a": 12, "b": 10})
    prep = tmp_path / "prep"
    cfg = P.write_cfg(tmp_path, prepared=prep)
    real_save = np.save

    def save(file, arr, *a, **k):
        if str(file).endswith("ids.npy"):
            raise OSError(errno.ENOSPC, "No space left on device", str(file))
        return real_save(file, arr, *a, **k)

    monkeypatch.setattr(np, "save", save)
    rc = main(["prepare", "-c", str(cfg)])
    line = _one_error_line(capsys.readouterr().err)
    assert rc == 2
    assert line.startswith(f"g2d: {tmp_path}/prep.tmp-") and line.endswith(
        "train/ids.npy: cannot write the prepared dataset (No space left on device)"), line
    assert not prep.exists() and not list(tmp_path.glob("prep.tmp-*"))
