"""Trainers: SMP gradient routing through real training steps, cached == online teacher outputs,
resume == uninterrupted, outputs on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from g2d.config import dataset_dirs
from g2d.data.prepared import PreparedDataset, read_meta
from g2d.data.registry import get_dataset
from g2d.methods import Batch, Stepper, get_method
from g2d.models.nets import build_student
from g2d.smp import confidences
from g2d.train.common import make_loader
from g2d.train.student import TeacherOutputs, train_student
from g2d.train.teacher import cache_teacher, train_teacher

QUIET = lambda *a, **k: None  # noqa: E731


def _teachers(cfg, tmp: Path, seed=0):
    out = {}
    for m in get_dataset(cfg["dataset"]["name"]).modalities:
        d = tmp / f"t_{m}"
        train_teacher(cfg, m, seed, d, log=QUIET)
        cache_teacher(cfg, d, m, log=QUIET)
        out[m] = d
    return out


def _grad_norms(model):
    enc = {m: sum(float(p.grad.abs().sum()) for p in model.encoders[m].parameters() if p.grad is not None)
           for m in model.modalities}
    fus = sum(float(p.grad.abs().sum()) for p in model.fusion.parameters() if p.grad is not None)
    return enc, fus


def _step_grads(cfg, method, teacher_logits, epochs):
    """Run real g2d training steps for the given epochs; return per-epoch (encoder grads, fusion grads, prio)."""
    spec = get_dataset(cfg["dataset"]["name"])
    _, prep = dataset_dirs(cfg)
    meta = read_meta(prep)
    mods = list(spec.modalities)
    torch.manual_seed(0)
    model = build_student(cfg, spec, meta, mods, "late")
    meth = get_method(method)(cfg, mods, "classification")
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    idx, x, y = next(iter(make_loader(PreparedDataset(prep, "train"), 16, False)))
    feats = {m: torch.zeros(16, model.encoders[m].out_dim) for m in mods}
    res = []
    for e in epochs:
        b = Batch(idx=idx, x=x, y=y, teacher_logits=teacher_logits(y), teacher_features=feats)
        b.teacher_conf = confidences(b.teacher_logits, y)
        meth.training_step(model, b, Stepper(opt), e)
        res.append((e, *_grad_norms(model), meth.scheduler.prioritized(e, b.teacher_conf)))
    return res


def _confident(y, n=3, good=True):
    z = torch.zeros(len(y), n)
    z[torch.arange(len(y)), y] = 5.0 if good else -5.0
    return z


def test_smp_two_modalities_routes_gradients(synth_cfg):
    # teacher of "b" confident, "a" not -> "a" is prioritized for epochs 0-1 (K = (2, 3))
    synth_cfg["g2d"]["schedule"] = [2, 3]
    run = _step_grads(synth_cfg, "g2d", lambda y: {"a": _confident(y, good=False), "b": _confident(y)}, range(5))
    for e, enc, fus, prio in run:
        assert fus > 0
        if e < 2:
            assert prio == "a" and enc["a"] > 0 and enc["b"] == 0.0
        else:
            assert prio is None and enc["a"] > 0 and enc["b"] > 0
    # swap the teachers -> the prioritized modality swaps
    run = _step_grads(synth_cfg, "g2d", lambda y: {"a": _confident(y), "b": _confident(y, good=False)}, range(2))
    for e, enc, fus, prio in run:
        assert prio == "b" and enc["b"] > 0 and enc["a"] == 0.0 and fus > 0


def test_smp_three_modalities_all_phases(synth3_cfg):
    tl = lambda y: {"a": _confident(y) * 0.5, "b": _confident(y, good=False), "c": _confident(y)}  # noqa: E731
    run = _step_grads(synth3_cfg, "smp", tl, range(4))
    expected_prio = {0: "b", 1: "a", 2: None, 3: None}
    for e, enc, fus, prio in run:
        assert prio == expected_prio[e] and fus > 0
        if prio is None:
            assert all(v > 0 for v in enc.values())
        else:
            assert enc[prio] > 0 and all(v == 0.0 for m, v in enc.items() if m != prio)


def test_cached_and_online_teacher_outputs_give_same_losses(synth_cfg, tmp_path):
    teachers = _teachers(synth_cfg, tmp_path)
    spec = get_dataset("synth2")
    _, prep = dataset_dirs(synth_cfg)
    meta = read_meta(prep)
    mods = list(spec.modalities)
    cached = TeacherOutputs.build(synth_cfg, teachers, mods, torch.device("cpu"), "cached", QUIET)
    online = TeacherOutputs.build(synth_cfg, teachers, mods, torch.device("cpu"), "online", QUIET)
    losses = {}
    for name, tout in (("cached", cached), ("online", online)):
        torch.manual_seed(0)
        model = build_student(synth_cfg, spec, meta, mods, "late")
        meth = get_method("g2d")(synth_cfg, mods, "classification")
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        loader = make_loader(PreparedDataset(prep, "train"), 16, True, seed=0)
        loader.sampler.set_epoch(0)
        vals = []
        for i, (idx, x, y) in enumerate(loader):
            if i == 4:
                break
            b = Batch(idx=idx, x=x, y=y)
            b.teacher_logits, b.teacher_features = tout.get("train", idx, x)
            b.teacher_conf = confidences(b.teacher_logits, y)
            logs = meth.training_step(model, b, Stepper(opt), 0)
            vals.append((logs["loss"], logs["loss_feature"], logs["loss_logit"]))
        losses[name] = vals
    assert len(losses["cached"]) == 4
    for c, o in zip(losses["cached"], losses["online"]):
        assert c == pytest.approx(o, abs=1e-5)
        assert c[1] > 0 and c[2] > 0  # distillation terms really active


def test_resume_gives_same_result_as_uninterrupted(synth_cfg, tmp_path):
    teachers = _teachers(synth_cfg, tmp_path)
    synth_cfg["train"]["epochs"] = 3
    full = train_student(synth_cfg, "g2d", "late", 0, teachers, tmp_path / "full", log=QUIET)
    # "interrupted" after epoch 1: a run that stopped there, then the same run resumed to 3 epochs
    synth_cfg["train"]["epochs"] = 1
    train_student(synth_cfg, "g2d", "late", 0, teachers, tmp_path / "resumed", log=QUIET)
    synth_cfg["train"]["epochs"] = 3
    messages = []
    resumed = train_student(synth_cfg, "g2d", "late", 0, teachers, tmp_path / "resumed", log=messages.append)
    assert any("resuming" in m for m in messages)
    for k in ("acc", "val_acc", "acc_a", "acc_b", "macro_f1", "best_epoch"):
        assert resumed[k] == full[k], k
    h_full = (tmp_path / "full" / "history.csv").read_text()
    h_res = (tmp_path / "resumed" / "history.csv").read_text()
    strip = lambda t: [l.rsplit(",", 1)[0] for l in t.splitlines()]  # noqa: E731  (drop epoch_time_s)
    assert strip(h_full) == strip(h_res)


def test_student_outputs_and_metrics(synth_cfg, tmp_path):
    teachers = _teachers(synth_cfg, tmp_path)
    out = tmp_path / "run"
    m = train_student(synth_cfg, "g2d", "concat", 1, teachers, out, log=QUIET)
    assert (out / "metrics.json").is_file() and (out / "history.csv").is_file() and (out / "embeddings.npz").is_file()
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["seed"] == 1 and saved["method"] == "g2d" and saved["fusion"] == "concat"
    for k in ("acc", "acc_a", "acc_b", "val_acc", "macro_f1", "teacher_acc_a", "teacher_acc_b"):
        assert 0.0 <= saved[k] <= 1.0, k
    import pandas as pd
    h = pd.read_csv(out / "history.csv")
    assert len(h) == 3
    # K=(1,2): epoch 0 prioritizes one modality (k in {0,1}), epochs 1-2 joint (all k = 1)
    assert set(h.loc[0, ["train_k_a", "train_k_b"]]) <= {0.0, 1.0} and h.loc[0, ["train_k_a", "train_k_b"]].sum() == 1.0
    assert (h.loc[1:, ["train_k_a", "train_k_b"]] == 1.0).all().all()
    for c in ("train_loss_feature", "train_loss_logit", "train_tconf_a", "val_align_a", "val_cratio_b"):
        assert c in h.columns
    assert (h["train_loss_feature"] > 0).all()


def test_cached_with_augmentation_is_refused(synth_cfg, tmp_path):
    from g2d.errors import ConfigError
    synth_cfg["dataset"]["augment"] = True
    synth_cfg["g2d"]["teacher_outputs"] = "cached"
    with pytest.raises(ConfigError, match="teacher_outputs"):
        train_student(synth_cfg, "g2d", "late", 0, {"a": tmp_path, "b": tmp_path}, tmp_path / "r", log=QUIET)


def test_non_finite_loss_stops_with_clear_error(synth_cfg, tmp_path):
    from g2d.errors import TrainingError
    synth_cfg["train"]["lr"] = 1e30
    with pytest.raises(TrainingError, match="non-finite loss"):
        train_student(synth_cfg, "joint", "late", 0, {}, tmp_path / "r", log=QUIET)
