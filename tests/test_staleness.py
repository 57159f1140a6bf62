"""Checkpoints, teacher caches and prepared datasets carry schema/version and the hashes they were
made from; anything made from a different config, teacher or dataset is detected and rebuilt,
never silently reused."""

from __future__ import annotations

import json
import os

import pytest
import torch

from g2d.config import dataset_dirs
from g2d.data.pipeline import prepare, prepared_hash
from g2d.data.prepared import FORMAT_VERSION, PreparedDataset, read_meta
from g2d.errors import DataError
from g2d.train.common import CKPT_VERSION, safe_load
from g2d.train.student import TeacherOutputs, train_student
from g2d.train.teacher import cache_teacher, data_hash, teacher_file_hash, train_teacher

QUIET = lambda *a, **k: None  # noqa: E731


def _teacher(cfg, d, m="a"):
    train_teacher(cfg, m, 0, d, log=QUIET)
    return d


# ---- prepared dataset ---------------------------------------------------------------------------------

def test_prepared_meta_carries_format_and_params_hash(synth_cfg):
    _, prep = dataset_dirs(synth_cfg)
    meta = read_meta(prep)
    assert meta["format_version"] == FORMAT_VERSION and meta["params_hash"] == prepared_hash(synth_cfg)


def test_prepare_reuses_when_unchanged_and_rebuilds_when_a_param_changes(synth_cfg):
    _, prep = dataset_dirs(synth_cfg)
    msgs = []
    stamp = os.stat(prep / "meta.json").st_mtime_ns
    x0 = PreparedDataset(prep, "train").arrays["a"][:5].copy()
    prepare(synth_cfg, log=msgs.append)
    assert any("up to date" in m for m in msgs) and os.stat(prep / "meta.json").st_mtime_ns == stamp

    synth_cfg["dataset"]["params"] = {"seed": 1}
    msgs.clear()
    prepare(synth_cfg, log=msgs.append)
    assert any("stale (params changed); rebuilding" in m for m in msgs)
    meta = read_meta(prep)
    assert meta["params_hash"] == prepared_hash(synth_cfg)
    assert not (PreparedDataset(prep, "train").arrays["a"][:5] == x0).all()


def test_prepare_rebuilds_over_a_corrupt_or_foreign_meta(synth_cfg):
    _, prep = dataset_dirs(synth_cfg)
    (prep / "meta.json").write_text("{ not json")
    msgs = []
    prepare(synth_cfg, log=msgs.append)
    assert any("rebuilding" in m for m in msgs) and read_meta(prep)["params_hash"] == prepared_hash(synth_cfg)
    meta = json.loads((prep / "meta.json").read_text())
    meta["format_version"] = FORMAT_VERSION + 1
    (prep / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="format_version"):
        read_meta(prep)


# ---- checkpoints and caches carry schema / version / hashes --------------------------------------------

def test_checkpoints_and_caches_carry_schema_version_and_hashes(synth_cfg, tmp_path):
    d = _teacher(synth_cfg, tmp_path / "t")
    cache_teacher(synth_cfg, d, "a", log=QUIET)
    _, prep = dataset_dirs(synth_cfg)
    for f, schema in (("teacher.pt", "g2d.teacher"), ("cache.pt", "g2d.teacher_cache"),
                      ("ckpt/last.pt", "g2d.checkpoint"), ("ckpt/best.pt", "g2d.weights")):
        ck = safe_load(d / f, schema)
        assert ck["version"] == CKPT_VERSION, f
        assert ck.get("config_hash") or ck.get("teacher_hash"), f
    c = safe_load(d / "cache.pt", "g2d.teacher_cache")
    assert c["data_hash"] == data_hash(prep) and c["teacher_file"] == teacher_file_hash(d / "teacher.pt")
    with pytest.raises(DataError, match="not a g2d.teacher_cache file"):
        safe_load(d / "teacher.pt", "g2d.teacher_cache")
    bad = dict(safe_load(d / "cache.pt", "g2d.teacher_cache"), version=CKPT_VERSION + 1)
    torch.save(bad, tmp_path / "old.pt")
    with pytest.raises(DataError, match="re-create it"):
        safe_load(tmp_path / "old.pt", "g2d.teacher_cache")


