"""Unimodal teacher training and teacher-output caching.

Outputs in ``out_dir``: ``teacher.pt`` (best-on-validation weights + metadata), ``metrics.json``
(test metrics of that model, val metrics, seed), ``history.csv``; checkpoints under ``ckpt/``.
``cache_teacher`` runs the teacher once per split in eval mode and stores logits + features per
sample index (``cache.pt``), keyed by the teacher's and the prepared data's hashes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from ..config import RUN_HASH_EXCLUDE, config_hash, dataset_dirs
from ..data.prepared import PreparedDataset, read_meta
from ..data.registry import get_dataset
from ..errors import ConfigError, DataError
from ..losses import task_loss
from ..methods.base import check_finite
from ..models.nets import UnimodalModel, build_teacher, num_outputs
from .common import (CKPT_VERSION, apply_threads, atomic_save, autocast_factory, make_loader, move_batch,
                     resolve_device, safe_load, seed_everything, write_json)
from .evaluate import collect_unimodal, task_metrics
from .loop import fit, load_best_weights

__all__ = ["train_teacher", "cache_teacher", "load_teacher", "teacher_hash", "teacher_file_hash", "cache_is_fresh",
           "data_hash", "make_optimizer"]

# Config keys that determine a teacher (changing anything else must not retrain/recache it).
TEACHER_KEYS = ("dataset.name", "dataset.params", "dataset.augment", "model.encoders", "train", "teacher")


def teacher_hash(cfg: dict, modality: str, seed: int) -> str:
    return config_hash({"keys": config_hash(cfg, TEACHER_KEYS, RUN_HASH_EXCLUDE), "modality": modality, "seed": seed})


def teacher_file_hash(path: str | Path) -> str:
    """SHA-256 (16 hex digits) of a ``teacher.pt``: the identity of the weights. The config hash
    alone does not change when a teacher is retrained or extended (``teacher.epochs`` is not part
    of it), so caches and students record this too."""
    import hashlib
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for blk in iter(lambda: f.read(1 << 20), b""):
                h.update(blk)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return h.hexdigest()[:16]


def cache_is_fresh(cache: dict, teacher_ck: dict, teacher_file: str, data: str) -> bool:
    """A teacher-output cache may be reused only if made by this very teacher file on this data."""
    return (cache.get("teacher_hash") == teacher_ck.get("config_hash") and cache.get("teacher_file") == teacher_file
            and cache.get("data_hash") == data)


def data_hash(prepared_dir: Path) -> str:
    meta = read_meta(prepared_dir)
    return config_hash(meta)


def make_optimizer(cfg: dict, groups, lr: float):
    t = cfg["train"]
    if t["optimizer"] == "sgd":
        opt = torch.optim.SGD(groups, lr=lr, momentum=t["momentum"], weight_decay=t["weight_decay"])
    else:
        opt = torch.optim.Adam(groups, lr=lr, weight_decay=t["weight_decay"])
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=t["lr_step"], gamma=t["lr_gamma"])
    return opt, sched


def _loaders(cfg, prepared, modalities, seed, augment_train: bool, spec, device):
    d = cfg["dataset"]
    transforms = spec.train_transforms(spec.params(d["params"])) if (augment_train and spec.train_transforms) else None
    pin = device.type == "cuda"
    t = cfg["train"]
    tr = PreparedDataset(prepared, "train", modalities, transforms=transforms)
    out = {"train": make_loader(tr, t["batch_size"], True, seed, d["num_workers"], pin, t["max_train_batches"])}
    for split in ("val", "test"):
        ds = PreparedDataset(prepared, split, modalities)
        out[split] = make_loader(ds, max(t["batch_size"], 64), False, seed, d["num_workers"], pin)
    return out


def _target_scale(meta: dict):
    s = meta.get("target_scale")
    return tuple(s) if s else None


def train_teacher(cfg: dict, modality: str, seed: int, out_dir: str | Path, log=print) -> dict:
    out_dir = Path(out_dir)
    apply_threads(cfg)
    spec = get_dataset(cfg["dataset"]["name"])
    _, prepared = dataset_dirs(cfg)
    meta = read_meta(prepared)
    if modality not in meta["modalities"]:
        raise ConfigError(f"modality '{modality}' not in dataset {spec.name} (has {', '.join(meta['modalities'])})")
    device = resolve_device(cfg)
    autocast = autocast_factory(cfg, device)
    cl = cfg["train"]["channels_last"]
    seed_everything(seed)
    model = build_teacher(cfg, spec, meta, modality).to(device)
    if cl:
        model = model.to(memory_format=torch.channels_last)
    lr = cfg["teacher"]["lr"] or cfg["train"]["lr"]
    epochs = cfg["teacher"]["epochs"] or cfg["train"]["epochs"]
    opt, sched = make_optimizer(cfg, model.parameters(), lr)
    loaders = _loaders(cfg, prepared, [modality], seed, cfg["dataset"]["augment"], spec, device)
    task, ncls = spec.task, (num_outputs(spec, meta) if spec.task == "classification" else None)
    h = teacher_hash(cfg, modality, seed)
    scale = _target_scale(meta)

    def train_epoch(epoch: int) -> dict:
        loaders["train"].sampler.set_epoch(epoch)
        tot, n, correct = 0.0, 0, 0
        for idx, x, y in loaders["train"]:
            xb = move_batch({modality: x[modality]}, device, cl)[modality]
            y = y.to(device)
            with autocast():
                z, _ = model(xb)
            loss = task_loss(z.float(), y, task)
            check_finite(loss, epoch, f"teacher:{modality}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot += float(loss.detach()) * len(y)
            n += len(y)
            if task == "classification":
                correct += int((z.argmax(1) == y).sum())
        out = {"loss": tot / max(n, 1)}
        if task == "classification":
            out["acc"] = correct / max(n, 1)
        return out

    def validate(epoch: int) -> dict:
        r = collect_unimodal(model, loaders["val"], modality, device, autocast, cl)
        return task_metrics(r["logits"], r["y"], task, ncls, "val_", scale)

    select, mode = ("val_acc", "max") if task == "classification" else ("val_r2", "max")
    t0 = time.perf_counter()
    res = fit(model=model, optimizer=opt, lr_scheduler=sched, out_dir=out_dir, epochs=epochs, seed=seed,
              config_hash=h, train_epoch=train_epoch, validate=validate, select=select, mode=mode,
              patience=cfg["train"]["patience"], desc=f"teacher {modality} s{seed}", log=log)
    best_epoch = load_best_weights(model, out_dir, h)
    metrics = {"dataset": spec.name, "modality": modality, "seed": seed, "best_epoch": best_epoch,
               "epochs_trained": len(res.history), "train_time_s": round(time.perf_counter() - t0, 2)}
    for split in ("val", "test"):
        r = collect_unimodal(model, loaders[split], modality, device, autocast, cl)
        metrics.update(task_metrics(r["logits"], r["y"], task, ncls, "val_" if split == "val" else "", scale))
    atomic_save({"schema": "g2d.teacher", "version": CKPT_VERSION, "config_hash": h, "data_hash": data_hash(prepared),
                 "modality": modality, "seed": seed, "model": model.state_dict(),
                 "encoder_spec": json.dumps(cfg["model"]["encoders"].get(modality))}, out_dir / "teacher.pt")
    write_json(out_dir / "metrics.json", metrics)
    return metrics


def load_teacher(cfg: dict, teacher_dir: str | Path, modality: str, device) -> tuple[UnimodalModel, dict]:
    ck = safe_load(Path(teacher_dir) / "teacher.pt", "g2d.teacher")
    if ck["modality"] != modality:
        raise DataError(f"{teacher_dir}/teacher.pt: teacher of modality {ck['modality']!r}, expected {modality!r}")
    spec = get_dataset(cfg["dataset"]["name"])
    _, prepared = dataset_dirs(cfg)
    meta = read_meta(prepared)
    model = build_teacher(cfg, spec, meta, modality)
    try:
        model.load_state_dict(ck["model"])
    except RuntimeError as exc:
        raise DataError(f"{teacher_dir}/teacher.pt: weights do not fit the configured encoder "
                        f"(model.encoders.{modality}): {str(exc).splitlines()[0]}") from None
    model.to(device).eval()
    return model, ck


def cache_teacher(cfg: dict, teacher_dir: str | Path, modality: str, out: str | Path | None = None, log=print) -> Path:
    """Run the teacher once per split (eval mode, no augmentation) and store logits + features.

    Reuses an existing cache only when it was made by this teacher file on this prepared data.
    """
    apply_threads(cfg)
    teacher_dir = Path(teacher_dir)
    out = Path(out) if out else teacher_dir / "cache.pt"
    device = resolve_device(cfg)
    model, ck = load_teacher(cfg, teacher_dir, modality, device)
    fh = teacher_file_hash(teacher_dir / "teacher.pt")
    _, prepared = dataset_dirs(cfg)
    dh = data_hash(prepared)
    if out.exists():
        try:
            old = safe_load(out, "g2d.teacher_cache")
            if cache_is_fresh(old, ck, fh, dh):
                log(f"[g2d] {out}: up to date")
                return out
            log(f"[g2d] {out}: stale (teacher or data changed); rebuilding")
        except DataError as exc:
            log(f"[g2d] {exc}; rebuilding")
    autocast = autocast_factory(cfg, device)
    payload = {"schema": "g2d.teacher_cache", "version": CKPT_VERSION, "teacher_hash": ck["config_hash"],
               "teacher_file": fh, "data_hash": dh, "modality": modality}
    for split in ("train", "val", "test"):
        ds = PreparedDataset(prepared, split, [modality])
        loader = make_loader(ds, 256, False, 0, cfg["dataset"]["num_workers"], device.type == "cuda")
        r = collect_unimodal(model, loader, modality, device, autocast)
        payload[f"{split}_logits"] = r["logits"].contiguous()
        payload[f"{split}_features"] = r["features"].contiguous()
    atomic_save(payload, out)
    return out
