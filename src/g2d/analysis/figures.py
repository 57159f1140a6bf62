"""Paper figures as pure functions: DataFrames in, a :class:`matplotlib.figure.Figure` out.

No function touches pyplot's global state (figures are built with ``Figure()`` and rendered by
Agg), so they are safe in notebooks, tests and worker processes alike. :func:`save_figure` writes
PNG + PDF atomically (temp file + rename). Every function works on whatever runs exist: a
method, modality or column that is missing is skipped with a note drawn on the figure rather
than an exception; broken inputs are caught earlier by the loaders in :mod:`g2d.analysis.runs`.

Figures (paper numbering):

- :func:`fig_modality_imbalance` — Fig. 1, per-modality test accuracy of the student (joint vs
  G2D) next to the unimodal teachers; from the results contract ``summary.csv``.
- :func:`fig_teacher_confidence` — Fig. 3, teacher confidence s_m per epoch (``train_tconf_<m>``)
  with the SMP-prioritized modality shaded (``train_prio_<m>``).
- :func:`fig_modality_gap` — Fig. 4, 2-D PCA of the student's per-modality test embeddings and
  the modality gap (see :func:`modality_gap` for the definition).
- :func:`fig_alignment` — Fig. 5, student↔teacher feature cosine similarity (``val_align_<m>``).
- :func:`fig_confidence_ratio` — Fig. 6, confidence ratio of the weaker modality (``val_cratio_<m>``).
- :func:`fig_training_curves`, :func:`fig_smp_coefficients`, :func:`fig_modality_accuracy_curves`
  — the report's training diagnostics.

The ``figure_*`` functions at the end are the notebooks' one-call entry points: load the runs
(:mod:`g2d.analysis.runs`), build the figure, save ``<figures_dir>/<name>.{png,pdf}`` and return
the saved paths (plus, for the paper figures, the plotted numbers as a small table).

Epochs are shown 1-based (history.csv stores 0-based ``epoch``). Bands and error bars are
± one sample standard deviation over seeds (none when n = 1); n is always printed.
"""

from __future__ import annotations

import itertools
import os
import zlib
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..errors import G2DError
from .runs import run_modalities, summary_modalities, task_of
from .tables_render import METHOD_LABELS

__all__ = ["METHOD_LABELS", "METHOD_COLORS", "method_label", "method_color", "modality_color", "style",
           "save_figure", "imbalance_table", "fig_modality_imbalance", "fig_teacher_confidence", "modality_gap",
           "pca_2d", "fig_modality_gap", "gap_table", "fig_alignment", "weaker_modality",
           "fig_confidence_ratio", "fig_training_curves", "fig_smp_coefficients",
           "fig_modality_accuracy_curves", "select_runs", "show", "load_gap_embeddings", "figure_imbalance",
           "figure_teacher_confidence", "figure_modality_gap", "figure_alignment", "figure_confidence_ratio",
           "figure_training_curves", "figure_modality_accuracy", "figure_smp_coefficients"]

# ---- consistent style --------------------------------------------------------------------------

METHOD_ORDER = ["joint", "umt", "logit_kd", "ogm_ge", "mslr", "mla", "smp", "g2d_loss", "g2d", "g2d_partial"]
# Okabe-Ito (colour-blind safe) for the main methods; the rest stable extras.
METHOD_COLORS = {"joint": "#0072B2", "g2d": "#D55E00", "teacher": "#8C8C8C", "umt": "#009E73", "smp": "#CC79A7",
                 "g2d_loss": "#E69F00", "g2d_partial": "#8C564B", "ogm_ge": "#56B4E9", "mslr": "#999933",
                 "mla": "#882255", "logit_kd": "#44AA99"}
_EXTRA = ["#332288", "#117733", "#AA4499", "#DDCC77", "#661100", "#6699CC", "#888888"]
MODALITY_COLORS = {"audio": "#1B9E77", "visual": "#7570B3", "text": "#D95F02", "image": "#7570B3",
                   "video": "#7570B3"}
_MOD_EXTRA = ["#E7298A", "#66A61E", "#A6761D", "#E6AB02", "#666666"]

STYLE = {
    "font.size": 10, "axes.titlesize": 10.5, "axes.labelsize": 10, "legend.fontsize": 8.5,
    "xtick.labelsize": 9, "ytick.labelsize": 9, "figure.titlesize": 11.5,
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
    "grid.linewidth": 0.6, "lines.linewidth": 1.8, "legend.frameon": False,
    "pdf.fonttype": 42, "ps.fonttype": 42, "savefig.dpi": 200, "figure.dpi": 100,
}


def style():
    """Context manager applying the figure style (fonts, spines, grid, embedded TrueType in PDF)."""
    return matplotlib.rc_context(STYLE)


def _figure(**kw) -> Figure:
    """A Figure rendered by Agg, independent of pyplot and of the session's backend."""
    fig = Figure(**kw)
    FigureCanvasAgg(fig)
    return fig


def method_label(m: str) -> str:
    return METHOD_LABELS.get(m, m)


def method_color(m: str) -> str:
    return METHOD_COLORS.get(m) or _EXTRA[zlib.crc32(m.encode()) % len(_EXTRA)]


def modality_color(m: str) -> str:
    return MODALITY_COLORS.get(m) or _MOD_EXTRA[zlib.crc32(m.encode()) % len(_MOD_EXTRA)]


def _order_methods(methods: Iterable[str]) -> list[str]:
    ms = list(dict.fromkeys(methods))
    return sorted(ms, key=lambda m: (METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER), m))


