"""Figures, tables and the papermill notebooks on results produced by the real trainers.

A tiny run tree (2 teachers x 2 seeds, joint + G2D students x 2 seeds, on a synthetic 2-modality
dataset, laid out exactly like the pipeline's results/) is built once per module with
g2d.train.teacher.train_teacher / g2d.train.student.train_student; every notebook is then executed
with ``g2d notebook`` and its figures checked (valid PNG / PDF, no error output). The full
Snakemake run (tiny config, avdigits) is the ``e2e`` test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml

from g2d.errors import DataError

REPO = Path(__file__).resolve().parents[1]
NB_DIR = REPO / "notebooks"
QUIET = lambda *a, **k: None  # noqa: E731

FIGURE_FILES = {  # notebook -> figure stems it must write into figures_dir
    "report": ["training_curves", "modality_accuracy", "teacher_confidence", "smp_coefficients"],
    "fig1_imbalance": ["fig1_imbalance"],
    "fig3_confidence": ["fig3_confidence"],
    "fig4_modality_gap": ["fig4_modality_gap"],
    "fig5_alignment": ["fig5_alignment"],
    "fig6_confidence_ratio": ["fig6_confidence_ratio"],
    "tables": [],
}


def check_png(p: Path) -> None:
    from PIL import Image
    assert p.is_file() and p.stat().st_size > 0, p
    with Image.open(p) as im:
        im.verify()
    with Image.open(p) as im:
        assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100, (p, im.size)


def check_pdf(p: Path) -> None:
    assert p.is_file() and p.stat().st_size > 0, p
    data = p.read_bytes()
    assert data.startswith(b"%PDF") and b"%%EOF" in data[-1024:], p


def check_figure(stem: Path) -> None:
    check_png(stem.with_name(stem.name + ".png"))
    check_pdf(stem.with_name(stem.name + ".pdf"))


def notebook_errors(p: Path) -> list[str]:
    nb = nbformat.read(p, as_version=4)
    return [f"{o.get('ename')}: {o.get('evalue')}" for c in nb.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if o.get("output_type") == "error"]


# ---- a real run tree --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def run_tree(tmp_path_factory):
    from conftest import _register_synth
    from g2d.analysis.summary import summarize
    from g2d.config import load_config
    from g2d.data.pipeline import prepare
    from g2d import workflow as W
    from g2d.train.student import train_student
    from g2d.train.teacher import cache_teacher, train_teacher

    root = tmp_path_factory.mktemp("nbtree")
    _register_synth("synth2", {"a": 12, "b": 10})
    data = {
        "dataset": {"name": "synth2", "raw_dir": str(root / "raw"), "prepared_dir": str(root / "prep")},
        "train": {"epochs": 3, "batch_size": 16, "lr": 0.05},
        "g2d": {"schedule": [1, 2]},
        "study": {"methods": ["joint", "g2d"], "fusions": ["late"], "seeds": [0, 1]},
        "paths": {"results": "results", "logs": "logs"},
    }
    cfg = load_config(data=data)
    cfg_file = root / "config.yaml"
    cfg_file.write_text(yaml.safe_dump(data))
    cwd = os.getcwd()
    os.chdir(root)  # the pipeline's working directory: relative results/ like Snakemake
    try:
        prepare(cfg, log=QUIET)
        metrics = []
        for seed in (0, 1):
            teachers = {}
            for m in ("a", "b"):
                d = W.teacher_dir(cfg, m, seed)
                train_teacher(cfg, m, seed, d, log=QUIET)
                cache_teacher(cfg, d, m, log=QUIET)
                teachers[m] = d
            for method in ("joint", "g2d"):
                out = W.run_dir(cfg, method, "late", seed)
                train_student(cfg, method, "late", seed, teachers, out, log=QUIET)
                metrics.append(f"{out}/metrics.json")
        summarize(metrics, "results/summary.csv")
        # a paper-table CSV as g2d.analysis.tables writes it (tidy, marks) for the tables notebook
        from g2d.analysis.runs import load_summary
        from g2d.analysis.tables_render import render_table
        md, _, csv_df = render_table(load_summary("results/summary.csv"), metric=["acc", "acc_a", "acc_b"])
        Path("results/tables").mkdir(parents=True)
        csv_df.to_csv("results/tables/table_demo.csv", index=False)
        Path("results/tables/table_demo.md").write_text("## Demo table\n\n" + md)
    finally:
        os.chdir(cwd)
    return {"root": root, "config": cfg_file, "cfg": cfg}


# ---- fast unit tests ----------------------------------------------------------------------------

def test_modality_gap_definition():
    from g2d.analysis.figures import modality_gap, pca_2d
    a = np.tile([[1.0, 0.0]], (5, 1))
    b = np.tile([[0.0, 1.0]], (5, 1))
    assert modality_gap({"a": a, "b": b})[("a", "b")] == pytest.approx(np.sqrt(2))
    # scale invariant (L2-normalized), and dims may differ (zero-padding keeps norms and distances)
    assert modality_gap({"a": 7 * a, "b": b})[("a", "b")] == pytest.approx(np.sqrt(2))
    b3 = np.tile([[0.0, 1.0, 0.0]], (5, 1))
    assert modality_gap({"a": a, "b": b3})[("a", "b")] == pytest.approx(np.sqrt(2))
    assert modality_gap({"a": a, "b": a.copy()})[("a", "b")] == pytest.approx(0.0)
    rng = np.random.default_rng(0)
    feats = {"a": rng.normal(size=(40, 8)), "b": rng.normal(size=(40, 5)) + 3, "c": rng.normal(size=(40, 8))}
    gaps = modality_gap(feats)
    assert set(gaps) == {("a", "b"), ("a", "c"), ("b", "c")} and all(0 <= g <= 2 for g in gaps.values())
    coords, ratio = pca_2d(feats)
    assert {k: v.shape for k, v in coords.items()} == {"a": (40, 2), "b": (40, 2), "c": (40, 2)}
    assert 0 < ratio.sum() <= 1 + 1e-9


def _long(rows):
    return pd.DataFrame([dict(dataset="d", method=m, fusion="late", seed=s, metric=k, value=v)
                         for m, s, k, v in rows])


def test_render_table_marks_and_stats():
    from g2d.analysis.tables_render import render_table
    rows = []
    for m, accs, mapes in [("joint", [0.60, 0.62], [20.0, 22.0]), ("umt", [0.65, 0.67], [15.0, 15.0]),
                           ("g2d", [0.80, 0.82], [7.0, 9.0])]:
        for s, (a, p) in enumerate(zip(accs, mapes)):
            rows += [(m, s, "acc", a), (m, s, "mape", p)]
    md, tex, csv_df = render_table(_long(rows), rows=("method",), cols=("metric",), metric=["acc", "mape"])
    assert "**81.00 ± 1.41**" in md and "<u>66.00 ± 1.41</u>" in md  # acc in %, higher is better
    assert "**8.00 ± 1.41**" in md and "<u>15.00 ± 0.00</u>" in md   # mape: lower is better
    assert "n = 2 seeds" in md
    assert md.index("Joint-Train") < md.index("UMT") < md.index("G2D")
    assert "\\textbf{81.00 $\\pm$ 1.41}" in tex and "\\underline{66.00 $\\pm$ 1.41}" in tex and "\\toprule" in tex
    best = csv_df[csv_df["mark"] == "best"].set_index("metric")["method"].to_dict()
    assert best == {"acc": "g2d", "mape": "g2d"}
    assert set(csv_df.columns) >= {"method", "metric", "mean", "std", "n", "rank", "mark"}
    assert (csv_df["n"] == 2).all()
    # unequal seed counts are shown per cell
    md2, _, _ = render_table(_long(rows + [("g2d", 2, "acc", 0.81)]), metric="acc", cols=("fusion",))
    assert "(n=3)" in md2 and "(n=2)" in md2


def test_notebooks_are_generated_and_parametrized():
    r = subprocess.run([sys.executable, str(REPO / "workflow/scripts/make_notebooks.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for name in FIGURE_FILES:
        nb = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
        assert nb.metadata["kernelspec"]["name"] == "python3"
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


def test_broken_inputs_fail_with_file_name(tmp_path):
    from g2d.analysis import runs as R
    d = tmp_path / "results/ds/runs/main/all/joint/late/s0"
    d.mkdir(parents=True)
    (d / "metrics.json").write_text("{not json")
    with pytest.raises(DataError, match=r"metrics.json: corrupt JSON"):
        R.load_run_metrics(tmp_path / "results")
    (d / "metrics.json").write_text(json.dumps({"dataset": "ds", "modalities": ["a", "b"]}))
    (d / "history.csv").write_text("lr,val_acc\n0.1,0.5\n")
    with pytest.raises(DataError, match=r"history.csv: history has no 'epoch' column"):
        R.load_histories(tmp_path / "results")
    (tmp_path / "summary.csv").write_text("dataset,method,value\nds,joint,1\n")
    with pytest.raises(DataError, match=r"summary.csv: missing columns"):
        R.load_summary(tmp_path / "summary.csv")
    with pytest.raises(DataError, match="results directory not found"):
        R.discover_runs(tmp_path / "nope")


# ---- on the real run tree -----------------------------------------------------------------------

def test_figure_functions_on_real_runs(run_tree, tmp_path):
    from g2d.analysis import figures as F
    from g2d.analysis import runs as R
    res, summ = run_tree["root"] / "results", run_tree["root"] / "results/summary.csv"
    fd = tmp_path / "figs"
    # Fig. 1 with a method that was never run: skipped with a note, not a crash
    paths, tab = F.figure_imbalance(summ, fd, methods=("joint", "umt", "g2d"))
    assert set(tab["group"]) == {"Joint-Train", "G2D", "Unimodal teacher"}
    assert set(tab["n"]) == {2} and set(tab["modality"]) == {"a", "b", "fused"}
    paths_all = [paths]
    p, conf = F.figure_teacher_confidence(res, fd)
    assert set(conf["quantity"]) == {"s_a", "s_b"} and (conf["n"] == 2).all()
    paths_all.append(p)
    p, gaps = F.figure_modality_gap(res, fd)
    assert set(gaps["method"]) == {"Joint-Train", "G2D"} and (gaps["n"] == 2).all()
    assert gaps["gap mean"].between(0, 2).all()
    paths_all.append(p)
    paths_all.append(F.figure_alignment(res, fd)[0])
    p, cr = F.figure_confidence_ratio(res, fd)
    teachers = R.load_teacher_metrics(res)
    weak = F.weaker_modality(teachers, "synth2", ["a", "b"])
    assert weak == teachers.groupby("modality")["acc"].mean().idxmin()
    assert set(cr["quantity"]) == {f"cratio_{weak} (weaker)"}
    paths_all.append(p)
    paths_all += [F.figure_training_curves(res, fd), F.figure_modality_accuracy(res, fd),
                  F.figure_smp_coefficients(res, fd)]
    for ps in paths_all:
        assert [x.suffix for x in ps] == [".png", ".pdf"]
        check_figure(ps[0].with_suffix(""))
    assert not list(fd.glob(".*tmp*"))  # atomic writes leave no temp files
    # a run tree with only joint runs still yields every figure (notes instead of G2D panels)
    h = R.load_histories(res)
    fig = F.fig_teacher_confidence(h[h["method"] == "joint"])
    assert fig.axes and "no G2D runs" in " ".join(t.get_text() for ax in fig.axes for t in ax.texts)


@pytest.mark.parametrize("name", list(FIGURE_FILES))
def test_notebook_executes(run_tree, name, monkeypatch):
    from g2d.cli import main
    root = run_tree["root"]
    monkeypatch.chdir(root)
    out = Path("results/notebooks") / f"{name}.ipynb"
    html = out.with_suffix(".html")
    figs = Path("results/figures") / ("report" if name == "report" else "")
    argv = ["notebook", "-c", str(run_tree["config"]), "--notebook", str(NB_DIR / f"{name}.ipynb"),
            "--out", str(out), "--html", str(html)]
    if name != "tables":
        argv += ["--figures-dir", str(figs)]
    if name in ("report", "fig1_imbalance", "tables"):
        argv += ["--param", "summary=results/summary.csv"]
    assert main(argv) == 0
    assert out.is_file() and not notebook_errors(out)
    text = html.read_text()
    assert text.lstrip().lower().startswith("<!doctype html")
    if name != "tables":
        assert "data:image/png;base64" in text  # self-contained: figures embedded
    for stem in FIGURE_FILES[name]:
        check_figure(figs / stem)
    nb = nbformat.read(out, as_version=4)
    if name in ("tables", "report"):
        shown = " ".join(o.get("data", {}).get("text/markdown", "") for c in nb.cells if c.cell_type == "code"
                         for o in c.get("outputs", []))
        assert "table_demo: Demo table" in shown and "**" in shown and "± " in shown
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "synth2" in injected[0].source  # dataset from -c


def test_failing_cell_exits_nonzero_with_error_line(tmp_path, capsys):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    p = nbformat.v4.new_code_cell("x = 1")
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell("y = x + 1"),
                nbformat.v4.new_code_cell("raise ValueError(f'boom {y}')\nmore = 2")]
    src = tmp_path / "bad.ipynb"
    nbformat.write(nb, src)
    out = tmp_path / "out" / "bad.ipynb"
    g2d = shutil.which("g2d") or str(Path(sys.executable).with_name("g2d"))
    r = subprocess.run([g2d, "notebook", "--notebook", str(src), "--out", str(out), "--html",
                        str(tmp_path / "out" / "bad.html"), "--param", "x=40"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last == f"g2d: notebook {src} failed in cell 4: ValueError: boom 41", r.stderr
    assert "Traceback" in r.stderr or "ValueError" in r.stderr.splitlines()[0] or "boom 41" in r.stderr
    assert not out.exists() and not (tmp_path / "out" / "bad.html").exists()
    failed = tmp_path / "out" / "bad.failed.ipynb"
    assert failed.is_file() and any("boom 41" in e for e in notebook_errors(failed))
    # an undeclared parameter is refused before anything runs
    from g2d.cli import main
    assert main(["notebook", "--notebook", str(src), "--out", str(out), "--param", "nope=1"]) == 2
    assert "no parameter 'nope'" in capsys.readouterr().err.strip().splitlines()[-1]


# ---- the full pipeline (slow) ---------------------------------------------------------------------

@pytest.mark.e2e
def test_snakemake_builds_every_notebook_and_figure(tmp_path):
    from g2d.data.registry import available_datasets
    if "avdigits" not in available_datasets():
        pytest.skip("avdigits dataset not registered")
    cfg = yaml.safe_load((REPO / "config/tiny.yaml").read_text())
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    targets = [f"results/notebooks/{n}.html" for n in FIGURE_FILES if n != "tables"]
    snakemake = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))
    r = subprocess.run([snakemake, *targets, "--cores", "2", "-s", str(REPO / "Snakefile"), "--directory",
                        str(tmp_path), "--configfile", str(tmp_path / "tiny.yaml")],
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for name, stems in FIGURE_FILES.items():
        if name == "tables":
            continue
        nb = tmp_path / "results/notebooks" / f"{name}.ipynb"
        assert not notebook_errors(nb), name
        assert (tmp_path / "results/notebooks" / f"{name}.html").stat().st_size > 0
        for stem in stems:
            check_figure(tmp_path / "results/figures" / ("report" if name == "report" else "") / stem)


def test_broken_run_fails_the_figure_notebook(run_tree, tmp_path, monkeypatch, capsys):
    from g2d.cli import main
    shutil.copytree(run_tree["root"] / "results", tmp_path / "results",
                    ignore=shutil.ignore_patterns("ckpt", "*.pt", "notebooks", "figures"))
    monkeypatch.chdir(tmp_path)
    hist = next(Path("results").glob("synth2/runs/main/all/g2d/late/s1/history.csv"))
    hist.write_text("lr,val_acc\n0.1,0.5\n")  # a genuinely broken input: must fail, not be skipped
    rc = main(["notebook", "--notebook", str(NB_DIR / "fig5_alignment.ipynb"), "--out", "nb/fig5.ipynb",
               "--figures-dir", "figs", "--param", "dataset=synth2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith(f"g2d: notebook {NB_DIR / 'fig5_alignment.ipynb'} failed in cell ")
    assert err[-1].endswith(f"DataError: {hist}: history has no 'epoch' column")
    assert Path("nb/fig5.failed.ipynb").is_file() and not Path("nb/fig5.ipynb").exists()
