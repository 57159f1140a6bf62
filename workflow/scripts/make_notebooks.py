#!/usr/bin/env python
"""Generate the analysis notebooks in notebooks/ (outputs cleared, deterministic cell ids).

    python workflow/scripts/make_notebooks.py            # (re)write notebooks/*.ipynb
    python workflow/scripts/make_notebooks.py --check    # exit 1 if a committed notebook differs

The notebooks are thin: a markdown header, a ``parameters`` cell (papermill), then calls into
``g2d.analysis``. They run with the current directory = the pipeline's working directory (where
``results/`` lives); the pipeline executes them with ``g2d notebook`` (see workflow/rules/reports.smk).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

REPO = Path(__file__).resolve().parents[2]
NB_DIR = REPO / "notebooks"

RERUN = ("Re-run from the pipeline's working directory with\n"
         "`g2d notebook -c config/config.yaml --notebook notebooks/{name}.ipynb --out /tmp/{name}.ipynb "
         "--html /tmp/{name}.html`\n(or open it in Jupyter there and *Run All*; "
         "`snakemake results/notebooks/{name}.html` rebuilds it with its inputs).")

IMPORTS = ("from IPython.display import Markdown, display\n"
           "from g2d.analysis import figures as F, runs as R, tables_render as T")

COMMON_PARAMS = ('dataset = None        # None: every dataset found under `results`\n'
                 'fusion = None         # None: the fusion with most runs (late on ties)\n'
                 'variant = "main"      # run variant (ablation variants live next to main)')


def _nb(name: str, cells: list) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
        "language_info": {"name": "python"},
    }
    for i, c in enumerate(cells):
        c["id"] = f"{name}-{i:02d}"
    nb.cells = cells
    return nb


def md(text: str):
    return new_markdown_cell(text.strip())


def code(text: str, tags: list[str] | None = None):
    c = new_code_cell(text.strip())
    if tags:
        c.metadata["tags"] = tags
    return c


def params(text: str):
    return code(text, tags=["parameters"])


def report():
    name = "report"
    return _nb(name, [
        md(f"""
# G2D study report

Headline results, training curves, per-modality accuracy, teacher confidences and SMP coefficients
of the runs under `results`. Accuracies are test-set accuracies (%) of the epoch selected on the
validation set; curves are validation metrics per epoch, mean ± std over seeds (band), n stated.

{RERUN.format(name=name)}
"""),
        params(f"""
summary = "results/summary.csv"          # the results contract (g2d summarize)
results = "results"                      # run directories (teachers, students)
figures_dir = "results/figures/report"   # PNG + PDF of every figure below
tables_dir = "results/tables"            # paper tables, shown when present
{COMMON_PARAMS}
"""),
        code(IMPORTS + """
summary_df = R.load_summary(summary)
R.run_counts(summary_df)
"""),
        md("## Headline results\n\nMethod × multimodal and per-modality test accuracy of the student, with "
           "the unimodal teachers' test accuracy (`teacher_acc_<m>`, same seeds)."),
        code("""
tables = T.headline_tables(summary_df, dataset, fusion, variant)
for title, table_md, _tex, _csv in tables:
    display(Markdown(f"### {title}\\n\\n{table_md}"))
if not tables:
    display(Markdown("_No runs in the summary._"))
"""),
        md("## Training curves\n\nValidation accuracy, training accuracy and the loss terms "
           "$L = L_S + \\alpha L_F + \\beta L_L$ per epoch."),
        code("F.show(F.figure_training_curves(results, figures_dir, dataset, fusion=fusion, variant=variant))"),
        md("## Per-modality accuracy\n\nValidation accuracy of the student's per-modality outputs; dashed: the "
           "unimodal teacher's validation accuracy."),
        code("F.show(F.figure_modality_accuracy(results, figures_dir, dataset, fusion=fusion, variant=variant))"),
        md("## Teacher confidences per epoch\n\n$s_m$ = mean probability the teacher of modality $m$ puts on "
           "the true class (Eq. 5), averaged over the epoch's training batches of the G2D runs; shaded: "
           "epochs in which SMP prioritizes that modality."),
        code("""