def save_figure(fig: Figure, path: str | Path, formats: Sequence[str] = ("png", "pdf"), dpi: int = 200) -> list[Path]:
    """Write ``<path>.png`` and ``<path>.pdf`` (suffix of ``path`` ignored), each atomically."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix.lower() in {".png", ".pdf", ".svg"} else path
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    with style():
        for fmt in formats:
            dest = stem.with_name(f"{stem.name}.{fmt}")
            tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
            try:
                with open(tmp, "wb") as f:
                    fig.savefig(f, format=fmt, dpi=dpi, bbox_inches="tight", metadata=_metadata(fmt))
                tmp.replace(dest)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise G2DError(f"{dest}: cannot write ({exc.strerror or exc})") from None
            out.append(dest)
    return out


def _metadata(fmt: str) -> dict:
    # reproducible files: no creation date
    if fmt == "pdf":
        return {"CreationDate": None, "Creator": "g2d"}
    if fmt == "png":
        return {"Software": "g2d"}
    return {}


def _note(ax, text: str, loc: str = "center") -> None:
    if loc == "center":
        ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=9, color="0.35",
                wrap=True)
    else:
        ax.text(0.01, 0.01, text, transform=ax.transAxes, ha="left", va="bottom", fontsize=7.5, color="0.35",
                style="italic")


def _empty_figure(title: str, text: str) -> Figure:
    with style():
        fig = _figure(figsize=(6, 3), layout="constrained")
        ax = fig.add_subplot()
        ax.set_axis_off()
        ax.set_title(title)
        _note(ax, text)
    return fig


def _seeds_text(n: int | Sequence[int]) -> str:
    n = n if isinstance(n, int) else len(set(n))
    return f"n={n} seed{'s' if n != 1 else ''}"


# ---- selection ---------------------------------------------------------------------------------

def select_runs(df: pd.DataFrame, dataset: str | None = None, methods: Iterable[str] | None = None,
                fusion: str | None = None, variant: str | None = "main", modset: str | None = "all"):
    """Filter a run/history frame to one study slice; ``fusion=None`` picks the fusion with most runs.

    Returns ``(frame, fusion)``. ``modset`` only applies to frames that carry it (run loaders);
    summary frames are restricted to the largest modality set instead when ``modset == 'all'``.
    """
    if df.empty:
        return df, fusion
    m = pd.Series(True, index=df.index)
    if dataset is not None:
        m &= df["dataset"] == dataset
    if variant is not None and "variant" in df.columns:
        m &= df["variant"].astype(str) == variant
    if modset is not None and "modset" in df.columns:
        m &= df["modset"] == modset
    elif modset == "all" and "modalities" in df.columns and m.any():
        full = df.loc[m, "modalities"].astype(str)
        longest = full.map(lambda s: len(s.split("+"))).max()
        m &= df["modalities"].astype(str).map(lambda s: len(s.split("+"))) == longest
    if methods is not None:
        m &= df["method"].isin(list(methods))
    out = df[m]
    if fusion is None and "fusion" in out.columns and not out.empty:
        counts = out.groupby("fusion")["seed"].nunique() if "seed" in out.columns else out["fusion"].value_counts()
        fusion = "late" if "late" in counts.index and counts["late"] == counts.max() else str(counts.idxmax())
    if fusion is not None and "fusion" in out.columns:
        out = out[out["fusion"] == fusion]
    return out, fusion


def _datasets(df: pd.DataFrame, dataset: str | None) -> list[str]:
    if dataset is not None:
        return [dataset]
    return sorted(df["dataset"].dropna().unique()) if "dataset" in df.columns and not df.empty else []


def _agg_curve(h: pd.DataFrame, col: str) -> pd.DataFrame:
    """Per epoch mean, std (ddof=1) and n of ``col`` over the seeds in ``h``."""
    d = h[["epoch", "seed", col]].dropna()
    g = d.groupby("epoch")[col]
    out = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1), "n": g.count()}).reset_index()
    out["x"] = out["epoch"] + 1
    return out


def _plot_curve(ax, h: pd.DataFrame, col: str, color: str, label: str, scale: float = 1.0, ls="-", band=True,
                steps: bool = False) -> int:
    a = _agg_curve(h, col)
    if a.empty:
        return 0
    n = int(h.dropna(subset=[col])["seed"].nunique())
    ax.plot(a["x"], a["mean"] * scale, color=color, ls=ls, label=label, marker="o" if len(a) <= 15 else None,
            ms=3.5, drawstyle="steps-mid" if steps else "default")
    if band and n > 1:
        lo, hi = (a["mean"] - a["std"].fillna(0)) * scale, (a["mean"] + a["std"].fillna(0)) * scale
        ax.fill_between(a["x"], lo, hi, color=color, alpha=0.18, lw=0, step="mid" if steps else None)
    return n


def _epoch_axis(ax, h: pd.DataFrame) -> None:
    ax.set_xlabel("Epoch")
    if not h.empty:
        emax = int(h["epoch"].max()) + 1
        if emax <= 12:
            ax.set_xticks(range(1, emax + 1))
        ax.set_xlim(0.7, emax + 0.3)


# ---- Fig. 1: modality imbalance -----------------------------------------------------------------

def _scale_and_label(task: str) -> tuple[str, float, str]:
    return ("acc", 100.0, "Test accuracy (%)") if task == "classification" else ("r2", 1.0, "Test $R^2$")


def imbalance_table(summary: pd.DataFrame, dataset: str | None = None, methods: Sequence[str] = ("joint", "g2d"),
                    fusion: str | None = None, variant: str = "main") -> tuple[pd.DataFrame, dict]:
    """Tidy per-modality test scores for Fig. 1: columns dataset, group, modality, mean, std, n.

    ``group`` is a method name or ``'teacher'``; ``modality`` includes ``'fused'`` (the student's
    multimodal score). Teacher scores are the ``teacher_<acc|r2>_<m>`` the runs recorded, one value
    per (dataset, seed). Returns the table and ``info`` (fusion chosen, methods missing per dataset).
    """
    rows, info = [], {"fusion": {}, "missing": {}}
    for ds in _datasets(summary, dataset):
        sub, fus = select_runs(summary, ds, None, fusion, variant, "all")
        info["fusion"][ds] = fus
        task = task_of(sub["metric"].unique()) if not sub.empty else "classification"
        key, _, _ = _scale_and_label(task)
        mods = summary_modalities(sub) if not sub.empty else []
        info["missing"][ds] = [m for m in methods if m not in set(sub["method"])]
        for meth in methods:
            s = sub[sub["method"] == meth]
            for mod, metric in [(m, f"{key}_{m}") for m in mods] + [("fused", key)]:
                v = s[s["metric"] == metric].drop_duplicates("seed")["value"].dropna()
                if len(v):
                    rows.append({"dataset": ds, "group": meth, "modality": mod, "mean": v.mean(),
                                 "std": v.std(ddof=1) if len(v) > 1 else float("nan"), "n": len(v)})
        for mod in mods:
            t = sub[sub["metric"] == f"teacher_{key}_{mod}"].drop_duplicates("seed")["value"].dropna()
            if len(t):
                rows.append({"dataset": ds, "group": "teacher", "modality": mod, "mean": t.mean(),
                             "std": t.std(ddof=1) if len(t) > 1 else float("nan"), "n": len(t)})
    return pd.DataFrame(rows, columns=["dataset", "group", "modality", "mean", "std", "n"]), info


def fig_modality_imbalance(summary: pd.DataFrame, dataset: str | None = None,
                           methods: Sequence[str] = ("joint", "g2d"), fusion: str | None = None,
                           variant: str = "main") -> Figure:
    """Fig. 1: per-modality test accuracy of the student under each method vs the unimodal teachers.

    Grouped bars (x = modality, plus the fused multimodal accuracy), mean ± std over seeds; the
    legend gives each group's seed count. Methods without runs are listed in a note.
    """
    tab, info = imbalance_table(summary, dataset, methods, fusion, variant)
    dss = _datasets(summary, dataset)
    if not dss:
        return _empty_figure("Fig. 1 — modality imbalance", "no runs in the summary")
    with style():
        fig = _figure(figsize=(max(4.8, 3.4 + 1.2 * len(methods)) * len(dss), 3.9), layout="constrained")
        axes = fig.subplots(1, len(dss), squeeze=False)[0]
        for ax, ds in zip(axes, dss):
            t = tab[tab["dataset"] == ds]
            sub, _ = select_runs(summary, ds, None, info["fusion"].get(ds), variant, "all")
            task = task_of(sub["metric"].unique()) if not sub.empty else "classification"
            _, scale, ylabel = _scale_and_label(task)
            if t.empty:
                ax.set_axis_off()
                ax.set_title(ds)
                _note(ax, f"no runs of {', '.join(method_label(m) for m in methods)} for {ds}")
                continue
            mods = [m for m in summary_modalities(sub) if m in set(t["modality"])] + (["fused"] if "fused" in set(t["modality"]) else [])
            groups = [g for g in list(methods) + ["teacher"] if g in set(t["group"])]
            width = 0.8 / len(groups)
            for gi, g in enumerate(groups):
                tg = t[t["group"] == g].set_index("modality")
                xs, ys, es = [], [], []
                for xi, mod in enumerate(mods):
                    if mod in tg.index:
                        xs.append(xi - 0.4 + width * (gi + 0.5))
                        ys.append(tg.loc[mod, "mean"] * scale)
                        es.append((tg.loc[mod, "std"] if pd.notna(tg.loc[mod, "std"]) else 0.0) * scale)
                n = int(tg["n"].max())
                bars = ax.bar(xs, ys, width * 0.92, yerr=es if any(es) else None, capsize=2.5,
                              color=method_color(g), edgecolor="white", linewidth=0.6,
                              hatch="//" if g == "teacher" else None,
                              label=f"{method_label(g)} ({_seeds_text(n)})", error_kw={"elinewidth": 1})
                ax.bar_label(bars, labels=[f"{y:.1f}" if scale == 100 else f"{y:.2f}" for y in ys], padding=2,
                             fontsize=7.5)
            ax.set_xticks(range(len(mods)))
            ax.set_xticklabels([("fused\n(multimodal)" if m == "fused" else f"{m}\n(per-modality)") for m in mods])
            ax.set_ylabel(ylabel)
            if scale == 100:
                top = max(100.0, float((t["mean"] * scale).max() + (t["std"].fillna(0) * scale).max()) + 8)
                ax.set_ylim(0, min(top, 110))
            ax.grid(axis="x", visible=False)
            fus = info["fusion"].get(ds)
            ax.set_title(f"{ds} — student per-modality vs unimodal teachers" + (f" ({fus} fusion)" if fus else ""))
            leg = ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title="Test accuracy of" if scale == 100
                            else "Test score of", alignment="left")
            miss = info["missing"].get(ds) or []
            if miss:
                ax.text(1.02, 0.0, "not run (skipped):\n" + "\n".join(method_label(m) for m in miss),
                        transform=ax.transAxes, ha="left", va="bottom", fontsize=7.5, color="0.35", style="italic")
        fig.suptitle("Modality imbalance: per-modality test accuracy" if len(dss) == 1 and task == "classification"
                     else "Modality imbalance: per-modality test score")
    return fig


# ---- Fig. 3: teacher confidence -----------------------------------------------------------------

def _prioritized(h: pd.DataFrame, mods: Sequence[str]) -> list[tuple[int, str]]:
    """(epoch, modality) for epochs where one modality is prioritized in > 50 % of batches (mean over seeds)."""
    cols = [f"train_prio_{m}" for m in mods if f"train_prio_{m}" in h.columns]
    if not cols:
        return []
    p = h.groupby("epoch")[cols].mean()
    out = []
    for ep, row in p.iterrows():
        if row.max() > 0.5:
            out.append((int(ep), str(row.idxmax())[len("train_prio_"):]))
    return out


def fig_teacher_confidence(hist: pd.DataFrame, dataset: str | None = None, methods: Sequence[str] = ("g2d",),
                           fusion: str | None = None, variant: str = "main") -> Figure:
    """Fig. 3: teacher confidence s_m per epoch (``train_tconf_<m>`` of the G2D runs), mean ± std over seeds.

    Epochs in which SMP prioritizes one modality (``train_prio_<m>`` > 0.5) are shaded in its colour.
    """
    dss = _datasets(hist, dataset)
    if not dss:
        return _empty_figure("Fig. 3 — teacher confidence", "no runs found")
    with style():
        fig = _figure(figsize=(5.6 * len(dss), 3.6), layout="constrained")
        axes = fig.subplots(1, len(dss), squeeze=False)[0]
        for ax, ds in zip(axes, dss):
            h, fus = select_runs(hist, ds, methods, fusion, variant, "all")
            mods = run_modalities(h)
            cols = [m for m in mods if f"train_tconf_{m}" in h.columns and h[f"train_tconf_{m}"].notna().any()]
            ax.set_title(f"{ds}" + (f" — {', '.join(method_label(m) for m in methods)}, {_seeds_text(h['seed'])}"
                                    if not h.empty else ""))
            if not cols:
                ax.set_axis_off()
                _note(ax, f"no {'/'.join(method_label(m) for m in methods)} runs with teacher confidences for {ds}")
                continue
            handles = []
            for ep, m in _prioritized(h, mods):
                ax.axvspan(ep + 0.5, ep + 1.5, color=modality_color(m), alpha=0.10, lw=0)
            shaded = sorted({m for _, m in _prioritized(h, mods)}, key=mods.index)
            for m in cols:
                _plot_curve(ax, h, f"train_tconf_{m}", modality_color(m), f"$s_{{\\mathrm{{{m}}}}}$ ({m} teacher)")
            handles, labels = ax.get_legend_handles_labels()
            for m in shaded:
                handles.append(Patch(color=modality_color(m), alpha=0.25, lw=0))
                labels.append(f"SMP prioritizes {m}")
            ax.legend(handles, labels, loc="best")
            ax.set_ylabel("Teacher confidence $s_m$\n(mean prob. of true class)")
            _epoch_axis(ax, h)
            ax.set_ylim(0, 1.02)
        fig.suptitle("Teacher confidence per epoch (training batches)")
    return fig


# ---- Fig. 4: modality gap -----------------------------------------------------------------------

def _common_space(features: Mapping[str, np.ndarray], normalize: bool = True) -> dict[str, np.ndarray]:
    """Per-modality features mapped into one space: L2-normalized rows, zero-padded to the largest dim."""
    d = max(np.asarray(v).reshape(len(v), -1).shape[1] for v in features.values())
    out = {}
    for m, v in features.items():
        x = np.asarray(v, dtype=np.float64).reshape(len(v), -1)
        if normalize:
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        if x.shape[1] < d:
            x = np.concatenate([x, np.zeros((len(x), d - x.shape[1]))], axis=1)
        out[m] = x
    return out


def modality_gap(features: Mapping[str, np.ndarray], normalize: bool = True) -> dict[tuple[str, str], float]:
    """Modality gap of the student's per-modality embeddings, for every modality pair.

    Definition (after Liang et al., "Mind the Gap", NeurIPS 2022): each sample's feature vector
    h_m^S is L2-normalized (so the gap does not depend on the feature scale, which differs between
    modalities and methods), and the gap between modalities a and b is the Euclidean distance
    between the two centroids, ``|| mean_i h_a(x_i)/|h_a(x_i)| - mean_i h_b(x_i)/|h_b(x_i)| ||_2``,
    in the original feature space (no projection); it lies in [0, 2]. When the modalities' feature
    dims differ, the shorter vectors are zero-padded to the larger dim: that embeds R^{D_a} and
    R^{D_b} isometrically in R^{max D} (norms and within-modality distances are unchanged; it is
    what a joint PCA keeping all components would do), so no information is discarded or invented.
    The gap is computed on the same test samples for all modalities (embeddings.npz).
    """
    x = _common_space(features, normalize)
    cent = {m: v.mean(0) for m, v in x.items()}
    return {(a, b): float(np.linalg.norm(cent[a] - cent[b])) for a, b in itertools.combinations(list(x), 2)}


def pca_2d(features: Mapping[str, np.ndarray], normalize: bool = True) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """2-D PCA (numpy SVD) of all modalities' features stacked in the common space of :func:`modality_gap`.

    Returns ``({modality: (N, 2)}, explained_variance_ratio[:2])``; one projection for all modalities,
    so distances between modality clouds in the plot are comparable.
    """
    x = _common_space(features, normalize)
    mods = list(x)
    allx = np.concatenate([x[m] for m in mods])
    mu = allx.mean(0)
    _, s, vt = np.linalg.svd(allx - mu, full_matrices=False)
    var = s ** 2
    ratio = var[:2] / var.sum() if var.sum() > 0 else np.zeros(2)
    comps = vt[:2]
    if comps.shape[0] < 2:  # 1-D features
        comps = np.vstack([comps, np.zeros_like(comps)])
        ratio = np.append(ratio, 0.0)
    # deterministic sign: largest-|loading| entry of each component positive
    signs = np.sign(comps[np.arange(2), np.abs(comps).argmax(1)])
    signs[signs == 0] = 1
    comps = comps * signs[:, None]
    return {m: (x[m] - mu) @ comps.T for m in mods}, ratio


def gap_table(embeddings: Mapping[tuple[str, int], Mapping], normalize: bool = True) -> pd.DataFrame:
    """Gaps of many runs: ``{(method, seed): load_embeddings(run)}`` -> rows method, seed, pair, gap."""
    rows = []
    for (meth, seed), emb in embeddings.items():
        for (a, b), g in modality_gap(emb["features"], normalize).items():
            rows.append({"method": meth, "seed": int(seed), "pair": f"{a}–{b}", "gap": g})
    return pd.DataFrame(rows, columns=["method", "seed", "pair", "gap"])


def fig_modality_gap(embeddings: Mapping[tuple, Mapping], methods: Sequence[str] = ("joint", "g2d"),
                     seed: int | None = None, dataset: str = "", normalize: bool = True,
                     max_points: int = 600) -> Figure:
    """Fig. 4: PCA of the student's per-modality test embeddings, one panel per method, side by side.

    ``embeddings`` maps ``(method, seed)`` — or ``(dataset, method, seed)``, one figure row per
    dataset — to :func:`g2d.analysis.runs.load_embeddings` output. The scatter shows ``seed``
    (default: the smallest seed every method has); the title gives that run's gap (see
    :func:`modality_gap`) and, with several seeds, mean ± std over seeds. Centroids are marked ✕
    and joined by a dashed line.
    """
    by_ds: dict[str, dict] = {}
    for k, v in embeddings.items():
        ds, key = (k[0], tuple(k[1:])) if len(k) == 3 else (dataset, tuple(k))
        by_ds.setdefault(ds, {})[key] = v
    if not any(m == meth for e in by_ds.values() for (m, _) in e for meth in methods):
        return _empty_figure("Fig. 4 — modality gap",
                             f"no embeddings for {', '.join(method_label(m) for m in methods)}")
    dss = sorted(by_ds)
    missing_all: set[str] = set()
    with style():
        fig = _figure(figsize=(4.3 * len(methods), 4.3 * len(dss) + 0.4), layout="constrained")
        axes = fig.subplots(len(dss), len(methods), squeeze=False)
        for row, ds in zip(axes, dss):
            emb = by_ds[ds]
            gaps = gap_table(emb, normalize)
            present = [m for m in methods if any(k[0] == m for k in emb)]
            missing_all |= {m for m in methods if m not in present}
            sd = seed
            if sd is None and present:
                common = set.intersection(*[{s for (mm, s) in emb if mm == m} for m in present])
                sd = min(common) if common else min(s for (mm, s) in emb if mm == present[0])
            for ax, meth in zip(row, methods):
                key = (meth, sd) if (meth, sd) in emb else next(((m, s) for (m, s) in sorted(emb) if m == meth), None)
                if key is None:
                    ax.set_axis_off()
                    ax.set_title(f"{ds + ': ' if ds and len(dss) > 1 else ''}{method_label(meth)}")
                    _note(ax, f"no {method_label(meth)} run (skipped)")
                    continue
                coords, ratio = pca_2d(emb[key]["features"], normalize)
                rng = np.random.default_rng(0)
                for m, c in coords.items():
                    sel = rng.permutation(len(c))[:max_points]
                    ax.scatter(c[sel, 0], c[sel, 1], s=7, alpha=0.35, color=modality_color(m), lw=0,
                               label=f"{m} ({len(c)} test samples)", rasterized=True)
                cents = {m: c.mean(0) for m, c in coords.items()}
                for a, b in itertools.combinations(cents, 2):
                    ax.plot([cents[a][0], cents[b][0]], [cents[a][1], cents[b][1]], color="k", ls="--", lw=1.2)
                for m, c in cents.items():
                    ax.scatter([c[0]], [c[1]], marker="X", s=140, color=modality_color(m), edgecolor="k", lw=1.2,
                               zorder=5)
                g = gaps[gaps["method"] == meth]
                this = g[g["seed"] == key[1]]["gap"]
                per_seed = g.groupby("seed")["gap"].mean()
                title = f"{ds + ': ' if ds and len(dss) > 1 else ''}{method_label(meth)} — gap {this.mean():.3f}"
                if len(this) > 1:
                    title += " (mean over pairs)"
                sub = f"seed {key[1]}"
                if len(per_seed) > 1:
                    sub += f"; {per_seed.mean():.3f} ± {per_seed.std(ddof=1):.3f} over n={len(per_seed)} seeds"
                ax.set_title(f"{title}\n{sub}")
                ax.set_xlabel(f"PC 1 ({100 * ratio[0]:.1f} % var.)")
                ax.set_ylabel(f"PC 2 ({100 * ratio[1]:.1f} % var.)")
                ax.legend(loc="best", markerscale=2.5)
        lbl = f"{dss[0]}: " if len(dss) == 1 and dss[0] else ""
        fig.suptitle(f"{lbl}modality gap of the student's test embeddings")
        foot = ("2-D PCA of the L2-normalized per-modality features (one projection per panel). Gap = Euclidean "
                "distance between the modality centroids (✕) of the L2-normalized\nfeatures in the full feature "
                "space (zero-padded to a common dim if the dims differ)." if normalize else
                "2-D PCA of the per-modality features. Gap = Euclidean distance between the modality centroids (✕) "
                "in the full feature space.")
        if missing_all:
            foot += "  Not run (skipped): " + ", ".join(method_label(m) for m in methods if m in missing_all) + "."
        fig.supxlabel(foot, fontsize=7.5, color="0.3")
    return fig


# ---- Fig. 5: feature alignment ------------------------------------------------------------------

def _curves_grid(hist: pd.DataFrame, dataset, methods, fusion, variant, col_fmt: str, ylabel: str, title: str,
                 scale: float = 1.0, modality_panels: bool = True, hline: float | None = None,
                 teacher_lines: Mapping | None = None) -> Figure:
    dss = _datasets(hist, dataset)
    if not dss:
        return _empty_figure(title, "no runs found")
    panels = []
    for ds in dss:
        h, fus = select_runs(hist, ds, methods, fusion, variant, "all")
        for m in (run_modalities(h) or ["?"]) if modality_panels else [None]:
            panels.append((ds, m, h, fus))
    ncols = max(1, max(sum(1 for p in panels if p[0] == ds) for ds in dss))
    with style():
        fig = _figure(figsize=(4.4 * ncols, 3.4 * len(dss)), layout="constrained")
        axes = fig.subplots(len(dss), ncols, squeeze=False)
        for r, ds in enumerate(dss):
            dp = [p for p in panels if p[0] == ds]
            for c in range(ncols):
                ax = axes[r][c]
                if c >= len(dp):
                    ax.set_axis_off()
                    continue
                _, mod, h, fus = dp[c]
                col = col_fmt.format(m=mod)
                ax.set_title(f"{ds}" + (f" — {mod}" if mod else ""))
                present = [m for m in _order_methods(h["method"].unique())
                           if col in h.columns and h.loc[h["method"] == m, col].notna().any()]
                missing = [m for m in (methods or []) if m not in present]
                if not present:
                    ax.set_axis_off()
                    _note(ax, f"no runs with {col} for {ds}")
                    continue
                for meth in present:
                    hm = h[h["method"] == meth]
                    n = hm.dropna(subset=[col])["seed"].nunique()
                    _plot_curve(ax, hm, col, method_color(meth), f"{method_label(meth)} ({_seeds_text(n)})", scale)
                if teacher_lines and (ds, mod) in teacher_lines:
                    v, n = teacher_lines[(ds, mod)]
                    ax.axhline(v * scale, color=method_color("teacher"), ls="--", lw=1.3,
                               label=f"{method_label('teacher')} ({_seeds_text(n)})")
                if hline is not None:
                    ax.axhline(hline, color="0.3", ls=":", lw=1)
                ax.set_ylabel(ylabel)
                _epoch_axis(ax, h)
                ax.legend(loc="best")
                if missing:
                    _note(ax, "not run (skipped): " + ", ".join(method_label(m) for m in missing), loc="lower left")
        fig.suptitle(title)
    return fig


def fig_alignment(hist: pd.DataFrame, dataset: str | None = None, methods: Sequence[str] = ("joint", "g2d"),
                  fusion: str | None = None, variant: str = "main") -> Figure:
    """Fig. 5: cosine similarity between the student's and the teacher's features (validation set),
    per modality over epochs, joint vs G2D (mean ± std over seeds)."""
    return _curves_grid(hist, dataset, methods, fusion, variant, "val_align_{m}",
                        "Cosine similarity\n(student vs teacher features)",
                        "Feature alignment with the unimodal teachers (validation set)")


# ---- Fig. 6: confidence ratio of the weaker modality ---------------------------------------------

def weaker_modality(teachers: pd.DataFrame, dataset: str, modalities: Sequence[str] | None = None) -> str | None:
    """The modality whose unimodal teacher has the lower mean test accuracy (R² for regression) over seeds."""
    if teachers is None or teachers.empty:
        return None
    t = teachers[teachers["dataset"] == dataset]
    if modalities:
        t = t[t["modality"].isin(list(modalities))]
    key = "acc" if "acc" in t.columns and t["acc"].notna().any() else ("r2" if "r2" in t.columns else None)
    if key is None or t.empty:
        return None
    means = t.groupby("modality")[key].mean().dropna()
    if means.empty:
        return None
    order = list(modalities) if modalities else sorted(means.index)
    return min(means.index, key=lambda m: (means[m], order.index(m) if m in order else 0))


def fig_confidence_ratio(hist: pd.DataFrame, teachers: pd.DataFrame, dataset: str | None = None,
                         methods: Sequence[str] = ("joint", "g2d"), fusion: str | None = None,
                         variant: str = "main") -> Figure:
    """Fig. 6: confidence ratio (student per-modality confidence / teacher confidence, validation set)
    of the weaker modality — the one whose unimodal teacher has the lower test accuracy — over epochs."""
    dss = _datasets(hist, dataset)
    if not dss:
        return _empty_figure("Fig. 6 — confidence ratio", "no runs found")
    with style():
        fig = _figure(figsize=(5.4 * len(dss), 3.6), layout="constrained")
        axes = fig.subplots(1, len(dss), squeeze=False)[0]
        for ax, ds in zip(axes, dss):
            h, fus = select_runs(hist, ds, methods, fusion, variant, "all")
            mods = run_modalities(h)
            weak = weaker_modality(teachers, ds, mods)
            ax.set_title(ds)
            if weak is None:
                ax.set_axis_off()
                _note(ax, f"no teacher metrics for {ds}: cannot tell the weaker modality")
                continue
            col = f"val_cratio_{weak}"
            present = [m for m in _order_methods(h["method"].unique()) if col in h.columns
                       and h.loc[h["method"] == m, col].notna().any()]
            if not present:
                ax.set_axis_off()
                _note(ax, f"no runs with {col} for {ds}")
                continue
            t = teachers[(teachers["dataset"] == ds)]
            tk = "acc" if "acc" in t.columns else "r2"
            tm = t.groupby("modality")[tk].mean()
            for meth in present:
                hm = h[h["method"] == meth]
                _plot_curve(ax, hm, col, method_color(meth),
                            f"{method_label(meth)} ({_seeds_text(hm.dropna(subset=[col])['seed'])})")
            ax.axhline(1.0, color="0.3", ls=":", lw=1, label="student = teacher")
            ax.set_title(f"{ds} — weaker modality: {weak}\n(teacher test acc " +
                         ", ".join(f"{m} {100 * v:.1f} %" if tk == "acc" else f"{m} {v:.2f}" for m, v in tm.items())
                         + ")")
            ax.set_ylabel(f"Confidence ratio ({weak})\nstudent / teacher")
            _epoch_axis(ax, h)
            ax.set_ylim(bottom=0)
            ax.legend(loc="best")
            missing = [m for m in methods if m not in present]
            if missing:
                _note(ax, "not run (skipped): " + ", ".join(method_label(m) for m in missing), loc="lower left")
        fig.suptitle("Confidence ratio of the weaker modality (validation set)")
    return fig


# ---- report diagnostics ------------------------------------------------------------------------

_LOSS_PANELS = [("train_loss", "Total training loss $L$"), ("train_loss_task", "Task loss $L_S$"),
                ("train_loss_feature", "Feature loss $L_F$"), ("train_loss_logit", "Logit loss $L_L$")]


def fig_training_curves(hist: pd.DataFrame, dataset: str | None = None, methods: Sequence[str] | None = None,
                        fusion: str | None = None, variant: str = "main") -> Figure:
    """Validation accuracy (R² for regression) and the training loss terms per epoch, one line per method."""
    dss = _datasets(hist, dataset)
    if not dss:
        return _empty_figure("Training curves", "no runs found")
    with style():
        ncols = 3
        fig = _figure(figsize=(4.0 * ncols, 6.2 * len(dss) + 0.3), layout="constrained")
        axes = fig.subplots(2 * len(dss), ncols, squeeze=False)
        for r, ds in enumerate(dss):
            h, fus = select_runs(hist, ds, methods, fusion, variant, "all")
            cls = task_of(h.columns) == "classification"
            panels = [("val_acc" if cls else "val_r2", "Validation accuracy (%)" if cls else "Validation $R^2$",
                       100.0 if cls else 1.0)]
            panels += [("train_acc", "Training accuracy (%)", 100.0)] if cls else [("val_loss", "Validation loss", 1.0)]
            panels += [(c, lab, 1.0) for c, lab in _LOSS_PANELS]
            for c, (col, lab, scale) in enumerate(panels):
                ax = axes[2 * r + c // ncols][c % ncols]
                ax.set_title(f"{ds}: {lab[0].lower() + lab[1:].split(' (')[0]}" if len(dss) > 1 else
                             lab.split(" (")[0])
                ms = [m for m in _order_methods(h["method"].unique()) if col in h.columns
                      and h.loc[h["method"] == m, col].notna().any()
                      and (not col.startswith("train_loss_") or h.loc[h["method"] == m, col].abs().sum() > 0)]
                if not ms:
                    ax.set_axis_off()
                    _note(ax, f"{lab}:\nnot logged by these methods")
                    continue
                for meth in ms:
                    hm = h[h["method"] == meth]
                    _plot_curve(ax, hm, col, method_color(meth),
                                f"{method_label(meth)} ({_seeds_text(hm.dropna(subset=[col])['seed'])})", scale)
                ax.set_ylabel(lab)
                _epoch_axis(ax, h)
                if c == 0:
                    ax.legend(loc="best")
        fig.suptitle("Training curves (mean ± std over seeds; loss terms a method does not use are omitted)")
    return fig


def fig_smp_coefficients(hist: pd.DataFrame, dataset: str | None = None, methods: Sequence[str] | None = None,
                         fusion: str | None = None, variant: str = "main") -> Figure:
    """Mean per-epoch gradient coefficient k_m (SMP: 1 = modality receives gradient, 0 = suppressed;
    OGM-GE: modulation coefficient), one panel per method that logs ``train_k_<m>``."""
    dss = _datasets(hist, dataset)
    rows = []
    for ds in dss:
        h, _ = select_runs(hist, ds, methods, fusion, variant, "all")
        mods = run_modalities(h)
        for meth in _order_methods(h["method"].unique()):
            hm = h[h["method"] == meth]
            cols = [m for m in mods if f"train_k_{m}" in hm.columns and hm[f"train_k_{m}"].notna().any()]
            if cols:
                rows.append((ds, meth, hm, cols))
    if not rows:
        return _empty_figure("SMP coefficients $k_m$", "no runs log gradient coefficients (train_k_<m>): "
                             "no SMP / G2D / OGM-GE runs found")
    ncols = min(3, len(rows))
    nrows = -(-len(rows) // ncols)
    with style():
        fig = _figure(figsize=(4.4 * ncols, 3.2 * nrows + 0.4), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax, (ds, meth, hm, mods) in zip(axes, rows):
            for i, m in enumerate(mods):
                _plot_curve(ax, hm, f"train_k_{m}", modality_color(m), f"$k_{{\\mathrm{{{m}}}}}$",
                            ls=["-", "--", "-."][i % 3], steps=True)
            ax.set_title(f"{ds} — {method_label(meth)} ({_seeds_text(hm['seed'])})")
            ax.set_ylabel("Mean coefficient $k_m$")
            ax.set_ylim(-0.05, 1.05)
            _epoch_axis(ax, hm)
            ax.legend(loc="best")
        for ax in axes[len(rows):]:
            ax.set_axis_off()
        fig.suptitle("Gradient coefficients per modality (epoch mean over batches)")
    return fig


def fig_modality_accuracy_curves(hist: pd.DataFrame, teachers: pd.DataFrame | None = None,
                                 dataset: str | None = None, methods: Sequence[str] | None = None,
                                 fusion: str | None = None, variant: str = "main") -> Figure:
    """Validation accuracy of the student's per-modality outputs (``val_acc_<m>``) over epochs, one panel
    per modality, with the unimodal teacher's validation accuracy (mean over seeds) dashed."""
    tl = {}
    if teachers is not None and not teachers.empty and "val_acc" in teachers.columns:
        for (ds, m), g in teachers.groupby(["dataset", "modality"]):
            tl[(ds, m)] = (g["val_acc"].mean(), g["seed"].nunique())
    cls = task_of(hist.columns) == "classification" if not hist.empty else True
    if not cls and teachers is not None and not teachers.empty and "val_r2" in teachers.columns:
        tl = {(ds, m): (g["val_r2"].mean(), g["seed"].nunique()) for (ds, m), g in teachers.groupby(["dataset", "modality"])}
    return _curves_grid(hist, dataset, methods, fusion, variant, "val_acc_{m}" if cls else "val_r2_{m}",
                        "Per-modality val. accuracy (%)" if cls else "Per-modality val. $R^2$",
                        "Per-modality accuracy of the student over training (validation set)",
                        scale=100.0 if cls else 1.0, teacher_lines=tl)


