"""IEMOCAP, 4-class emotion (neutral, angry, sad, happy) from pre-extracted features.

IEMOCAP is licensed per user by USC SAIL, so the features are placed by the user in one file::

    <raw_dir>/iemocap.npz     (numpy .npz, read with allow_pickle=False)
      audio    (N, T_a, F_a) or (N, F_a)   float   acoustic features per utterance
      visual   (N, T_v, F_v) or (N, F_v)   float   facial/visual features
      text     (N, T_t, F_t) or (N, F_t)   float   word embeddings / sentence features
      labels   (N,)  str (neutral|neu, angry|ang, sad, happy|hap, excited|exc, ... ) or int 0..3
      session  (N,)  int 1..5               recording session (2 speakers per session)
      ids      (N,)  str, optional          utterance names, e.g. Ses01F_impro01_F000

Label mapping: the four classes in the order above; ``excited`` is merged into ``happy`` when
``merge_excited`` (the usual 4-class protocol); other emotions are dropped when ``drop_other``
(else an error). Integer labels are taken as indices into ``CLASSES``.

Split (session-aware, so no speaker is shared between train and test): utterances of
``test_session`` (default 5) are the test set; validation is one whole training session —
``val_session``, or one drawn with ``split_seed`` from the others. NaN/±inf → 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from .download import gather_files
from .prepared import write_prepared
from .registry import DatasetSpec, register

__all__ = ["CLASSES", "LABEL_ALIASES", "read_iemocap_npz", "session_split"]

CLASSES = ("neutral", "angry", "sad", "happy")
LABEL_ALIASES = {
    "neutral": "neutral", "neu": "neutral", "angry": "angry", "ang": "angry", "anger": "angry",
    "sad": "sad", "sadness": "sad", "happy": "happy", "hap": "happy", "happiness": "happy",
}
_EXCITED = {"excited", "exc", "excitement"}
_FILE = "iemocap.npz"
_HINT = ("IEMOCAP is licensed by USC SAIL (sail.usc.edu/iemocap); extract features and save them with "
         "numpy.savez as iemocap.npz holding audio, visual, text, labels, session (and optional ids) arrays")


def read_iemocap_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Load and validate the feature file (see module docstring); returns its arrays."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: missing; {_HINT}")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npz without pickled objects ({exc})") from None
    need = ("audio", "visual", "text", "labels", "session")
    miss = [k for k in need if k not in data]
    if miss:
        raise DataError(f"{path}: missing arrays {', '.join(miss)} (has {', '.join(sorted(data))}); {_HINT}")
    n = len(data["labels"])
    for k in ("audio", "visual", "text", "session") + (("ids",) if "ids" in data else ()):
        if data[k].shape[0] != n:
            raise DataError(f"{path}: array {k!r} has {data[k].shape[0]} rows, labels has {n}")
    for k in ("audio", "visual", "text"):
        if data[k].ndim not in (2, 3) or not np.issubdtype(data[k].dtype, np.number):
            raise DataError(f"{path}: array {k!r} must be numeric (N, F) or (N, T, F), got {data[k].dtype} {data[k].shape}")
    return data


def _map_labels(raw: np.ndarray, merge_excited: bool, drop_other: bool, where: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return (label index per row or -1 for dropped, keep mask)."""
    if np.issubdtype(raw.dtype, np.integer):
        y = raw.astype(np.int64)
        if len(y) and (y.min() < 0 or y.max() >= len(CLASSES)):
            raise DataError(f"{where}: integer labels must be 0..{len(CLASSES) - 1} ({', '.join(CLASSES)})")
        return y, np.ones(len(y), bool)
    y = np.full(len(raw), -1, dtype=np.int64)
    for i, s in enumerate(raw.astype(str)):
        s = s.strip().lower()
        name = LABEL_ALIASES.get(s) or ("happy" if merge_excited and s in _EXCITED else None)
        if name is None:
            if not drop_other:
                raise DataError(f"{where}: label {s!r} is not one of {', '.join(CLASSES)} (set drop_other: true to skip it)")
            continue
        y[i] = CLASSES.index(name)
    return y, y >= 0


def session_split(sessions: np.ndarray, test_session: int, val_session: int | None, seed: int) -> tuple[dict[str, np.ndarray], int]:
    """Row indices per split and the validation session used."""
    uniq = sorted(int(s) for s in np.unique(sessions))
    if test_session not in uniq:
        raise ConfigError(f"key 'dataset.params.test_session': session {test_session} not in the data (has {uniq})")
    rest = [s for s in uniq if s != test_session]
    if not rest:
        raise DataError("iemocap: need at least two sessions for a session-aware split")
    if val_session is None:
        if len(rest) < 2:
            raise DataError("iemocap: need at least three sessions to hold one out for validation")
        val_session = int(rest[int(np.random.default_rng(seed).integers(len(rest)))])
    elif val_session not in rest:
        raise ConfigError(f"key 'dataset.params.val_session': must be one of {rest}, got {val_session}")
    s = sessions.astype(int)
    return {"train": np.flatnonzero((s != test_session) & (s != val_session)),
            "val": np.flatnonzero(s == val_session), "test": np.flatnonzero(s == test_session)}, val_session


def acquire(params: dict, raw_dir: str | Path, source: str, source_dir: str | Path | None) -> None:
    gather_files("iemocap", [_FILE], raw_dir, source, source_dir, _HINT)
    read_iemocap_npz(Path(raw_dir) / _FILE)


def prepare(params: dict, raw_dir: str | Path, out_dir: str | Path) -> dict:
    path = Path(raw_dir) / _FILE
    data = read_iemocap_npz(path)
    y, keep = _map_labels(data["labels"], bool(params["merge_excited"]), bool(params["drop_other"]), path)
    rows = np.flatnonzero(keep)
    sessions = data["session"][rows]
    parts, val_session = session_split(sessions, int(params["test_session"]), params["val_session"], int(params["split_seed"]))
    ids_all = data["ids"].astype(str) if "ids" in data else np.array([f"utt-{i}" for i in range(len(y))])
    splits, labels, ids = {}, {}, {}
    for s, idx in parts.items():
        r = rows[idx]
        splits[s] = {m: np.nan_to_num(np.asarray(data[m][r], dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
                     for m in ("audio", "visual", "text")}
        labels[s] = y[r]
        ids[s] = ids_all[r]
    return write_prepared(out_dir, dataset="iemocap", task="classification", classes=list(CLASSES), splits=splits,
                          labels=labels, ids=ids, params=params, dtype=params["dtype"],
                          extra={"val_session": val_session, "test_session": int(params["test_session"]),
                                 "dropped_other_labels": int((~keep).sum())})


DEFAULT_PARAMS: dict[str, Any] = {"test_session": 5, "val_session": None, "split_seed": 999,
                                  "merge_excited": True, "drop_other": True, "dtype": "float32"}

register(DatasetSpec(
    name="iemocap",
    task="classification",
    modalities=("audio", "visual", "text"),
    classes=CLASSES,
    default_encoders={m: {"name": "transformer"} for m in ("audio", "visual", "text")},
    acquire=acquire,
    prepare=prepare,
    default_params=DEFAULT_PARAMS,
    description="IEMOCAP 4-class emotion (neutral/angry/sad/happy+excited) from user-extracted audio/visual/text features; session-held-out test",
    source="USC SAIL IEMOCAP (licence on request); features extracted by the user into iemocap.npz",
    license="IEMOCAP release agreement (research only, no redistribution)",
    disk="depends on the features (typically < 2 GB)",
    manual=True,
))
