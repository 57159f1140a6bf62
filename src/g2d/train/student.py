"""Multimodal student training with any registered method (joint, UMT, SMP, G2D, OGM-GE, ...).

Teacher outputs come from the per-teacher caches (``cache.pt``: logits + features per sample
index, computed once in eval mode) when the data pipeline is deterministic, or from running the
teachers online on each batch. ``g2d.teacher_outputs``: ``auto`` = cached unless training-time
augmentation is on; ``cached`` with augmentation is refused (cached outputs of un-augmented
inputs must never be mixed with augmented inputs).

Outputs in ``out_dir``: ``metrics.json`` (test metrics of the best-on-validation epoch, per-modality
accuracies, teacher accuracies, seed), ``history.csv`` (per-epoch loss terms, accuracies, teacher
confidences s_m, coefficients k_m, feature alignment, confidence ratios), ``embeddings.npz``
(student per-modality test features, for the modality-gap figure), checkpoints under ``ckpt/``.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from .. import metrics as M
from ..config import RUN_HASH_EXCLUDE, config_hash, dataset_dirs
from ..data.prepared import read_meta
from ..data.registry import get_dataset
from ..errors import ConfigError, DataError, G2DError
from ..methods import Batch, Stepper, get_method
from ..models.nets import build_student, num_outputs
from ..smp import confidences
from .common import apply_threads, autocast_factory, move_batch, resolve_device, safe_load, seed_everything, write_json
from .evaluate import collect_multimodal, task_metrics
from .loop import fit, load_best_weights
from .teacher import (_loaders, _target_scale, cache_is_fresh, cache_teacher, data_hash, load_teacher,
                      make_optimizer, teacher_file_hash)

__all__ = ["train_student", "student_step", "TeacherOutputs", "resolve_modalities", "student_hash"]

STUDENT_KEYS = ("dataset.name", "dataset.params", "dataset.augment", "model", "train", "g2d", "ogm", "methods")


def resolve_modalities(cfg: dict, meta: dict, modalities=None) -> list[str]:
    # default order: the dataset's declared modality order (meta.json keys are sorted)
    declared = [m for m in get_dataset(meta["dataset"]).modalities if m in meta["modalities"]] if meta.get("dataset") else []
    mods = list(modalities or cfg["dataset"]["modalities"] or declared or meta["modalities"])
    for m in mods:
        if m not in meta["modalities"]:
            raise ConfigError(f"key 'dataset.modalities': '{m}' not in dataset {meta['dataset']} (has {', '.join(meta['modalities'])})")
    if len(mods) < 2:
        raise ConfigError(f"key 'dataset.modalities': a student needs at least 2 modalities, got {mods}")
    return mods


def student_hash(cfg: dict, method: str, fusion: str, seed: int, modalities, teacher_hashes: Mapping[str, str],
                 schedule=None) -> str:
    return config_hash({"keys": config_hash(cfg, STUDENT_KEYS, RUN_HASH_EXCLUDE), "method": method, "fusion": fusion,
                        "seed": seed, "modalities": list(modalities), "schedule": schedule,
                        "teachers": dict(sorted(teacher_hashes.items()))})


class TeacherOutputs:
    """Teacher logits/features for a batch, from caches (by sample index) or from online forwards."""

    def __init__(self, mode: str, device, caches: dict | None = None, models: dict | None = None,
                 teacher_hashes: dict | None = None):
        self.mode, self.device = mode, device
        self.caches = caches or {}
        self.models = models or {}
        #: {modality: SHA-256 of teacher.pt} — the weights' identity, keys student checkpoints
        self.teacher_hashes = teacher_hashes or {}

    @classmethod
    def build(cls, cfg: dict, teachers: Mapping[str, str | Path], modalities, device, mode: str, log=print):
        hashes = {m: teacher_file_hash(Path(teachers[m]) / "teacher.pt") for m in modalities}
        if mode == "cached":
            caches = {}
            _, prepared = dataset_dirs(cfg)
            dh = data_hash(prepared)
            for m in modalities:
                tdir = Path(teachers[m])
                ck = safe_load(tdir / "teacher.pt", "g2d.teacher")
                fh = hashes[m]
                cpath = tdir / "cache.pt"
                fresh = False
                if cpath.exists():
                    try:
                        c = safe_load(cpath, "g2d.teacher_cache")
                        fresh = cache_is_fresh(c, ck, fh, dh)
                    except DataError:
                        fresh = False
                if not fresh:
                    log(f"[g2d] {cpath}: missing or stale teacher cache; rebuilding")
                    cache_teacher(cfg, tdir, m, cpath, log=log)
                    c = safe_load(cpath, "g2d.teacher_cache")
                caches[m] = {k: v.to(device) for k, v in c.items() if isinstance(v, torch.Tensor)}
            return cls("cached", device, caches=caches, teacher_hashes=hashes)
        models = {m: load_teacher(cfg, teachers[m], m, device)[0] for m in modalities}
        return cls("online", device, models=models, teacher_hashes=hashes)

    @torch.no_grad()
    def get(self, split: str, idx: torch.Tensor, x: Mapping[str, torch.Tensor]):
        logits, feats = {}, {}
        if self.mode == "cached":
            idx = idx.to(self.device)
            for m, c in self.caches.items():
                logits[m] = c[f"{split}_logits"].index_select(0, idx)
                feats[m] = c[f"{split}_features"].index_select(0, idx)
        else:
            for m, model in self.models.items():
                z, h = model(x[m])
                logits[m], feats[m] = z.float(), h.float()
        return logits, feats


def student_step(model, meth, stepper: Stepper, tout: "TeacherOutputs | None", idx, x, y, epoch: int, *,
                 task: str, device, channels_last: bool = False, sums: dict | None = None):
    """One training step of the student exactly as :func:`train_student` runs it (``g2d bench``
    times this same function): move the batch, look up (cached) or compute (online) the teacher
    outputs and their confidences, run the method's step, add the batch-size-weighted logs to
    ``sums``. Returns the number of correct predictions as a 0-d tensor left on the device (no
    per-step host sync), or None for regression."""
    xb = move_batch(x, device, channels_last)
    y = y.to(device)
    b = Batch(idx=idx, x=xb, y=y)
    if tout is not None and meth.needs_teacher_outputs:
        b.teacher_logits, b.teacher_features = tout.get("train", idx, xb)
        b.teacher_conf = confidences(b.teacher_logits, y, task)
    logs = meth.training_step(model, b, stepper, epoch)
    out = logs.pop("_out")
    if sums is not None:
        bs = len(y)
        for k, v in logs.items():
            sums[k] += v * bs
        if b.teacher_conf:
            for m, v in b.teacher_conf.items():
                sums[f"tconf_{m}"] += v * bs
            if meth.scheduler is not None:
                pr = meth.scheduler.prioritized(epoch, b.teacher_conf)
                for m in meth.modalities:
                    sums[f"prio_{m}"] += float(pr == m) * bs
    if task == "classification":
        return (out.logits.argmax(1) == y).sum()
    return None


def _teacher_metrics(teachers: Mapping[str, str | Path]) -> dict[str, dict]:
    out = {}
    for m, d in teachers.items():
        p = Path(d) / "metrics.json"
        if p.is_file():
            try:
                out[m] = json.loads(p.read_text())
            except json.JSONDecodeError:
                raise DataError(f"{p}: corrupt JSON") from None
    return out


def train_student(cfg: dict, method: str, fusion: str, seed: int, teachers: Mapping[str, str | Path] | None,
                  out_dir: str | Path, modalities=None, log=print, variant: str = "main") -> dict:
    out_dir = Path(out_dir)
    apply_threads(cfg)
    spec = get_dataset(cfg["dataset"]["name"])
    _, prepared = dataset_dirs(cfg)
    meta = read_meta(prepared)
    mods = resolve_modalities(cfg, meta, modalities)
    teachers = dict(teachers or {})
    task, ncls = spec.task, (num_outputs(spec, meta) if spec.task == "classification" else None)
    tmetrics = _teacher_metrics(teachers)
    meth = get_method(method)(cfg, mods, task, {m: tmetrics.get(m, {}) for m in mods})
    missing = [m for m in mods if m not in teachers]
    if meth.needs_teacher_outputs and missing:
        raise ConfigError(f"method '{method}' needs a teacher for every modality; missing: {', '.join(missing)} (pass --teacher MOD=DIR)")
    device = resolve_device(cfg)
    autocast = autocast_factory(cfg, device)
    cl = cfg["train"]["channels_last"]
    augment = bool(cfg["dataset"]["augment"])
    mode = cfg["g2d"]["teacher_outputs"]
    if mode == "cached" and augment:
        raise ConfigError("key 'g2d.teacher_outputs': 'cached' teacher outputs cannot be used with dataset.augment=true "
                          "(they were computed on un-augmented inputs); use 'online' or 'auto'")
    if mode == "auto":
        mode = "online" if augment else "cached"
    tout = TeacherOutputs.build(cfg, teachers, mods, device, mode, log) if not missing else None
    # the teachers' weights (file hashes), so a retrained teacher never resumes an old student checkpoint
    thashes = tout.teacher_hashes if tout else {}

    seed_everything(seed)
    model = build_student(cfg, spec, meta, mods, fusion).to(device)
    if cl:
        model = model.to(memory_format=torch.channels_last)
    opt, sched = make_optimizer(cfg, meth.param_groups(model), cfg["train"]["lr"])
    scaler = torch.amp.GradScaler("cuda") if (device.type == "cuda" and cfg["train"]["amp"] == "fp16") else None
    stepper = Stepper(opt, scaler, autocast)
    loaders = _loaders(cfg, prepared, mods, seed, augment, spec, device)
    h = student_hash(cfg, method, fusion, seed, mods, thashes, meth.scheduler.schedule if meth.scheduler else None)
    scale = _target_scale(meta)

    def train_epoch(epoch: int) -> dict:
        meth.on_epoch_start(epoch)
        loaders["train"].sampler.set_epoch(epoch)
        sums: dict[str, float] = defaultdict(float)
        n, correct = 0, None
        for idx, x, y in loaders["train"]:
            c = student_step(model, meth, stepper, tout, idx, x, y, epoch, task=task, device=device,
                             channels_last=cl, sums=sums)
            if c is not None:
                correct = c if correct is None else correct + c
            n += len(y)
        res = {k: v / max(n, 1) for k, v in sums.items()}
        if task == "classification":
            res["acc"] = (int(correct) if correct is not None else 0) / max(n, 1)
        return res

    def evaluate_split(split: str, prefix: str) -> tuple[dict, dict]:
        r = collect_multimodal(model, loaders[split], device, autocast, cl)
        out = task_metrics(r["logits"], r["y"], task, ncls, prefix, scale)
        for m in mods:
            ml = task_metrics(r["modality_logits"][m], r["y"], task, ncls, "", scale)
            key = "acc" if task == "classification" else "r2"
            out[f"{prefix}{key}_{m}"] = ml[key]
        if tout is not None:
            tl, tf = tout.get(split, r["idx"], {}) if tout.mode == "cached" else _online_all(tout, loaders[split], device, cl)
            for m in mods:
                tlm, tfm = tl[m].cpu(), tf[m].cpu()
                out[f"{prefix}align_{m}"] = M.feature_alignment(r["features"][m], tfm)
                if task == "classification":
                    sc = M.mean_confidence(r["modality_logits"][m], r["y"])
                    tc = M.mean_confidence(tlm, r["y"])
                    out[f"{prefix}sconf_{m}"], out[f"{prefix}tconf_{m}"] = sc, tc
                    out[f"{prefix}cratio_{m}"] = sc / tc if tc > 0 else float("nan")
        return out, r

    def validate(epoch: int) -> dict:
        return evaluate_split("val", "val_")[0]

    select = "val_acc" if task == "classification" else "val_r2"
    t0 = time.perf_counter()
    res = fit(model=model, optimizer=opt, lr_scheduler=sched, out_dir=out_dir, epochs=cfg["train"]["epochs"],
              seed=seed, config_hash=h, train_epoch=train_epoch, validate=validate, select=select, mode="max",
              patience=cfg["train"]["patience"], desc=f"{method}/{fusion} s{seed}", log=log)
    best_epoch = load_best_weights(model, out_dir, h)
    val, _ = evaluate_split("val", "val_")
    test, r = evaluate_split("test", "")
    metrics = {"dataset": spec.name, "method": method, "fusion": fusion, "seed": seed, "variant": variant,
               "modalities": mods, "teacher_outputs": mode if tout else "none",
               "best_epoch": best_epoch, "epochs_trained": len(res.history),
               "train_time_s": round(time.perf_counter() - t0, 2), **val, **test}
    for m in mods:
        tm = tmetrics.get(m, {})
        for k in ("acc", "r2", "mape"):
            if k in tm:
                metrics[f"teacher_{k}_{m}"] = tm[k]
    write_json(out_dir / "metrics.json", metrics)
    _save_embeddings(out_dir / "embeddings.npz", r, mods)
    return metrics


@torch.no_grad()
def _online_all(tout: TeacherOutputs, loader, device, cl):
    L, F = defaultdict(list), defaultdict(list)
    for idx, x, y in loader:
        lg, ft = tout.get("", idx, move_batch(x, device, cl))
        for m in lg:
            L[m].append(lg[m].cpu()); F[m].append(ft[m].cpu())
    return {m: torch.cat(v) for m, v in L.items()}, {m: torch.cat(v) for m, v in F.items()}


def _save_embeddings(path: Path, r: dict, mods, limit: int = 1000) -> None:
    n = len(r["y"])
    sel = np.random.default_rng(0).permutation(n)[:limit] if n > limit else np.arange(n)
    arrays = {f"features_{m}": r["features"][m][sel].numpy().astype(np.float32) for m in mods}
    arrays["labels"] = r["y"][sel].numpy()
    tmp = path.with_name(f".{path.name}.tmp.npz")
    try:
        np.savez_compressed(tmp, **arrays)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise G2DError(f"{path}: cannot write ({exc.strerror or exc})") from None
