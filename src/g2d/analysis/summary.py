"""The results contract: ``results/summary.csv`` in long form.

Columns ``dataset,method,fusion,seed,metric,value``; metrics include ``acc`` (multimodal test
accuracy), ``acc_<modality>`` (student per-modality test accuracy), ``teacher_acc_<modality>``,
``val_acc``, ``macro_f1``; regression runs ``mape``, ``r2`` (+ per-modality ``r2_<m>``).
Extra identifying columns (``modalities``, ``variant``) are added when runs differ in them.

:func:`headline_metrics` condenses it to the small nested JSON that ``g2d summarize --metrics-json``
writes for ``dvc metrics show`` (means over seeds of the headline metrics).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from ..errors import DataError
from ..train.common import write_json, write_text_atomic

ID_COLS = ["dataset", "method", "fusion", "seed"]
SKIP = {"best_epoch", "epochs_trained", "train_time_s", "teacher_outputs"}


def _metric_keys(m: dict) -> list[str]:
    keep = []
    for k, v in m.items():
        if k in ID_COLS or k in SKIP or not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        if k.startswith(("acc", "teacher_", "val_acc", "macro_f1", "mape", "r2", "val_r2", "val_mape", "loss",
                         "align_", "cratio_", "sconf_", "tconf_", "val_macro_f1", "missing_")):
            keep.append(k)
    return keep


def summarize(metrics_files, out: str | Path | None = None) -> pd.DataFrame:
    rows = []
    for f in metrics_files:
        p = Path(f)
        try:
            m = json.loads(p.read_text())
        except FileNotFoundError:
            raise DataError(f"{p}: metrics file not found") from None
        except json.JSONDecodeError as exc:
            raise DataError(f"{p}: corrupt JSON ({exc.msg})") from None
        missing = [c for c in ID_COLS if c not in m]
        if missing:
            raise DataError(f"{p}: missing keys {missing}")
        mods = "+".join(m.get("modalities", []))
        for k in _metric_keys(m):
            v = float(m[k])
            rows.append({"dataset": m["dataset"], "method": m["method"], "fusion": m["fusion"], "seed": int(m["seed"]),
                         "modalities": mods, "variant": m.get("variant", "main"), "metric": k,
                         "value": v if math.isfinite(v) else float("nan")})
    df = pd.DataFrame(rows, columns=ID_COLS + ["modalities", "variant", "metric", "value"])
    df = df.sort_values(["dataset", "variant", "modalities", "method", "fusion", "seed", "metric"]).reset_index(drop=True)
    if out is not None:
        write_text_atomic(out, df.to_csv(index=False))
    return df


#: metrics of the headline JSON (plus their per-modality ``<name>_<modality>`` forms)
HEADLINE = ("acc", "macro_f1", "r2", "mape")


def _is_headline(metric: str) -> bool:
    return any(metric == h or metric.startswith(f"{h}_") for h in HEADLINE) and not metric.startswith("val_")


def headline_metrics(df: pd.DataFrame, out: str | Path | None = None) -> dict:
    """Means over seeds of the headline test metrics of the ``main`` variant runs.

    ``{dataset: {fusion: {method: {metric: mean, ..., "n_seeds": n}}, "teachers": {teacher_acc_<m>: mean}}}``;
    metrics: ``acc``, ``macro_f1``, ``r2``, ``mape`` and their ``_<modality>`` forms; teachers: the
    ``teacher_*`` metrics, one value per seed. Written as JSON to ``out`` when given.
    """
    out_d: dict = {}
    main = df[df["variant"] == "main"] if "variant" in df else df
    for (ds, fusion, method), g in main.groupby(["dataset", "fusion", "method"], sort=True):
        row = {m: round(float(v.mean()), 6) for m, v in g.groupby("metric")["value"] if _is_headline(m)}
        row["n_seeds"] = int(g["seed"].nunique())
        out_d.setdefault(ds, {}).setdefault(fusion, {})[method] = row
    teach = main[main["metric"].str.startswith("teacher_")]
    for (ds, metric), g in teach.groupby(["dataset", "metric"], sort=True):
        per_seed = g.groupby("seed")["value"].first()
        out_d.setdefault(ds, {}).setdefault("teachers", {})[metric] = round(float(per_seed.mean()), 6)
    if out is not None:
        write_json(out, out_d)
    return out_d
