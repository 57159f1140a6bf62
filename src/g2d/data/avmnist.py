"""AV-MNIST in the MultiBench layout (Vielzeuf et al. 2018; MultiBench's ``avmnist`` loader).

The original files are distributed by MultiBench on a private drive, so the user places them::

    <raw_dir>/image/train_data.npy    (60000, 784)       MNIST digits (PCA-degraded), 0..255
    <raw_dir>/image/test_data.npy     (10000, 784)
    <raw_dir>/audio/train_data.npy    (60000, 112, 112)  spoken-digit spectrograms, 0..255
    <raw_dir>/audio/test_data.npy     (10000, 112, 112)
    <raw_dir>/train_labels.npy        (60000,)           digit 0..9
    <raw_dir>/test_labels.npy         (10000,)

Preprocessing as MultiBench's ``get_dataloader`` (used by the authors): both modalities divided
by 255, a channel dim added — visual ``(1, 28, 28)``, audio ``(1, 112, 112)`` — and the last
``val_size`` (5 000) training samples held out as validation: 55 000 / 5 000 / 10 000.
Sample ids are ``train-<row>`` / ``test-<row>`` (row in the original arrays).

:func:`read_multibench_avmnist` and :func:`prepare_multibench_avmnist` are plain functions so a
dataset that *produces* this layout (``avmnist_fsdd``) can reuse the reader and the preparation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from .download import gather_files
from .prepared import write_prepared
from .registry import DatasetSpec, register

__all__ = ["EXPECTED_FILES", "CLASSES", "read_multibench_avmnist", "prepare_multibench_avmnist"]

EXPECTED_FILES = (
    "image/train_data.npy", "image/test_data.npy",
    "audio/train_data.npy", "audio/test_data.npy",
    "train_labels.npy", "test_labels.npy",
)
CLASSES = tuple(str(d) for d in range(10))
_HINT = ("get AV-MNIST from MultiBench (github.com/pliang279/MultiBench, 'avmnist' data link) and put "
         "image/{train,test}_data.npy, audio/{train,test}_data.npy, {train,test}_labels.npy there")


def _load(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: missing (AV-MNIST needs {', '.join(EXPECTED_FILES)})")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npy array ({exc})") from None


def read_multibench_avmnist(root: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Read and validate the six MultiBench AV-MNIST arrays under ``root``.

    Returns ``{"train": {"image": (N, 784), "audio": (N, 112, 112), "labels": (N,) int64},
    "test": {...}}`` with values as stored (0..255, memory-mapped; labels loaded). Raises
    DataError naming the file on a missing file, wrong shape, row-count mismatch or bad label.
    """
    root = Path(root)
    out: dict[str, dict[str, np.ndarray]] = {}
    for split in ("train", "test"):
        img = _load(root / "image" / f"{split}_data.npy")
        aud = _load(root / "audio" / f"{split}_data.npy")
        lab = np.asarray(_load(root / f"{split}_labels.npy"))
        if img.ndim == 3 and img.shape[1:] == (28, 28):
            img = img.reshape(img.shape[0], 784)
        if img.ndim != 2 or img.shape[1] != 784:
            raise DataError(f"{root / 'image' / (split + '_data.npy')}: shape {img.shape}, expected (N, 784)")
        if aud.ndim == 2 and aud.shape[1] == 112 * 112:
            aud = aud.reshape(aud.shape[0], 112, 112)
        if aud.shape[1:] != (112, 112):
            raise DataError(f"{root / 'audio' / (split + '_data.npy')}: shape {aud.shape}, expected (N, 112, 112)")
        lab = lab.reshape(-1)
        if not (len(img) == len(aud) == len(lab)):
            raise DataError(f"{root}: {split} arrays disagree in length (image {len(img)}, audio {len(aud)}, labels {len(lab)})")
        if not np.issubdtype(lab.dtype, np.integer):
            if not np.all(np.equal(np.mod(lab, 1), 0)):
                raise DataError(f"{root / (split + '_labels.npy')}: labels must be integers 0..9")
        lab = lab.astype(np.int64)
        if len(lab) and (lab.min() < 0 or lab.max() > 9):
            raise DataError(f"{root / (split + '_labels.npy')}: labels outside 0..9 ({lab.min()}..{lab.max()})")
        out[split] = {"image": img, "audio": aud, "labels": lab}
    return out