paths, conf = F.figure_teacher_confidence(results, figures_dir, dataset, fusion=fusion, variant=variant,
                                          name="teacher_confidence")
F.show(paths)
conf
"""),
        md("## SMP coefficients over time\n\nMean gradient coefficient $k_m$ per epoch (1 = the modality's "
           "encoder is updated, 0 = suppressed; fractional = prioritized in a share of the batches)."),
        code("F.show(F.figure_smp_coefficients(results, figures_dir, dataset, fusion=fusion, variant=variant))"),
        md("## Paper tables\n\n`results/tables/*.csv` (built by the table rules), mean ± std over seeds, "
           "**best** bold, <u>second best</u> underlined."),
        code("T.show_tables(tables_dir);"),
    ])


def _figure_nb(name: str, title: str, intro: str, param_text: str, call: str, extra: list | None = None):
    return _nb(name, [
        md(f"# {title}\n\n{intro.strip()}\n\n{RERUN.format(name=name)}"),
        params(param_text),
        code(IMPORTS),
        code(call),
        *(extra or []),
    ])


def fig1():
    return _figure_nb(
        "fig1_imbalance", "Fig. 1 — Modality imbalance",
        """
Per-modality test accuracy of the multimodal student (the per-modality outputs $z_m^S$) under
joint training and under G2D, next to the unimodal teachers trained alone on each modality, and
the fused multimodal accuracy. Bars: mean over seeds; error bars: ± std; n in the legend. Under
joint training the weaker modality's branch lags far behind its own unimodal teacher — the
imbalance G2D targets. Methods without runs are skipped with a note.
""",
        f"""
summary = "results/summary.csv"
figures_dir = "results/figures"
methods = ["joint", "g2d"]
{COMMON_PARAMS}
""",
        """
paths, numbers = F.figure_imbalance(summary, figures_dir, dataset, methods, fusion, variant)
F.show(paths)
numbers.round(4)
""")


def fig3():
    return _figure_nb(
        "fig3_confidence", "Fig. 3 — Teacher confidence per epoch",
        """
Teacher confidence $s_m$ (Eq. 5: mean softmax probability of the true class under the unimodal
teacher of modality $m$) averaged over each epoch's training batches of the G2D runs, mean ± std
over seeds. SMP ranks the modalities by $s_m$ per batch and prioritizes the least confident one
during the first phases; those epochs are shaded in the prioritized modality's colour.
""",
        f"""
results = "results"
figures_dir = "results/figures"
methods = ["g2d"]
{COMMON_PARAMS}
""",
        """
paths, numbers = F.figure_teacher_confidence(results, figures_dir, dataset, methods, fusion, variant)
F.show(paths)
numbers
""")


def fig4():
    return _figure_nb(
        "fig4_modality_gap", "Fig. 4 — Modality gap",
        """
2-D PCA of the student's per-modality test embeddings $h_m^S$ (≤ 1000 test samples,
`embeddings.npz`), joint training vs G2D side by side.

**Gap definition.** Every feature vector is L2-normalized (removing the scale differences between
modalities and methods), and the gap between modalities $a$ and $b$ is the Euclidean distance
between their centroids in the full feature space,
$\\lVert \\tfrac{1}{N}\\sum_i \\hat h_a(x_i) - \\tfrac{1}{N}\\sum_i \\hat h_b(x_i) \\rVert_2 \\in [0, 2]$
(after Liang et al., *Mind the Gap*, 2022). If the modalities' feature dims differ, the shorter
vectors are zero-padded — an isometric embedding into a common space, equivalent to a joint PCA
that keeps every component. The PCA is fitted on the stacked normalized features of all
modalities of a run, so both clouds share one projection; ✕ marks the centroids. The plotted run
is one seed; the title also gives mean ± std of the gap over seeds.
""",
        f"""
