"""The prepared-dataset format every dataset is turned into once, and its fast loader.

Layout of a prepared dataset directory (written atomically: built in ``<dir>.tmp-<host>-<pid>`` and
renamed; ``meta.json`` is written last inside the temp dir)::

    <prepared_dir>/
      meta.json                      # see PreparedMeta below
      <split>/<modality>.npy         # (N, *shape), float16 or float32, memory-mapped at load
      <split>/labels.npy             # (N,) int64 class index, or float32 in [0, 1] (regression)
      <split>/ids.npy                # (N,) sample ids (unicode strings), unique within the dataset

Splits are ``train``, ``val`` and ``test``. Rows are aligned across modalities by position; the
ids make that alignment checkable (``check_alignment``) and key the teacher-output caches.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")

__all__ = ["FORMAT_VERSION", "SPLITS", "write_prepared", "read_meta", "PreparedDataset", "PreparedBatch", "atomic_dir",
           "open_memmap_reserved", "remove_stale_temps", "temp_tag"]


_HOST = socket.gethostname().replace("/", "_") or "host"


def temp_tag() -> str:
    """``<host>-<pid>``: the suffix of this process's temp files and dirs (see :func:`remove_stale_temps`)."""
    return f"{_HOST}-{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: exists, owned by someone else
        return True
    return True


def remove_stale_temps(parent: str | Path, prefix: str) -> None:
    """Delete ``<parent>/<prefix><host>-<pid>`` files/dirs left behind by a killed process of THIS
    host (pid no longer running). Entries of other hosts (shared file systems) are left alone."""
    parent = Path(parent)
    if not parent.is_dir():
        return
    for p in parent.glob(glob.escape(prefix) + "*"):
        host, _, pid = p.name[len(prefix):].rpartition("-")
        if host != _HOST or not pid.isdigit() or int(pid) == os.getpid() or _pid_alive(int(pid)):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


