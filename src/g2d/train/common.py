"""Shared training utilities: seeds, device, loaders, atomic checkpoint I/O, history files."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import random
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from ..data.prepared import PreparedBatch, PreparedDataset, remove_stale_temps, temp_tag
from ..errors import DataError, G2DError

__all__ = ["seed_everything", "epoch_seed", "resolve_device", "make_loader", "atomic_save", "safe_load",
           "write_json", "write_history", "autocast_factory", "move_batch", "CKPT_VERSION"]

CKPT_VERSION = 1


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed for one epoch: reseeding every epoch makes resume-from-checkpoint bit-exact."""
    return (seed * 1_000_003 + epoch * 7919 + 17) % (2 ** 31)


def resolve_device(cfg: dict) -> torch.device:
    want = cfg["train"]["device"]
    if want == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if want.startswith("cuda") and not torch.cuda.is_available():
        raise G2DError("key 'train.device': CUDA requested but torch.cuda.is_available() is False")
    return torch.device(want)


def apply_threads(cfg: dict) -> None:
    n = cfg["train"].get("threads")
    if n:
        torch.set_num_threads(int(n))


class EpochSampler(Sampler[int]):
    """Random permutation that depends only on (seed, epoch): identical after a resume."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


def _collate(items):
    if isinstance(items, PreparedBatch):  # PreparedDataset.__getitems__ already built the batch
        return tuple(items)
    idx = torch.tensor([it[0] for it in items], dtype=torch.long)
    mods = items[0][1].keys()
    x = {m: torch.stack([it[1][m] for it in items]) for m in mods}
    y = torch.stack([it[2] for it in items])
    return idx, x, y


def make_loader(ds: PreparedDataset, batch_size: int, shuffle: bool, seed: int = 0, num_workers: int = 0,
                pin_memory: bool = False, max_batches: int | None = None) -> DataLoader:
    n = len(ds)
    if max_batches is not None:
        n = min(n, max_batches * batch_size)
    sampler = EpochSampler(n, seed) if shuffle else range(n)
    return DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      collate_fn=_collate, pin_memory=pin_memory, persistent_workers=num_workers > 0)


def move_batch(x: Mapping[str, torch.Tensor], device: torch.device, channels_last: bool = False) -> dict:
    out = {}
    for m, t in x.items():
        t = t.to(device, non_blocking=True)
        if channels_last and t.dim() == 4:
            t = t.contiguous(memory_format=torch.channels_last)
        out[m] = t
    return out


def autocast_factory(cfg: dict, device: torch.device):
    amp = cfg["train"]["amp"]
    if device.type != "cuda" or amp == "off":
        return lambda: contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return lambda: torch.autocast("cuda", dtype=dtype)


def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save to a temp file in the same directory, fsync, then rename (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent, f".{path.name}.tmp-")  # left by a killed earlier run
    tmp = path.with_name(f".{path.name}.tmp-{temp_tag()}")
    try:
        with open(tmp, "wb") as f:
            w = _WriteErrors(f)
            try:
                torch.save(obj, w)
            except RuntimeError:
                if w.error is None:
                    raise
                raise w.error from None  # torch's zip writer reports a failed write as a bad position
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise G2DError(f"{path}: cannot write ({exc.strerror or exc})") from None


class _WriteErrors:
    """File wrapper remembering the first OSError of ``write`` (e.g. ENOSPC), which torch.save's
    C++ writer would otherwise turn into an opaque ``unexpected pos`` RuntimeError."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, b):
        try:
            return self.f.write(b)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def flush(self):
        return self.f.flush()


def safe_load(path: str | Path, schema: str) -> dict:
    """torch.load(weights_only=True) with a schema check; DataError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt/truncated file, unpickling refused, ...
        raise DataError(f"{path}: cannot load ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(obj, dict) or obj.get("schema") != schema:
        raise DataError(f"{path}: not a {schema} file")
    if obj.get("version") != CKPT_VERSION:
        raise DataError(f"{path}: version {obj.get('version')} != {CKPT_VERSION}; re-create it")
    return obj


def write_text_atomic(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent, f".{path.name}.tmp-")
    tmp = path.with_name(f".{path.name}.tmp-{temp_tag()}")
    try:
        tmp.write_text(text)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise G2DError(f"{path}: cannot write ({exc.strerror or exc})") from None


def write_json(path: str | Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=float) + "\n")


def write_history(path: str | Path, rows: list[dict]) -> None:
    cols: list[str] = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in cols})
    write_text_atomic(path, buf.getvalue())
