"""Load finished runs into pandas DataFrames for the figures, tables and notebooks.

The run-directory layout is the pipeline's (see docs/architecture.md):

- students: ``<results>/<dataset>/runs/<variant>/<modset>/<method>/<fusion>/s<seed>/``
  with ``metrics.json``, ``history.csv`` and ``embeddings.npz``;
- teachers: ``<results>/<dataset>/teachers/<modality>/s<seed>/`` with ``metrics.json`` and
  ``history.csv``;
- the results contract ``<results>/summary.csv`` (long form, :mod:`g2d.analysis.summary`).

Every loader works on whatever runs exist: a missing run is simply absent from the frame. A
*broken* input (unreadable JSON, a history without an ``epoch`` column, a summary without the
contract's columns) raises :class:`g2d.errors.DataError` with a one-line message naming the file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from ..errors import DataError

__all__ = ["RUN_KEYS", "TEACHER_KEYS", "SUMMARY_COLS", "discover_runs", "load_run_metrics", "load_histories",
           "discover_teachers", "load_teacher_metrics", "load_teacher_histories", "load_summary",
           "load_embeddings", "summary_modalities", "run_modalities", "task_of", "filter_frame", "run_counts"]

RUN_KEYS = ["dataset", "variant", "modset", "method", "fusion", "seed"]
TEACHER_KEYS = ["dataset", "modality", "seed"]
SUMMARY_COLS = ["dataset", "method", "fusion", "seed", "metric", "value"]


# ---- small helpers ------------------------------------------------------------------------------

def _results_dir(results: str | Path) -> Path:
    p = Path(results)
    if not p.is_dir():
        raise DataError(f"{p}: results directory not found")
    return p


def _read_json(p: Path) -> dict:
    try:
        obj = json.loads(p.read_text())
    except FileNotFoundError:
        raise DataError(f"{p}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{p}: corrupt JSON ({getattr(exc, 'msg', exc)})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{p}: expected a JSON object")
    return obj


def _read_history(p: Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(p)
    except FileNotFoundError:
        raise DataError(f"{p}: file not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{p}: unreadable history CSV ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if "epoch" not in df.columns:
        raise DataError(f"{p}: history has no 'epoch' column")
    for c in df.columns:
        if df[c].dtype == object:
            df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


def _seed_of(name: str, p: Path) -> int:
    if not (name.startswith("s") and name[1:].isdigit()):
        raise DataError(f"{p}: seed directory must be named s<seed>, got '{name}'")
    return int(name[1:])


def filter_frame(df: pd.DataFrame, **eq) -> pd.DataFrame:
    """Rows where each given column equals the value (or is in it, for a list/tuple/set); None = no filter."""
    mask = pd.Series(True, index=df.index)
    for k, v in eq.items():
        if v is None or k not in df.columns:
            continue
        if isinstance(v, (list, tuple, set)):
            mask &= df[k].isin(list(v))
        else:
            mask &= df[k] == v
    return df[mask]


# ---- students ----------------------------------------------------------------------------------

def discover_runs(results: str | Path, dataset: str | None = None, variant: str | None = None,
                  modset: str | None = None, methods: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per finished student run (a ``metrics.json`` exists): RUN_KEYS + ``path``."""
    root = _results_dir(results)
    rows = []
    for mf in sorted(root.glob("*/runs/*/*/*/*/s*/metrics.json")):
        sdir = mf.parent
        fus, meth, ms, var, ds = sdir.parent, sdir.parent.parent, sdir.parents[2], sdir.parents[3], sdir.parents[5]
        rows.append({"dataset": ds.name, "variant": var.name, "modset": ms.name, "method": meth.name,
                     "fusion": fus.name, "seed": _seed_of(sdir.name, sdir), "path": str(sdir)})
    df = pd.DataFrame(rows, columns=RUN_KEYS + ["path"])
    df = filter_frame(df, dataset=dataset, variant=variant, modset=modset,
                      method=list(methods) if methods is not None else None)
    return df.sort_values(RUN_KEYS).reset_index(drop=True)


def load_run_metrics(results: str | Path, **filters) -> pd.DataFrame:
    """Wide frame: one row per run, RUN_KEYS + ``modalities`` ('a+b') + every numeric metric of metrics.json."""
    runs = discover_runs(results, **filters)
    rows = []
    for r in runs.itertuples(index=False):
        m = _read_json(Path(r.path) / "metrics.json")
        row = {k: getattr(r, k) for k in RUN_KEYS}
        row["path"] = r.path
        row["modalities"] = "+".join(m.get("modalities") or [])
        for k, v in m.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("seed",):
                row[k] = float(v) if math.isfinite(float(v)) else float("nan")
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else RUN_KEYS + ["path", "modalities"])


def load_histories(results: str | Path, **filters) -> pd.DataFrame:
    """Long-by-epoch frame: RUN_KEYS + ``modalities`` + the history.csv columns, all runs stacked.

    Runs whose history.csv is missing are skipped (a run in progress); a corrupt history raises.
    """
    runs = discover_runs(results, **filters)
    frames = []
    for r in runs.itertuples(index=False):
        hp = Path(r.path) / "history.csv"
        if not hp.is_file():
            continue
        h = _read_history(hp)
        m = _read_json(Path(r.path) / "metrics.json")
        meta = {k: getattr(r, k) for k in RUN_KEYS}
        meta["modalities"] = "+".join(m.get("modalities") or [])
        h = h.assign(**meta)
        frames.append(h)
    if not frames:
        return pd.DataFrame(columns=RUN_KEYS + ["modalities", "epoch"])
    df = pd.concat(frames, ignore_index=True)
    front = RUN_KEYS + ["modalities", "epoch"]
    return df[front + [c for c in df.columns if c not in front]]