# ---- notebook entry points: load -> figure -> save -> small table ------------------------------

def show(paths: Sequence[str | Path]):
    """Display the saved PNG in a notebook (what the reader sees is exactly the file on disk)."""
    from IPython.display import Image, display
    png = next((Path(p) for p in paths if str(p).endswith(".png")), None)
    if png is not None:
        display(Image(filename=str(png)))


def _curve_summary(h: pd.DataFrame, cols: Mapping[str, str], scale: float = 1.0) -> pd.DataFrame:
    """Last-epoch value per method x column: mean ± std over seeds (each seed's last logged epoch)."""
    rows = []
    for (ds, meth), g in h.groupby(["dataset", "method"]):
        for name, col in cols.items():
            if col not in g.columns:
                continue
            d = g.dropna(subset=[col]).sort_values("epoch").groupby("seed").tail(1)
            if d.empty:
                continue
            v = d[col] * scale
            rows.append({"dataset": ds, "method": meth, "quantity": name, "last epoch": int(d["epoch"].max()) + 1,
                         "mean": v.mean(), "std": v.std(ddof=1) if len(v) > 1 else float("nan"), "n": len(v)})
    out = pd.DataFrame(rows, columns=["dataset", "method", "quantity", "last epoch", "mean", "std", "n"])
    if not out.empty:
        out["_o"] = out["method"].map(lambda m: _order_methods(out["method"]).index(m))
        out = out.sort_values(["dataset", "_o", "quantity"]).drop(columns="_o").reset_index(drop=True)
    return out