results = "results"
figures_dir = "results/figures"
methods = ["joint", "g2d"]
seed = None           # which seed to scatter (None: the smallest seed all methods have)
{COMMON_PARAMS}
""",
        """
paths, gaps = F.figure_modality_gap(results, figures_dir, dataset, methods, fusion, variant, seed)
F.show(paths)
gaps.round(4)
""")


def _joint_vs_g2d_nb(name: str, title: str, intro: str, function: str):
    """A figure notebook comparing joint training with G2D over epochs via ``F.<function>``."""
    return _figure_nb(
        name, title, intro,
        f"""
results = "results"
figures_dir = "results/figures"
methods = ["joint", "g2d"]
{COMMON_PARAMS}
""",
        f"""
paths, numbers = F.{function}(results, figures_dir, dataset, methods, fusion, variant)
F.show(paths)
numbers
""")


def fig5():
    return _joint_vs_g2d_nb(
        "fig5_alignment", "Fig. 5 — Feature alignment with the teachers",
        """
Mean cosine similarity between the student's features $h_m^S$ and the unimodal teacher's features
$h_m^T$ of the same validation samples, per modality and epoch, joint vs G2D (mean ± std over
seeds). G2D's feature loss pulls every encoder toward its teacher; joint training does not.
""", "figure_alignment")


def fig6():
    return _joint_vs_g2d_nb(
        "fig6_confidence_ratio", "Fig. 6 — Confidence ratio of the weaker modality",
        """
Confidence ratio = the student's per-modality confidence on the true class divided by the
teacher's confidence on the same validation samples, for the **weaker** modality — the one whose
unimodal teacher has the lower mean test accuracy over seeds — joint vs G2D over epochs. A ratio
near 1 means the student's branch for that modality is as confident as a model trained on it alone.
""", "figure_confidence_ratio")


def tables():
    name = "tables"
    return _nb(name, [
        md(f"""
# Result tables

Every `results/tables/*.csv` (the paper's tables, built by the table rules) rendered with mean ±
std over seeds and n, **best** in bold and <u>second best</u> underlined per column; then the
headline table of `summary.csv`. LaTeX versions: `g2d.analysis.tables_render.render_table`.

{RERUN.format(name=name)}
"""),
        params(f"""
summary = "results/summary.csv"
tables_dir = "results/tables"
{COMMON_PARAMS}
"""),
        code(IMPORTS),
        md("## Paper tables"),
        code("T.show_tables(tables_dir);"),
        md("## Headline table (summary.csv)"),
        code("""
summary_df = R.load_summary(summary)
for title, table_md, tex, _csv in T.headline_tables(summary_df, dataset, fusion, variant):
    display(Markdown(f"### {title}\\n\\n{table_md}\\n\\nLaTeX:\\n\\n```latex\\n{tex}```"))
"""),
    ])


NOTEBOOKS = {"report": report, "fig1_imbalance": fig1, "fig3_confidence": fig3, "fig4_modality_gap": fig4,
             "fig5_alignment": fig5, "fig6_confidence_ratio": fig6, "tables": tables}


def render(name: str) -> str:
    nb = NOTEBOOKS[name]()
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only check that notebooks/ is up to date")
    ap.add_argument("--out-dir", default=str(NB_DIR))
    a = ap.parse_args(argv)
    out = Path(a.out_dir)
    stale = []
    for name in NOTEBOOKS:
        p = out / f"{name}.ipynb"
        text = render(name)
        if a.check:
            if not p.is_file() or p.read_text() != text:
                stale.append(str(p))
            continue
        out.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.tmp")
        tmp.write_text(text)
        tmp.replace(p)
        print(f"wrote {p}")
    if stale:
        print("out of date (run workflow/scripts/make_notebooks.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
