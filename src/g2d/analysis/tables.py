"""The paper tables: ``g2d table N`` -> ``<out>.csv``, ``<out>.md``, ``<out>.tex``.

The table's cells come from its plan (:func:`g2d.tables_plan.plan`, the same plan the Snakemake
target ``table<N>`` takes its inputs from): every cell is (row, column, seed) -> a value in a
run's ``metrics.json`` (or ``missing.json``, the benchmark JSON). Values are aggregated over
seeds — mean, sample std (ddof = 1) and the seed count n — and rendered with
:func:`g2d.analysis.tables_render.render_stats_table` (best **bold**, second underlined per
column; n shown once when every cell has the same n, else per cell).

Outputs
    ``<out>.csv``  tidy: one row per cell — row key, ``column``, ``metric``, ``mean``, ``std``,
                   ``n``, ``rank``, ``mark``, ``text`` (the formatted cell);
    ``<out>.md``   title, the table, notes (what the rows are, options used);
    ``<out>.tex``  a booktabs ``table`` with caption and ``\\label{tab:table<N>}``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from ..errors import DataError
from ..tables_plan import TablePlan, plan
from ..train.common import write_text_atomic
from .tables_render import render_stats_table

__all__ = ["read_cells", "aggregate_cells", "build_table", "write_table", "add_parser"]


def _lookup(obj, key: str, path: str):
    node = obj
    for part in key.split("/"):
        if isinstance(node, list):
            try:
                node = node[int(part)]
            except (ValueError, IndexError):
                raise DataError(f"{path}: no entry '{key}'") from None
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise DataError(f"{path}: no entry '{key}' (is the run from an older version? rerun it)")
    return node


def read_cells(p: TablePlan, allow_missing: bool = False) -> pd.DataFrame:
    """Long frame: row, column, seed, metric, value (scaled), better, digits — one line per cell read."""
    cache: dict[str, dict | None] = {}
    recs = []
    for c in p.cells:
        if c.path not in cache:
            f = Path(c.path)
            try:
                cache[c.path] = json.loads(f.read_text())
            except FileNotFoundError:
                if not allow_missing:
                    raise DataError(f"{f}: not found (build it first: snakemake table{p.number})") from None
                cache[c.path] = None
            except json.JSONDecodeError as exc:
                raise DataError(f"{f}: corrupt JSON ({exc.msg})") from None
        obj = cache[c.path]
        if obj is None:
            continue
        v = _lookup(obj, c.key, c.path)
        if v is None or isinstance(v, (dict, list)) or isinstance(v, bool):
            raise DataError(f"{c.path}: entry '{c.key}' is not a number")
        v = float(v) * c.scale
        if not math.isfinite(v):
            continue
        recs.append({"row": c.row, "column": c.col, "seed": c.seed, "metric": c.metric, "value": v,
                     "better": c.better, "digits": c.digits})
    return pd.DataFrame(recs, columns=["row", "column", "seed", "metric", "value", "better", "digits"])


def aggregate_cells(df: pd.DataFrame) -> pd.DataFrame:
    """mean, std (ddof=1; NaN for one seed), n per (row, column)."""
    g = df.groupby(["row", "column"], sort=False)
    out = g["value"].agg(mean="mean", std=lambda s: s.std(ddof=1), n="count").reset_index()
    out["metric"] = g["metric"].first().values
    return out


def build_table(cfg: dict, n: int, allow_missing: bool = False) -> tuple[str, str, pd.DataFrame, TablePlan]:
    """(markdown, latex, csv frame, plan) of table ``n``."""
    p = plan(cfg, n)
    df = read_cells(p, allow_missing)
    if df.empty:
        raise DataError(f"table {n}: no values to tabulate (none of its {len(p.inputs)} input files exist)")
    stats = aggregate_cells(df).rename(columns={"row": p.row_header})
    better = {c.metric: c.better != "min" for c in p.cells}
    decimals = max(c.digits for c in p.cells)
    md, tex, csv_df = render_stats_table(stats, [p.row_header], ["column"], decimals=decimals, percent=False,
                                         higher_is_better=better, row_order=[(r,) for r in p.rows],
                                         col_order=[(c,) for c in p.cols], caption=p.title, label=f"tab:table{n}",
                                         labels={})
    if n == 10:  # its "seeds" are measurement rounds of one process
        md, tex = (t.replace(" seeds per cell", " measurement rounds per cell").replace("over seeds", "over rounds")
                   for t in (md, tex))
    notes = "".join(f"- {x}\n" for x in p.notes)
    variants = {v: o for v, o in p.variants.items()}
    if variants:
        notes += "- variants: " + "; ".join(f"`{v}` = " + ", ".join(f"{k}={o[k]}" for k in o) for v, o in variants.items()) + "\n"
    md = f"## {p.title}\n\n{md}\n{notes}"
    return md, tex, csv_df, p


def write_table(cfg: dict, n: int, out_prefix: str | Path, allow_missing: bool = False) -> list[Path]:
    md, tex, csv_df, _ = build_table(cfg, n, allow_missing)
    out_prefix = Path(out_prefix)
    paths = [out_prefix.with_name(out_prefix.name + ext) for ext in (".csv", ".md", ".tex")]
    write_text_atomic(paths[0], csv_df.to_csv(index=False))
    write_text_atomic(paths[1], md)
    write_text_atomic(paths[2], tex)
    return paths


def cmd_table(args) -> None:
    from ..cli import _cfg, _log
    cfg = _cfg(args)
    out = args.out or f"{cfg['paths']['results']}/tables/table{args.number}"
    paths = write_table(cfg, args.number, out, args.allow_missing)
    _log(f"[g2d] wrote {', '.join(map(str, paths))}")
    if args.print:
        print(paths[1].read_text())


def add_parser(sub, add_common) -> None:
    s = sub.add_parser("table", help="aggregate the runs of a paper table over seeds -> CSV + Markdown + LaTeX")
    add_common(s)
    s.add_argument("number", type=int, help="table number: 1 2 3 4 5 6 7 9 10 11 12")
    s.add_argument("--out", default=None, help="output prefix (default <paths.results>/tables/table<N>)")
    s.add_argument("--allow-missing", action="store_true", help="render the cells that exist (others '–')")
    s.add_argument("--print", action="store_true", help="print the Markdown table")
    s.set_defaults(func=cmd_table)