def figure_imbalance(summary: str | Path, figures_dir: str | Path, dataset: str | None = None,
                     methods: Sequence[str] = ("joint", "g2d"), fusion: str | None = None, variant: str = "main",
                     name: str = "fig1_imbalance"):
    """Fig. 1 from ``summary.csv``: returns (saved paths, the plotted numbers as a table)."""
    from .runs import load_summary
    s = load_summary(summary)
    fig = fig_modality_imbalance(s, dataset, methods, fusion, variant)
    tab, _ = imbalance_table(s, dataset, methods, fusion, variant)
    if not tab.empty:
        tab = tab.assign(group=tab["group"].map(method_label))
    return save_figure(fig, Path(figures_dir) / name), tab


def figure_teacher_confidence(results: str | Path, figures_dir: str | Path, dataset: str | None = None,
                              methods: Sequence[str] = ("g2d",), fusion: str | None = None, variant: str = "main",
                              name: str = "fig3_confidence"):
    from .runs import load_histories
    h = load_histories(results, dataset=dataset, variant=variant)
    fig = fig_teacher_confidence(h, dataset, methods, fusion, variant)
    sel, _ = select_runs(h, dataset, methods, fusion, variant, "all")
    mods = run_modalities(sel)
    tab = _curve_summary(sel, {f"s_{m}": f"train_tconf_{m}" for m in mods})
    return save_figure(fig, Path(figures_dir) / name), tab