def _scaled(a: np.ndarray, shape: tuple[int, ...], dtype: str, chunk: int = 4096) -> np.ndarray:
    """``a / 255`` reshaped to ``(N, *shape)`` in ``dtype``, converted in chunks (bounded memory)."""
    n = a.shape[0]
    out = np.empty((n, *shape), dtype=dtype)
    for i in range(0, n, chunk):
        out[i:i + chunk] = (np.asarray(a[i:i + chunk], dtype=np.float32) / 255.0).reshape(-1, *shape)
    return out


def prepare_multibench_avmnist(root: str | Path, out_dir: str | Path, params: dict, dataset: str = "avmnist",
                               extra: dict | None = None) -> dict:
    """Prepare MultiBench-layout AV-MNIST under ``root`` into ``out_dir`` (see module docstring).

    ``params``: ``val_size`` (last train rows → val, default 5000), ``dtype``; modalities are
    ``audio`` ``(1, 112, 112)`` and ``visual`` ``(1, 28, 28)``, both in [0, 1].
    """
    data = read_multibench_avmnist(root)
    val_size = int(params.get("val_size", 5000))
    dtype = params.get("dtype", "float16")
    n_train = len(data["train"]["labels"])
    if not 0 < val_size < n_train:
        raise ConfigError(f"key 'dataset.params.val_size': must be between 1 and {n_train - 1} (train has {n_train} rows), got {val_size}")
    for split in ("train", "test"):
        for m in ("image", "audio"):
            a = data[split][m]
            if a.size and (float(np.min(a)) < 0 or float(np.max(a)) > 255):
                raise DataError(f"{Path(root) / m / (split + '_data.npy')}: values outside 0..255 (already normalised?)")
    cut = n_train - val_size
    arrays: dict[str, dict[str, np.ndarray]] = {}
    labels: dict[str, np.ndarray] = {}
    ids: dict[str, np.ndarray] = {}
    for split, src, rows in (("train", "train", slice(0, cut)), ("val", "train", slice(cut, n_train)),
                             ("test", "test", slice(0, len(data["test"]["labels"])))):
        d = data[src]
        idx = np.arange(len(d["labels"]))[rows]
        arrays[split] = {"audio": _scaled(d["audio"][rows], (1, 112, 112), dtype),
                         "visual": _scaled(d["image"][rows], (1, 28, 28), dtype)}
        labels[split] = d["labels"][rows]
        ids[split] = np.array([f"{src}-{i}" for i in idx])
    return write_prepared(out_dir, dataset=dataset, task="classification", classes=list(CLASSES), splits=arrays,
                          labels=labels, ids=ids, params=params, dtype=dtype,
                          extra={"recipe": "MultiBench AV-MNIST: /255, channel dim, last val_size train rows = val",
                                 **(extra or {})})


def acquire(params: dict, raw_dir: str | Path, source: str, source_dir: str | Path | None) -> None:
    gather_files("avmnist", EXPECTED_FILES, raw_dir, source, source_dir, _HINT)
    read_multibench_avmnist(raw_dir)  # validate shapes now, not at prepare time


def prepare(params: dict, raw_dir: str | Path, out_dir: str | Path) -> dict:
    return prepare_multibench_avmnist(raw_dir, out_dir, params)


DEFAULT_PARAMS: dict[str, Any] = {"val_size": 5000, "dtype": "float16"}

register(DatasetSpec(
    name="avmnist",
    task="classification",
    modalities=("audio", "visual"),
    classes=CLASSES,
    default_encoders={"audio": {"name": "lenet", "channels": 6}, "visual": {"name": "lenet", "channels": 6}},
    acquire=acquire,
    prepare=prepare,
    default_params=DEFAULT_PARAMS,
    description="AV-MNIST (MultiBench layout): PCA-degraded MNIST 1×28×28 + spoken-digit spectrogram 1×112×112, 10 classes, 55k/5k/10k",
    source="MultiBench (github.com/pliang279/MultiBench) AV-MNIST files, placed by the user",
    license="MNIST: CC BY-SA 3.0; FSDD: CC BY-SA 4.0; ESC-50 noise: CC BY-NC 3.0 (check MultiBench's terms)",
    disk="~3.8 GB raw (float64 npy) / ~1.7 GB prepared (float16)",
    manual=True,
))