class atomic_dir:
    """Context manager: yields a temp dir next to ``final``; on success renames it to ``final``.

    On error the temp dir is removed, so a half-written dataset is never visible. Temp dirs of
    killed earlier runs (``<final>.tmp-<host>-<pid>``, ``<final>.old-<host>-<pid>``) are removed on entry.
    """

    def __init__(self, final: str | Path):
        self.final = Path(final)
        self.tmp = self.final.with_name(f"{self.final.name}.tmp-{temp_tag()}")

    def __enter__(self) -> Path:
        for kind in (".tmp-", ".old-"):
            remove_stale_temps(self.final.parent, self.final.name + kind)
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir(parents=True)
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return False
        if self.final.exists():
            old = self.final.with_name(f"{self.final.name}.old-{temp_tag()}")
            self.final.rename(old)
            self.tmp.rename(self.final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            self.final.parent.mkdir(parents=True, exist_ok=True)
            self.tmp.rename(self.final)
        return False


def write_prepared(out_dir: str | Path, *, dataset: str, task: str, classes: list[str] | None,
                   splits: Mapping[str, Mapping[str, np.ndarray]], labels: Mapping[str, np.ndarray],
                   ids: Mapping[str, np.ndarray], params: dict | None = None,
                   extra: dict | None = None, dtype: str = "float16") -> dict:
    """Write arrays into ``out_dir`` (normally the temp dir from :class:`atomic_dir`).

    ``splits[split][modality]`` is an (N, *shape) array; ``labels[split]`` and ``ids[split]`` (N,).
    Checks shapes, label range, finite values and id uniqueness; raises DataError otherwise.
    Returns the meta dict (also written as meta.json, last).
    """
    out = Path(out_dir)
    if task not in ("classification", "regression"):
        raise DataError(f"{dataset}: task must be classification or regression, got {task!r}")
    modalities: dict[str, dict] = {}
    sizes: dict[str, int] = {}
    seen_ids: set[str] = set()
    for split, mods in splits.items():
        if split not in SPLITS:
            raise DataError(f"{dataset}: unknown split {split!r} (expected {SPLITS})")
        y = np.asarray(labels[split])
        sid = np.asarray(ids[split]).astype(str)
        n = len(y)
        if len(sid) != n:
            raise DataError(f"{dataset}/{split}: {len(sid)} ids for {n} labels")
        if len(set(sid.tolist())) != n or seen_ids.intersection(sid.tolist()):
            raise DataError(f"{dataset}/{split}: sample ids are not unique across splits")
        seen_ids.update(sid.tolist())
        if task == "classification":
            y = y.astype(np.int64)
            if n and (y.min() < 0 or (classes is not None and y.max() >= len(classes))):
                raise DataError(f"{dataset}/{split}: label outside the class list (range {y.min()}..{y.max()}, {len(classes or [])} classes)")
        else:
            y = y.astype(np.float32)
            if n and (not np.isfinite(y).all() or y.min() < 0 or y.max() > 1):
                raise DataError(f"{dataset}/{split}: regression targets must be finite and scaled to [0, 1]")
        (out / split).mkdir(parents=True, exist_ok=True)
        for mod, arr in mods.items():
            arr = np.asarray(arr)
            if arr.shape[0] != n:
                raise DataError(f"{dataset}/{split}/{mod}: {arr.shape[0]} rows for {n} labels (mismatched sample ids between modalities)")
            shape = list(arr.shape[1:])
            if mod in modalities and modalities[mod]["shape"] != shape:
                raise DataError(f"{dataset}/{split}/{mod}: shape {shape} differs from other splits {modalities[mod]['shape']}")
            modalities[mod] = {"shape": shape, "dtype": dtype}
            _save_checked(out / split / f"{mod}.npy", arr, dtype, f"{dataset}/{split}/{mod}")
        np.save(out / split / "labels.npy", y)
        np.save(out / split / "ids.npy", sid)
        sizes[split] = n
    meta = {
        "format_version": FORMAT_VERSION,
        "dataset": dataset,
        "task": task,
        "classes": list(classes) if classes is not None else None,
        "modalities": modalities,
        "splits": sizes,
        "params": params or {},
    }
    if extra:
        meta.update(extra)
    tmp = out / "meta.json.tmp"
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
    tmp.replace(out / "meta.json")
    return meta


def open_memmap_reserved(path: str | Path, dtype, shape) -> np.memmap:
    """``np.lib.format.open_memmap(path, "w+", ...)`` with the file's blocks reserved up front: on a
    full disk this raises OSError(ENOSPC) naming ``path`` instead of the process dying of SIGBUS
    when a page of the (sparse) memory map is first written."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=tuple(shape))
    try:
        with open(path, "r+b") as f:
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):  # EINVAL etc.: cannot preallocate here
            del out
            raise OSError(exc.errno, exc.strerror, str(path)) from None
    return out


def _save_checked(path: Path, arr: np.ndarray, dtype: str, where: str, chunk_bytes: int = 1 << 28) -> None:
    """Save ``arr`` as ``dtype`` in row chunks (bounded memory, so memory-mapped inputs larger than
    RAM work), checking finiteness after the cast (a float16 overflow is caught too)."""
    out = open_memmap_reserved(path, dtype, arr.shape)
    step = max(1, chunk_bytes // max(1, arr[:1].nbytes))
    try:
        for i in range(0, max(arr.shape[0], 1), step):
            with np.errstate(over="ignore", invalid="ignore"):
                blk = np.asarray(arr[i:i + step]).astype(dtype)
            if not np.isfinite(blk).all():
                raise DataError(f"{where}: contains NaN or Inf (or values too large for {dtype})")
            out[i:i + step] = blk
        out.flush()
    finally:
        del out


def read_meta(prepared_dir: str | Path) -> dict:
    p = Path(prepared_dir) / "meta.json"
    if not p.is_file():
        raise DataError(f"{p}: prepared dataset not found (run `g2d prepare` first)")
    try:
        meta = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{p}: corrupt meta.json ({exc.msg})") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{p}: format_version {meta.get('format_version')} != {FORMAT_VERSION}; re-run `g2d prepare`")
    return meta


class PreparedBatch(NamedTuple):
    """An already collated batch from :meth:`PreparedDataset.__getitems__`: ``(index (B,) int64,
    {modality: float32 (B, *shape)}, labels (B,))`` — the training loaders' batch layout."""
    index: torch.Tensor
    x: dict
    y: torch.Tensor


@dataclass
class Sample:
    index: int
    x: dict
    y: object


class PreparedDataset(Dataset):
    """Loads one split of a prepared dataset with memory-mapped arrays.

    ``__getitem__`` returns ``(index, {modality: float32 tensor}, label)``; ``index`` is the row
    position in the split (the key of teacher-output caches). ``transforms`` maps a modality to
    a callable applied to its tensor (training-time augmentation).
    """

    def __init__(self, prepared_dir: str | Path, split: str, modalities: list[str] | None = None,
                 transforms: Mapping[str, Callable] | None = None, limit: int | None = None):
        self.root = Path(prepared_dir)
        self.meta = read_meta(self.root)
        if split not in self.meta["splits"]:
            raise DataError(f"{self.root}: no split {split!r} (has {list(self.meta['splits'])})")
        self.split = split
        all_mods = list(self.meta["modalities"])
        self.modalities = list(modalities) if modalities else all_mods
        for m in self.modalities:
            if m not in all_mods:
                raise DataError(f"{self.root}: no modality {m!r} (has {all_mods})")
        self.transforms = dict(transforms or {})
        d = self.root / split
        self.arrays = {}
        for m in self.modalities:
            f = d / f"{m}.npy"
            try:
                self.arrays[m] = np.load(f, mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise DataError(f"{f}: cannot read ({exc})") from None
        try:
            self.labels = np.load(d / "labels.npy")
            self.ids = np.load(d / "ids.npy")
        except (OSError, ValueError) as exc:
            raise DataError(f"{d}: cannot read labels/ids ({exc})") from None
        n = len(self.labels)
        for m, a in self.arrays.items():
            if a.shape[0] != n:
                raise DataError(f"{d / (m + '.npy')}: {a.shape[0]} rows but {n} labels")
        self.n = n if limit is None else min(n, limit)
        self.task = self.meta["task"]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        x = {}
        for m, a in self.arrays.items():
            t = torch.from_numpy(np.array(a[i], dtype=np.float32))
            if m in self.transforms:
                t = self.transforms[m](t)
            x[m] = t
        y = self.labels[i]
        y = torch.tensor(y, dtype=torch.long if self.task == "classification" else torch.float32)
        return i, x, y

    def __getitems__(self, indices) -> "PreparedBatch | list":
        """A whole batch at once (``DataLoader`` calls this with a batch's indices): per modality one
        fancy-indexed memory-map read and one vectorized float32 conversion (torch's, SIMD), instead
        of a copy, a conversion and a tensor per sample. Same values as ``[self[i] for i in indices]``
        collated; with ``transforms`` (augmentation) it is exactly that, so random draws keep their order."""
        if self.transforms:
            return [self[int(i)] for i in indices]
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < -self.n or idx.max() >= self.n):
            raise IndexError(f"{self.root}/{self.split}: index out of range for {self.n} samples")
        idx = np.where(idx < 0, idx + self.n, idx)
        x = {m: torch.from_numpy(np.ascontiguousarray(a[idx])).to(torch.float32) for m, a in self.arrays.items()}
        y = torch.from_numpy(np.asarray(self.labels[idx], dtype=np.int64 if self.task == "classification" else np.float32))
        return PreparedBatch(torch.from_numpy(idx), x, y)

    def load_all(self) -> tuple[dict, torch.Tensor]:
        """Whole split as float32 tensors (small datasets; used by fast in-memory loaders)."""
        x = {m: torch.from_numpy(np.array(a[: self.n], dtype=np.float32)) for m, a in self.arrays.items()}
        y = torch.from_numpy(np.asarray(self.labels[: self.n]))
        return x, y