def load_gap_embeddings(results: str | Path, dataset: str | None = None, methods: Sequence[str] = ("joint", "g2d"),
                        fusion: str | None = None, variant: str = "main") -> dict:
    """``{(dataset, method, seed): embeddings}`` of the selected runs (full modality set)."""
    from .runs import discover_runs, load_embeddings
    runs = discover_runs(results, dataset=dataset, variant=variant, modset="all", methods=methods)
    out = {}
    for ds in sorted(runs["dataset"].unique()):
        sel, _ = select_runs(runs, ds, methods, fusion, variant, "all")
        for r in sel.itertuples(index=False):
            if (Path(r.path) / "embeddings.npz").is_file():
                out[(r.dataset, r.method, int(r.seed))] = load_embeddings(r.path)
    return out


def figure_modality_gap(results: str | Path, figures_dir: str | Path, dataset: str | None = None,
                        methods: Sequence[str] = ("joint", "g2d"), fusion: str | None = None,
                        variant: str = "main", seed: int | None = None, name: str = "fig4_modality_gap"):
    emb = load_gap_embeddings(results, dataset, methods, fusion, variant)
    fig = fig_modality_gap(emb, methods, seed, dataset or "")
    rows = []
    for ds in sorted({k[0] for k in emb}):
        g = gap_table({(m, s): v for (d, m, s), v in emb.items() if d == ds})
        for (meth, pair), gg in g.groupby(["method", "pair"]):
            v = gg.groupby("seed")["gap"].mean()
            rows.append({"dataset": ds, "method": method_label(meth), "pair": pair, "gap mean": v.mean(),
                         "gap std": v.std(ddof=1) if len(v) > 1 else float("nan"), "n": len(v)})
    tab = pd.DataFrame(rows, columns=["dataset", "method", "pair", "gap mean", "gap std", "n"])
    return save_figure(fig, Path(figures_dir) / name), tab


