"""UR-FUNNY (humour detection) as MultiBench's ``humor.pkl``.

Raw layout: ``<raw_dir>/humor.pkl`` — a pickle of ``{"train" | "valid" | "test": {"vision":
(N, T, 371), "audio": (N, T, 81), "text": (N, T, 300), "labels": (N, 1) 0/1, ...}}`` (MultiBench's
affect release; the user downloads it from the MultiBench README link).

Loading a pickle executes code, so before unpickling the file's SHA-256 must equal the configured
``sha256`` param or a hash listed in :data:`KNOWN_SHA256`; an unknown file is refused unless
``trust_pickle: true``. Even then it is read with a restricted unpickler that only rebuilds numpy
arrays and plain containers.

Preprocessing is MultiBench's ``get_dataloader(max_pad=True, max_seq_len=50)`` as the authors use
it: drop samples whose text is all zeros (``drop_entry``), −inf/+inf/NaN → 0, cut the leading
padding (everything before the first non-zero text step, ``aligned=True``), keep the first
``seq_len`` steps and zero-pad at the end → visual ``(50, 371)``, audio ``(50, 81)``,
text ``(50, 300)``; label 0/1 (not humorous / humorous). Splits: MultiBench's train/valid/test.
"""

from __future__ import annotations

import hashlib
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from .download import gather_files, sha256_file
from .prepared import write_prepared
from .registry import DatasetSpec, register

__all__ = ["KNOWN_SHA256", "load_pickle_verified", "preprocess_affect_split", "CLASSES"]

CLASSES = ("not_humor", "humor")
#: SHA-256 of humor.pkl releases known to be good. Empty until a checksum is confirmed: set the
#: ``sha256`` param (or add the hash here) after checking the file once.
KNOWN_SHA256: frozenset[str] = frozenset()
_FILE = "humor.pkl"
_HINT = ("download humor.pkl from the MultiBench README (github.com/pliang279/MultiBench, 'UR-FUNNY') "
         "and put it there")
_MODALITY_KEYS = {"visual": "vision", "audio": "audio", "text": "text"}


class _SafeUnpickler(pickle.Unpickler):
    """Only numpy arrays/scalars/dtypes and builtin containers may be rebuilt."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"), ("collections", "OrderedDict"),
        ("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple"), ("builtins", "set"),
        ("builtins", "bytearray"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def load_pickle_verified(path: str | Path, sha256: str | None, trust: bool, known: frozenset[str] = KNOWN_SHA256) -> Any:
    """Verify ``path``'s SHA-256 (against ``sha256`` or ``known``) and then unpickle it with a
    restricted unpickler. An unknown hash is refused unless ``trust``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: missing; {_HINT}")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if sha256:
        if digest != sha256.lower():
            raise DataError(f"{path}: sha256 {digest} does not match dataset.params.sha256 {sha256}")
    elif digest not in known and not trust:
        raise DataError(f"{path}: sha256 {digest} is not a known release; unpickling runs code, so check the file "
                        f"and set dataset.params.sha256: {digest} (or trust_pickle: true)")
    try:
        return _SafeUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError, TypeError) as exc:
        raise DataError(f"{path}: cannot unpickle ({exc})") from None


def preprocess_affect_split(d: dict, seq_len: int, where: str) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """MultiBench affect preprocessing of one split dict → (modalities, labels, kept original rows)."""
    for k in ("vision", "audio", "text", "labels"):
        if k not in d:
            raise DataError(f"{where}: missing key {k!r} (has {sorted(d)})")
    arr = {m: np.asarray(d[k], dtype=np.float32) for m, k in _MODALITY_KEYS.items()}
    n = arr["text"].shape[0]
    for m, a in arr.items():
        if a.ndim != 3 or a.shape[0] != n:
            raise DataError(f"{where}/{_MODALITY_KEYS[m]}: shape {a.shape}, expected (N={n}, T, F)")
    labels = np.asarray(d["labels"]).reshape(n, -1)[:, 0]
    keep = np.flatnonzero(arr["text"].reshape(n, -1).sum(axis=1) != 0)  # drop_entry
    out = {m: np.zeros((len(keep), seq_len, a.shape[2]), dtype=np.float32) for m, a in arr.items()}
    for j, i in enumerate(keep):
        nz = np.flatnonzero(np.any(arr["text"][i] != 0, axis=1))
        start = int(nz[0]) if len(nz) else 0
        for m, a in arr.items():
            seg = np.nan_to_num(a[i, start:start + seq_len], nan=0.0, posinf=0.0, neginf=0.0)
            out[m][j, :len(seg)] = seg
    y = labels[keep]
    if not np.all(np.isin(y, (0, 1))):
        y = (y > 0).astype(np.int64)  # MultiBench regression-style labels (-1/1 or scores)
    return out, y.astype(np.int64), keep


def acquire(params: dict, raw_dir: str | Path, source: str, source_dir: str | Path | None) -> None:
    gather_files("urfunny", [_FILE], raw_dir, source, source_dir, _HINT)
    digest = sha256_file(Path(raw_dir) / _FILE)
    if params.get("sha256") and digest != str(params["sha256"]).lower():
        raise DataError(f"{Path(raw_dir) / _FILE}: sha256 {digest} does not match dataset.params.sha256 {params['sha256']}")


def prepare(params: dict, raw_dir: str | Path, out_dir: str | Path) -> dict:
    seq_len = int(params["seq_len"])
    if seq_len < 1:
        raise ConfigError("key 'dataset.params.seq_len': must be >= 1")
    path = Path(raw_dir) / _FILE
    data = load_pickle_verified(path, params.get("sha256"), bool(params.get("trust_pickle")))
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a dict with train/valid/test, got {type(data).__name__}")
    splits, labels, ids = {}, {}, {}
    for ours, theirs in (("train", "train"), ("val", "valid"), ("test", "test")):
        if theirs not in data or not isinstance(data[theirs], dict):
            raise DataError(f"{path}: missing split {theirs!r} (has {sorted(data)})")
        mods, y, keep = preprocess_affect_split(data[theirs], seq_len, f"{path}:{theirs}")
        splits[ours], labels[ours] = mods, y
        ids[ours] = np.array([f"{theirs}-{i}" for i in keep])
    return write_prepared(out_dir, dataset="urfunny", task="classification", classes=list(CLASSES), splits=splits,
                          labels=labels, ids=ids, params=params, dtype=params["dtype"],
                          extra={"sha256": sha256_file(path),
                                 "recipe": "MultiBench affect: drop_entry, inf/nan->0, aligned start, first seq_len steps, end zero-pad"})


DEFAULT_PARAMS: dict[str, Any] = {"seq_len": 50, "sha256": None, "trust_pickle": False, "dtype": "float32"}

register(DatasetSpec(
    name="urfunny",
    task="classification",
    modalities=("audio", "visual", "text"),
    classes=CLASSES,
    default_encoders={m: {"name": "transformer"} for m in ("audio", "visual", "text")},
    acquire=acquire,
    prepare=prepare,
    default_params=DEFAULT_PARAMS,
    description="UR-FUNNY humour detection (MultiBench humor.pkl): COVAREP audio 50×81, OpenFace visual 50×371, GloVe text 50×300; 2 classes",
    source="MultiBench affect release humor.pkl (github.com/pliang279/MultiBench), placed by the user",
    license="UR-FUNNY: research use (see github.com/ROC-HCI/UR-FUNNY)",
    disk="~2 GB raw pickle; ~1.5 GB prepared (float32)",
    manual=True,
))
