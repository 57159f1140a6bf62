"""Render result tables (mean ± std over seeds, n shown, best **bold** / second-best underlined).

Entry point for the experiment-matrix tables (``g2d.analysis.tables``) and the notebooks::

    md, tex, csv_df = render_table(df_long, rows=("method",), cols=("metric",),
                                   metric=["acc", "acc_audio", "acc_visual"])

``df_long`` is the long-form results contract (``summary.csv``: dataset, method, fusion, seed,
[modalities, variant,] metric, value). Values are aggregated over ``seed`` within each
(rows × cols) cell: mean, sample std (ddof = 1; blank when n = 1) and n. Ranking is per column
across rows; the direction comes from the metric name (lower is better for ``mape``, ``loss``,
``*_time*``; higher otherwise) unless ``higher_is_better`` is given. Ties share the mark. Cells
with fewer seeds than the column maximum are flagged by their n, never silently mixed.

Accuracy-like metrics (``acc*``, ``val_acc*``, ``teacher_acc*``, ``macro_f1``, ``val_macro_f1``)
are shown in percent (× 100) by default, as in the paper; ``percent=False`` keeps fractions.

``csv_df`` is tidy (one row per cell): the row and column keys, ``mean``, ``std``, ``n``, ``rank``
(1 = best within the column), ``mark`` (``best``/``second``/empty) and ``text`` (the formatted
cell without markup). :func:`render_stats_table` renders such a pre-aggregated frame again (the
report notebook uses it on ``results/tables/*.csv``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..errors import DataError

__all__ = ["METHOD_LABELS", "render_table", "headline_tables", "show_tables", "render_stats_table", "render_any_table", "aggregate", "lower_is_better", "is_percent"]

# display names of the methods (shared with g2d.analysis.figures)
METHOD_LABELS = {"joint": "Joint-Train", "umt": "UMT", "smp": "SMP only", "g2d_loss": "G2D loss only", "g2d": "G2D",
                 "g2d_partial": "G2D (partial supp.)", "ogm_ge": "OGM-GE", "mslr": "MSLR", "mla": "MLA",
                 "logit_kd": "Logit KD", "teacher": "Unimodal teacher"}

_PERCENT_PREFIXES = ("acc", "val_acc", "teacher_acc", "macro_f1", "val_macro_f1", "test_acc")


def _as_list(x) -> list:
    if x is None:
        return []
    if isinstance(x, str):
        return [x]
    return list(x)


def lower_is_better(metric: str) -> bool:
    """Direction from the name: errors, losses, times and memory are better when lower."""
    m = str(metric).lower()
    return ("mape" in m or "loss" in m or "time" in m or "error" in m or m.startswith("mem")
            or m.endswith(("_ms", "_s", "_mb", "_gb", "_mib")))


def is_percent(metric: str) -> bool:
    m = str(metric).lower()
    return any(m == p or m.startswith(p + "_") for p in _PERCENT_PREFIXES)


def aggregate(df_long: pd.DataFrame, rows: Sequence[str], cols: Sequence[str], metric=None,
              filters: dict | None = None) -> pd.DataFrame:
    """Mean, std (ddof=1), n over seeds for every (rows × cols) cell of a long-form frame."""
    need = {"value"} | set(rows) | set(cols)
    if metric is not None or "metric" in need:
        need.add("metric")
    missing = [c for c in need if c not in df_long.columns]
    if missing:
        raise DataError(f"results frame: missing columns {sorted(missing)} (have {', '.join(map(str, df_long.columns))})")
    d = df_long
    for k, v in (filters or {}).items():
        d = d[d[k].isin(_as_list(v))] if isinstance(v, (list, tuple, set)) else d[d[k] == v]
    if metric is not None:
        d = d[d["metric"].isin(_as_list(metric))]
    keys = list(rows) + list(cols)
    if "seed" in d.columns:  # one value per seed and cell (duplicate rows, e.g. repeated runs, are averaged)
        d = d.groupby(keys + ["seed"], dropna=False, sort=False)["value"].mean().reset_index()
    g = d.groupby(keys, dropna=False, sort=False)["value"]
    out = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1), "n": g.count()}).reset_index()
    return out


def _fmt_num(x: float, decimals: int) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{decimals}f}"


def _cell_text(mean, std, n, decimals, show_n=True) -> str:
    if n == 0 or mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    s = _fmt_num(mean, decimals)
    if n > 1 and std is not None and not (isinstance(std, float) and math.isnan(std)):
        s += f" ± {_fmt_num(std, decimals)}"
    if show_n:
        s += f" (n={int(n)})"
    return s


def _tex_escape(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"),
                 ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"), ("^", r"\^{}")):
        s = s.replace(a, b)
    return s.replace("±", "$\\pm$").replace("–", "--")


def _rank(values: pd.Series, lower: bool) -> pd.Series:
    """Dense rank (1 = best) of the distinct values, ties share a rank; NaN -> NaN."""
    v = values.astype(float)
    return v.rank(method="dense", ascending=lower)


def render_stats_table(stats: pd.DataFrame, rows: Sequence[str], cols: Sequence[str], decimals: int = 2,
                       percent: bool | None = True, higher_is_better: bool | dict | None = None,
                       row_order: Iterable | None = None, col_order: Iterable | None = None,
                       show_n: bool = True, caption: str | None = None, label: str | None = None,
                       labels: dict | None = None, keep_marks: bool = False):
    """Render a pre-aggregated frame (keys + mean, std, n) — see :func:`render_table`.

    ``keep_marks=True`` re-renders a frame that already has ``rank``/``mark``/``text`` (a csv written
    by this module) exactly as marked, without re-ranking or re-formatting.
    """
    labels = METHOD_LABELS if labels is None else labels
    rows, cols = list(rows), list(cols)
    need = rows + cols + ["mean", "n"]
    missing = [c for c in need if c not in stats.columns]
    if missing:
        raise DataError(f"table frame: missing columns {missing}")
    st = stats.copy()
    if "std" not in st.columns:
        st["std"] = np.nan
    st["n"] = st["n"].fillna(0).astype(int)
    # the metric of each cell (a key column, or a constant column) sets the direction and the % scale
    has_metric = "metric" in st.columns
    if percent and has_metric:
        scale = st["metric"].map(lambda m: 100.0 if is_percent(m) else 1.0).astype(float)
        st["mean"] = st["mean"] * scale
        st["std"] = st["std"] * scale

    def _lower(metric) -> bool:
        if isinstance(higher_is_better, dict):
            return not higher_is_better.get(metric, not lower_is_better(metric or ""))
        if higher_is_better is not None:
            return not higher_is_better
        return lower_is_better(metric or "")

    rkey = (lambda r: tuple(r[c] for c in rows))
    ckey = (lambda r: tuple(r[c] for c in cols))
    st["_r"] = st.apply(rkey, axis=1) if len(st) else []
    st["_c"] = st.apply(ckey, axis=1) if len(st) else []
    rorder = [tuple(_as_list(x)) if not isinstance(x, tuple) else x for x in row_order] if row_order is not None \
        else list(dict.fromkeys(st["_r"]))
    corder = [tuple(_as_list(x)) if not isinstance(x, tuple) else x for x in col_order] if col_order is not None \
        else list(dict.fromkeys(st["_c"]))
    rorder = [r for r in rorder if r in set(st["_r"])] + [r for r in dict.fromkeys(st["_r"]) if r not in rorder]
    corder = [c for c in corder if c in set(st["_c"])] + [c for c in dict.fromkeys(st["_c"]) if c not in corder]

    kept = keep_marks and {"mark", "text"} <= set(st.columns)
    if kept:  # a csv written by this module: marks and cell texts are authoritative
        st["mark"] = st["mark"].fillna("").astype(str)
        st["text"] = st["text"].fillna("–").astype(str)
        if "rank" not in st.columns:
            st["rank"] = np.nan
        ns = set(st.loc[st["n"] > 0, "n"])
        common_n = next(iter(ns)) if show_n and len(ns) == 1 and not any("(n=" in t for t in st["text"]) else None
    else:
        st["rank"] = np.nan
        for c in corder:
            idx = st.index[st["_c"] == c]
            metric = st.loc[idx[0], "metric"] if has_metric and len(idx) else None
            # rank what is displayed: equal printed means are ties
            st.loc[idx, "rank"] = _rank(st.loc[idx, "mean"].round(decimals), _lower(metric)).values
        # a mark needs a competitor: no marks in a column whose printed values are all equal (or single)
        distinct = st.groupby("_c")["mean"].transform(lambda s: s.round(decimals).nunique())
        counts = st.groupby("_c")["mean"].transform(lambda s: s.notna().sum())
        st["mark"] = np.where((st["rank"] == 1) & (distinct > 1), "best",
                              np.where((st["rank"] == 2) & (counts > 2), "second", ""))
        # n: per cell when it varies, once in the note when every cell has the same n
        ns = set(st.loc[st["n"] > 0, "n"])
        common_n = next(iter(ns)) if show_n and len(ns) == 1 else None
        st["text"] = [_cell_text(m, s, n, decimals, show_n and common_n is None)
                      for m, s, n in zip(st["mean"], st["std"], st["n"])]

    lookup = {(r, c): rec for r, c, rec in zip(st["_r"], st["_c"], st.to_dict("records"))}

    def _hdr(keys: tuple) -> str:
        return " / ".join(str(labels.get(k, k)) if isinstance(k, str) else str(k) for k in keys)

    # Markdown
    head = [" / ".join(rows)] + [_hdr(c) for c in corder]
    md = ["| " + " | ".join(head) + " |", "| " + " | ".join([":--"] + ["--:"] * len(corder)) + " |"]
    for r in rorder:
        cells = [_hdr(r)]
        for c in corder:
            rec = lookup.get((r, c))
            if rec is None:
                cells.append("–")
                continue
            t = rec["text"]
            cells.append(f"**{t}**" if rec["mark"] == "best" else f"<u>{t}</u>" if rec["mark"] == "second" else t)
        md.append("| " + " | ".join(cells) + " |")
    notes = []
    if percent and has_metric and any(is_percent(m) for m in st["metric"]):
        notes.append("accuracy-type metrics in %")
    if show_n:
        notes.append(f"mean ± std over n = {common_n} seed{'s' if common_n != 1 else ''} per cell" if common_n is not None
                     else "mean ± std over seeds (n = seeds per cell)")
    markdown = "\n".join(md) + "\n\n" + "; ".join(notes + ["**best**, <u>second best</u> per column"]) + ".\n"
    tex_note = "; ".join(notes + ["best in bold, second best underlined per column"]) + "."

    # LaTeX (booktabs)
    tex = [f"% {tex_note}"]
    if caption or label:
        tex += ["\\begin{table}[t]", "\\centering"]
    tex += ["\\begin{tabular}{l" + "r" * len(corder) + "}", "\\toprule",
            " & ".join(_tex_escape(h) for h in head) + " \\\\", "\\midrule"]
    for r in rorder:
        cells = [_tex_escape(_hdr(r))]
        for c in corder:
            rec = lookup.get((r, c))
            if rec is None:
                cells.append("--")
                continue
            t = _tex_escape(rec["text"])
            cells.append(f"\\textbf{{{t}}}" if rec["mark"] == "best" else f"\\underline{{{t}}}"
                         if rec["mark"] == "second" else t)
        tex.append(" & ".join(cells) + " \\\\")
    tex += ["\\bottomrule", "\\end{tabular}"]
    if caption or label:
        if caption:
            tex.append(f"\\caption{{{_tex_escape(caption + ' (' + tex_note.rstrip('.') + ').')}}}")
        if label:
            tex.append(f"\\label{{{label}}}")
        tex.append("\\end{table}")
    latex = "\n".join(tex) + "\n"

    csv_df = st.drop(columns=["_r", "_c"])
    csv_df["rank"] = csv_df["rank"].astype("Int64")
    order = {r: i for i, r in enumerate(rorder)}
    corder_i = {c: i for i, c in enumerate(corder)}
    csv_df = csv_df.assign(_o=[(order.get(tuple(rec[k] for k in rows), 0), corder_i.get(tuple(rec[k] for k in cols), 0))
                               for rec in csv_df.to_dict("records")]).sort_values("_o").drop(columns="_o")
    extra = ["metric"] if has_metric and "metric" not in rows + cols else []
    csv_df = csv_df[rows + cols + extra + ["mean", "std", "n", "rank", "mark", "text"]].reset_index(drop=True)
    return markdown, latex, csv_df


def render_table(df_long: pd.DataFrame, rows: Sequence[str] = ("method",), cols: Sequence[str] = ("metric",),
                 metric=None, filters: dict | None = None, decimals: int = 2, percent: bool | None = True,
                 higher_is_better: bool | dict | None = None, row_order: Iterable | None = None,
                 col_order: Iterable | None = None, show_n: bool = True, caption: str | None = None,
                 label: str | None = None, labels: dict | None = None):
    """Aggregate a long-form results frame over seeds and render it.

    ``rows``/``cols``: columns of ``df_long`` forming the table's row and column keys (e.g.
    ``rows=("method",), cols=("metric",)`` or ``rows=("method",), cols=("fusion",), metric="acc"``).
    ``metric``: one metric name or a list (filter); ``filters``: ``{column: value or list}``.
    When ``metric`` is a single name not among ``rows``/``cols``, every column ranks that metric.
    ``row_order``/``col_order``: key tuples (default: methods in the paper's order, metrics in the
    order asked for); ``labels``: display names for key values (default: method names ->
    ``METHOD_LABELS``; ``{}`` keeps raw names); ``caption``/``label`` wrap the LaTeX in a ``table``.
    Returns ``(markdown, latex, csv_df)``.
    """
    rows, cols = list(_as_list(rows)), list(_as_list(cols))
    if df_long is None or len(df_long) == 0:
        raise DataError("results frame: no rows to tabulate")
    stats = aggregate(df_long, rows, cols, metric, filters)
    if stats.empty:
        raise DataError(f"results frame: no rows for metric {metric!r} and filters {filters or {}}")
    single = _as_list(metric)
    if len(single) == 1 and "metric" not in rows + cols:
        stats["metric"] = single[0]  # one metric in every cell: sets direction and % scale
    if col_order is None and cols == ["metric"] and len(single) > 1:
        col_order = [(m,) for m in single]  # the order asked for
    if row_order is None and rows == ["method"]:
        present = list(dict.fromkeys(stats["method"]))
        known = [m for m in METHOD_LABELS if m in present]
        row_order = [(m,) for m in known + [m for m in present if m not in known]]
    return render_stats_table(stats, rows, cols, decimals, percent, higher_is_better, row_order, col_order,
                              show_n, caption, label, labels)


def render_any_table(df: pd.DataFrame, decimals: int = 2):
    """Render a table CSV of unknown shape for display (``results/tables/*.csv``) -> ``(markdown, latex, csv_df)``.

    - long form (``metric`` + ``value`` [+ ``seed``]): ``render_table`` with rows = method (+ other
      id columns that vary) and cols = metric;
    - pre-aggregated (``mean`` + ``n``, e.g. a ``render_table`` csv): re-rendered with the other
      non-stat columns as keys (the last key as columns);
    - anything else (a wide table): shown as is, numeric columns marked best/second (higher = better
      unless the column name says loss/mape/time).
    """
    if {"metric", "value"} <= set(df.columns):
        ids = [c for c in ("dataset", "variant", "modalities", "fusion", "method") if c in df.columns and df[c].nunique() > 1]
        rows = ids or (["method"] if "method" in df.columns else [])
        if not rows:
            rows = [c for c in df.columns if c not in ("metric", "value", "seed")][:1]
        return render_table(df, rows=rows, cols=("metric",), decimals=decimals)
    if {"mean", "n"} <= set(df.columns):
        keys = [c for c in df.columns if c not in ("mean", "std", "n", "rank", "mark", "text")]
        if not keys:
            raise DataError("table: pre-aggregated table without key columns")
        if "column" in keys:  # g2d.analysis.tables: <row header>, column, metric, ...
            cols = ["column"]
        elif "metric" in keys and len(keys) > 1:
            cols = ["metric"]
        else:
            cols = keys[-1:]
        rows = [k for k in keys if k not in cols and k != "metric"] or [k for k in keys if k not in cols][:1]
        return render_stats_table(df, rows, cols, decimals, percent=False, labels={}, keep_marks=True)
    # wide: first non-numeric columns are row keys
    keys = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    num = [c for c in df.columns if c not in keys]
    if not keys:
        df = df.reset_index().rename(columns={"index": "row"})
        keys = ["row"]
    if not num:
        md = df.to_markdown(index=False) if _has_tabulate() else df.to_string(index=False)
        return md + "\n", df.to_latex(index=False), df
    long = df.melt(id_vars=keys, value_vars=num, var_name="column", value_name="mean")
    long["n"] = 1
    long["std"] = np.nan
    long["metric"] = long["column"]  # drives the direction per column
    return render_stats_table(long, keys, ["column"], decimals, percent=False, show_n=False,
                              col_order=[(c,) for c in num])


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
        return True
    except ImportError:
        return False


def headline_tables(df_long: pd.DataFrame, dataset: str | None = None, fusion: str | None = None,
                    variant: str = "main", decimals: int = 2) -> list[tuple[str, str, str, pd.DataFrame]]:
    """The report's headline table per dataset: method × {acc, acc_<m>, teacher_acc_<m>} (regression:
    r2, mape, r2_<m>, teacher_r2_<m>), mean ± std over seeds with n, on the main variant, the full
    modality set and one fusion (``None``: the fusion with most runs, ``late`` on ties).

    Returns ``[(title, markdown, latex, csv_df), ...]``; empty when the summary has no rows.
    """
    out = []
    d0 = df_long if dataset is None else df_long[df_long["dataset"] == dataset]
    for ds in sorted(d0["dataset"].unique()):
        d = d0[d0["dataset"] == ds]
        if "variant" in d.columns:
            d = d[d["variant"].astype(str) == variant]
        if "modalities" in d.columns and len(d):
            k = d["modalities"].astype(str).map(lambda s: len(s.split("+")))
            d = d[k == k.max()]
        if d.empty:
            continue
        fus = fusion
        if fus is None:
            counts = d.groupby("fusion")["seed"].nunique()
            fus = "late" if "late" in counts.index and counts["late"] == counts.max() else str(counts.idxmax())
        d = d[d["fusion"] == fus]
        mods = []
        for s in d.get("modalities", pd.Series(dtype=str)).unique():
            mods += [m for m in str(s).split("+") if m and m not in mods]
        metrics = set(d["metric"])
        if "acc" in metrics:
            want = ["acc"] + [f"acc_{m}" for m in mods] + [f"teacher_acc_{m}" for m in mods]
        else:
            want = ["r2", "mape"] + [f"r2_{m}" for m in mods] + [f"teacher_r2_{m}" for m in mods]
        want = [w for w in want if w in metrics]
        if not want:
            continue
        md, tex, csv_df = render_table(d, rows=("method",), cols=("metric",), metric=want, decimals=decimals,
                                       caption=f"{ds}: test results ({fus} fusion)")
        n = int(d.groupby("method")["seed"].nunique().max())
        out.append((f"{ds} — {fus} fusion, {variant} variant, {'+'.join(mods)}, up to n={n} seeds", md, tex, csv_df))
    return out


def show_tables(tables_dir: str | Path, decimals: int = 2) -> list[str]:
    """Notebook helper: display every ``<tables_dir>/*.csv`` rendered with best/second-best marks.

    Returns the table names shown; displays a note when there are none. An unreadable CSV raises
    :class:`DataError` naming the file.
    """
    from IPython.display import Markdown, display
    files = sorted(Path(tables_dir).glob("*.csv"))
    if not files:
        display(Markdown(f"_No paper tables yet: `{tables_dir}/*.csv` is empty or missing "
                         "(they are built by the table rules, e.g. `snakemake table1`)._"))
        return []
    names = []
    for f in files:
        try:
            df = pd.read_csv(f)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise DataError(f"{f}: unreadable table CSV ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        try:
            md, _, _ = render_any_table(df, decimals)
        except DataError as exc:
            raise DataError(f"{f}: {exc}") from None
        title = f.stem
        md_file = f.with_suffix(".md")
        if md_file.is_file():  # the table rule's rendering carries the paper title
            head = [ln[3:].strip() for ln in md_file.read_text().splitlines() if ln.startswith("## ")]
            title = f"{f.stem}: {head[0]}" if head else title
        display(Markdown(f"### {title}\n\n{md}"))
        names.append(f.stem)
    return names