def figure_alignment(results: str | Path, figures_dir: str | Path, dataset: str | None = None,
                     methods: Sequence[str] = ("joint", "g2d"), fusion: str | None = None, variant: str = "main",
                     name: str = "fig5_alignment"):
    from .runs import load_histories
    h = load_histories(results, dataset=dataset, variant=variant)
    fig = fig_alignment(h, dataset, methods, fusion, variant)
    sel, _ = select_runs(h, dataset, methods, fusion, variant, "all")
    tab = _curve_summary(sel, {f"align_{m}": f"val_align_{m}" for m in run_modalities(sel)})
    if not tab.empty:
        tab["method"] = tab["method"].map(method_label)
    return save_figure(fig, Path(figures_dir) / name), tab


def figure_confidence_ratio(results: str | Path, figures_dir: str | Path, dataset: str | None = None,
                            methods: Sequence[str] = ("joint", "g2d"), fusion: str | None = None,
                            variant: str = "main", name: str = "fig6_confidence_ratio"):
    from .runs import load_histories, load_teacher_metrics
    h = load_histories(results, dataset=dataset, variant=variant)
    t = load_teacher_metrics(results, dataset)
    fig = fig_confidence_ratio(h, t, dataset, methods, fusion, variant)
    sel, _ = select_runs(h, dataset, methods, fusion, variant, "all")
    tabs = []
    for ds in _datasets(sel, dataset):
        weak = weaker_modality(t, ds, run_modalities(sel[sel["dataset"] == ds]))
        if weak:
            tabs.append(_curve_summary(sel[sel["dataset"] == ds], {f"cratio_{weak} (weaker)": f"val_cratio_{weak}"}))
    tab = pd.concat(tabs, ignore_index=True) if tabs else _curve_summary(sel.iloc[:0], {})
    if not tab.empty:
        tab["method"] = tab["method"].map(method_label)
    return save_figure(fig, Path(figures_dir) / name), tab