def run_modalities(df: pd.DataFrame) -> list[str]:
    """Modalities of the runs in a frame (from its ``modalities`` column), in first-seen order."""
    out: list[str] = []
    for s in df.get("modalities", pd.Series(dtype=str)).dropna().unique():
        for m in str(s).split("+"):
            if m and m not in out:
                out.append(m)
    return out


def task_of(columns: Iterable[str]) -> str:
    """'classification' when accuracy columns are present, else 'regression' (r2/mape)."""
    cols = set(columns)
    if cols & {"acc", "val_acc"}:
        return "classification"
    if cols & {"r2", "val_r2", "mape"}:
        return "regression"
    return "classification"


def load_embeddings(run_dir: str | Path) -> dict:
    """``{'features': {modality: (N, D) float array}, 'labels': (N,) array}`` from a run's embeddings.npz."""
    p = Path(run_dir) / "embeddings.npz"
    if not p.is_file():
        raise DataError(f"{p}: file not found")
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # zipfile.BadZipFile, ValueError, OSError ...
        raise DataError(f"{p}: cannot read ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    feats = {k[len("features_"):]: np.asarray(v, dtype=np.float64).reshape(len(v), -1)
             for k, v in arrays.items() if k.startswith("features_")}
    if not feats:
        raise DataError(f"{p}: no features_<modality> arrays")
    n = {len(v) for v in feats.values()}
    if len(n) != 1:
        raise DataError(f"{p}: modalities have different sample counts {sorted(n)}")
    return {"features": feats, "labels": arrays.get("labels")}


# ---- teachers ----------------------------------------------------------------------------------

def discover_teachers(results: str | Path, dataset: str | None = None) -> pd.DataFrame:
    root = _results_dir(results)
    rows = []
    for mf in sorted(root.glob("*/teachers/*/s*/metrics.json")):
        sdir = mf.parent
        rows.append({"dataset": sdir.parents[2].name, "modality": sdir.parent.name,
                     "seed": _seed_of(sdir.name, sdir), "path": str(sdir)})
    df = pd.DataFrame(rows, columns=TEACHER_KEYS + ["path"])
    return filter_frame(df, dataset=dataset).sort_values(TEACHER_KEYS).reset_index(drop=True)


def load_teacher_metrics(results: str | Path, dataset: str | None = None) -> pd.DataFrame:
    """One row per teacher run: TEACHER_KEYS + numeric metrics (acc, val_acc, macro_f1 | r2, mape ...)."""
    rows = []
    for r in discover_teachers(results, dataset).itertuples(index=False):
        m = _read_json(Path(r.path) / "metrics.json")
        row = {"dataset": r.dataset, "modality": r.modality, "seed": r.seed, "path": r.path}
        for k, v in m.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "seed":
                row[k] = float(v)
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else TEACHER_KEYS + ["path"])


def load_teacher_histories(results: str | Path, dataset: str | None = None) -> pd.DataFrame:
    frames = []
    for r in discover_teachers(results, dataset).itertuples(index=False):
        hp = Path(r.path) / "history.csv"
        if hp.is_file():
            frames.append(_read_history(hp).assign(dataset=r.dataset, modality=r.modality, seed=r.seed))
    if not frames:
        return pd.DataFrame(columns=TEACHER_KEYS + ["epoch"])
    df = pd.concat(frames, ignore_index=True)
    front = TEACHER_KEYS + ["epoch"]
    return df[front + [c for c in df.columns if c not in front]]


# ---- the results contract ---------------------------------------------------------------------

def load_summary(path: str | Path) -> pd.DataFrame:
    """Read and check ``summary.csv`` (long form); adds ``modalities``/``variant`` when absent."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: summary file not found")
    try:
        df = pd.read_csv(p)
    except pd.errors.EmptyDataError:
        raise DataError(f"{p}: empty summary file") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{p}: unreadable CSV ({str(exc).splitlines()[0]})") from None
    missing = [c for c in SUMMARY_COLS if c not in df.columns]
    if missing:
        raise DataError(f"{p}: missing columns {missing} (expected {','.join(SUMMARY_COLS)})")
    if "modalities" not in df.columns:
        df["modalities"] = ""
    if "variant" not in df.columns:
        df["variant"] = "main"
    df["modalities"] = df["modalities"].fillna("").astype(str)
    df["variant"] = df["variant"].fillna("main").astype(str)
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    return df


def summary_modalities(df: pd.DataFrame) -> list[str]:
    """Modalities of a summary frame: from its ``modalities`` column, else from ``acc_<m>`` metrics."""
    mods = run_modalities(df)
    if mods:
        return mods
    out = []
    for k in df["metric"].unique():
        for pre in ("teacher_acc_", "acc_", "r2_"):
            if str(k).startswith(pre) and k[len(pre):] not in out:
                out.append(k[len(pre):])
                break
    return out


def run_counts(summary: pd.DataFrame) -> pd.DataFrame:
    """Overview of a summary frame: seeds per (dataset, variant, modalities, method, fusion)."""
    keys = [c for c in ("dataset", "variant", "modalities", "method", "fusion") if c in summary.columns]
    if summary.empty:
        return pd.DataFrame(columns=keys + ["n seeds", "seeds"])
    g = summary.groupby(keys)["seed"]
    out = pd.DataFrame({"n seeds": g.nunique(), "seeds": g.apply(lambda s: ",".join(map(str, sorted(set(s)))))})
    return out.reset_index()