# ---- teacher cache: a retrained teacher or changed data is never read from an old cache -----------------

def _build(cfg, d, msgs):
    return TeacherOutputs.build(cfg, {"a": d}, ["a"], torch.device("cpu"), "cached", log=msgs.append)


def test_cache_rebuilt_after_teacher_retrained_with_the_same_config_hash(synth_cfg, tmp_path):
    """teacher.epochs is not part of the teacher's config hash (extending a run resumes it), so the
    cache must also be keyed by the teacher file itself."""
    synth_cfg["teacher"]["epochs"] = 1
    d = _teacher(synth_cfg, tmp_path / "t")
    cache_teacher(synth_cfg, d, "a", log=QUIET)
    old = safe_load(d / "cache.pt", "g2d.teacher_cache")
    old_hash = safe_load(d / "teacher.pt", "g2d.teacher")["config_hash"]

    synth_cfg["teacher"]["epochs"] = 3  # retrain: resumes and trains 2 more epochs -> new weights, same hash
    _teacher(synth_cfg, d)
    assert safe_load(d / "teacher.pt", "g2d.teacher")["config_hash"] == old_hash
    msgs = []
    tout = _build(synth_cfg, d, msgs)
    assert any("missing or stale teacher cache; rebuilding" in m for m in msgs), msgs
    new = safe_load(d / "cache.pt", "g2d.teacher_cache")
    assert new["teacher_file"] == teacher_file_hash(d / "teacher.pt") != old["teacher_file"]
    assert not torch.equal(new["train_logits"], old["train_logits"])
    assert torch.equal(tout.caches["a"]["train_logits"], new["train_logits"])
    msgs.clear()
    _build(synth_cfg, d, msgs)  # now fresh: reused
    assert not any("rebuilding" in m for m in msgs)


def test_cache_rebuilt_after_teacher_config_changed(synth_cfg, tmp_path):
    d = _teacher(synth_cfg, tmp_path / "t")
    cache_teacher(synth_cfg, d, "a", log=QUIET)
    synth_cfg["teacher"]["lr"] = 0.01  # a different teacher config: the teacher restarts, hash changes
    msgs = []
    train_teacher(synth_cfg, "a", 0, d, log=msgs.append)
    assert any("config changed since this checkpoint" in m for m in msgs)
    msgs.clear()
    cache_teacher(synth_cfg, d, "a", log=msgs.append)  # the CLI path (g2d cache-teacher)
    assert any("stale (teacher or data changed); rebuilding" in m for m in msgs), msgs
    assert safe_load(d / "cache.pt", "g2d.teacher_cache")["teacher_hash"] == \
        safe_load(d / "teacher.pt", "g2d.teacher")["config_hash"]


def test_cache_rebuilt_after_the_prepared_data_changed(synth_cfg, tmp_path):
    d = _teacher(synth_cfg, tmp_path / "t")
    cache_teacher(synth_cfg, d, "a", log=QUIET)
    old = safe_load(d / "cache.pt", "g2d.teacher_cache")
    synth_cfg["dataset"]["params"] = {"seed": 5}
    prepare(synth_cfg, log=QUIET)  # same shapes, different samples
    msgs = []
    _build(synth_cfg, d, msgs)
    assert any("rebuilding" in m for m in msgs)
    new = safe_load(d / "cache.pt", "g2d.teacher_cache")
    assert new["data_hash"] != old["data_hash"] and not torch.equal(new["train_features"], old["train_features"])


def test_student_checkpoint_of_another_config_is_not_resumed(synth_cfg, tmp_path):
    synth_cfg["train"]["epochs"] = 1
    train_student(synth_cfg, "joint", "late", 0, {}, tmp_path / "s", log=QUIET)
    synth_cfg["train"]["lr"] = 0.01
    msgs = []
    train_student(synth_cfg, "joint", "late", 0, {}, tmp_path / "s", log=msgs.append)
    assert any("config changed since this checkpoint" in m and "starting fresh" in m for m in msgs), msgs