def figure_training_curves(results: str | Path, figures_dir: str | Path, dataset: str | None = None,
                           methods: Sequence[str] | None = None, fusion: str | None = None, variant: str = "main",
                           name: str = "training_curves"):
    from .runs import load_histories
    h = load_histories(results, dataset=dataset, variant=variant)
    return save_figure(fig_training_curves(h, dataset, methods, fusion, variant), Path(figures_dir) / name)


def figure_modality_accuracy(results: str | Path, figures_dir: str | Path, dataset: str | None = None,
                             methods: Sequence[str] | None = None, fusion: str | None = None, variant: str = "main",
                             name: str = "modality_accuracy"):
    from .runs import load_histories, load_teacher_metrics
    h = load_histories(results, dataset=dataset, variant=variant)
    t = load_teacher_metrics(results, dataset)
    return save_figure(fig_modality_accuracy_curves(h, t, dataset, methods, fusion, variant), Path(figures_dir) / name)


def figure_smp_coefficients(results: str | Path, figures_dir: str | Path, dataset: str | None = None,
                            methods: Sequence[str] | None = None, fusion: str | None = None, variant: str = "main",
                            name: str = "smp_coefficients"):
    from .runs import load_histories
    h = load_histories(results, dataset=dataset, variant=variant)
    return save_figure(fig_smp_coefficients(h, dataset, methods, fusion, variant), Path(figures_dir) / name)
