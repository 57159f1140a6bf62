"""Paper tables: the plans, the Snakemake targets (dry runs list exactly the table's runs), the
aggregation, Table 10's ratio, Table 11's masks, the extra methods, three modalities end to end.

Fast tests run by default; full `snakemake tableN` runs on a tiny config are marked e2e
(``pytest -m e2e tests/test_tables.py``)."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import g2d.tables_plan as TP
import g2d.workflow as W
from g2d.config import load_config
from g2d.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))
QUIET = lambda *a, **k: None  # noqa: E731


def _default_config() -> dict:
    return load_config(REPO / "config" / "config.yaml")


# ---- masks (Table 11) ------------------------------------------------------------------------------
@pytest.mark.parametrize("mods", [["a", "b"], ["a", "b", "c"]])
def test_missing_masks_rates_kept_seeded(mods):
    from g2d.evaluate import missing_masks
    n = 1000
    prev = None
    for r in (0.0, 0.1, 0.3, 0.6, 1.0):
        pm = missing_masks(n, mods, r, seed=7)
        P = torch.stack([pm[m] for m in mods], 1)
        assert P.any(1).all(), "every sample keeps at least one modality"
        assert int((~P).any(1).sum()) == round(r * n), "exactly rate * N samples are incomplete"
        again = missing_masks(n, mods, r, seed=7)
        assert all(torch.equal(pm[m], again[m]) for m in mods), "seeded"
        if prev is not None:  # nested: whatever was missing at a lower rate is still missing
            assert bool(((~prev) & P).sum() == 0)
        prev = P
    other = missing_masks(n, mods, 0.5, seed=8)
    assert not all(torch.equal(other[m], missing_masks(n, mods, 0.5, seed=7)[m]) for m in mods)
    if len(mods) == 3:  # drops of one and of two modalities both occur
        k = (~torch.stack([missing_masks(n, mods, 1.0, 0)[m] for m in mods], 1)).sum(1)
        assert set(k.tolist()) == {1, 2}
    with pytest.raises(ConfigError):
        missing_masks(n, mods, 1.5)


# ---- plans / variants / datasets -------------------------------------------------------------------
def test_variants_canonical_and_shared():
    cfg = _default_config()
    E = cfg["train"]["epochs"]
    p7 = TP.plan(cfg, 7)
    assert sorted({r.variant for r in p7.runs}) == sorted(
        {("main" if s == cfg["g2d"]["schedule"] else TP.variant_name({"g2d.schedule": s}))
         for s in TP.default_schedules(E, 2)})
    assert TP.default_schedules(300, 2) == [[0, 300], [75, 225], [150, 150], [225, 75], [300, 0]]
    assert TP.default_schedules(300, 3)[2] == [75, 75, 150]
    p12 = TP.plan(cfg, 12)
    names = {r.variant for r in p12.runs}
    assert "main" in names and "a0_b0" in names and "a0" in names  # (1, 1) = the main G2D run
    assert W.variant_overrides(cfg, "a0_b0.5") == ["g2d.alpha=0.0", "g2d.beta=0.5"]
    # a table's own epochs: variant e<N> with the explicit schedule rescaled
    c2 = copy.deepcopy(cfg)
    c2["tables"]["table1"]["epochs"] = E // 3
    v = {r.variant for r in TP.plan(c2, 1).runs}
    assert v == {f"e{E // 3}_K{E // 6}-{E // 3 - E // 6}"}
    # runs shared: Table 4's G2D loss w/ SMP is Table 1's G2D run
    assert set(TP.plan(cfg, 1).runs) & set(TP.plan(cfg, 4).runs)
    with pytest.raises(ConfigError, match="may not override"):
        TP._variant(cfg, {"model.encoders": {}}, {})
    with pytest.raises(ConfigError, match="unknown variant"):
        W.variant_overrides(cfg, "nope")


def test_dataset_config_rebase():
    cfg = _default_config()
    cfg["dataset"]["params"] = {"image_pca_energy": 0.3}
    d = W.dataset_config(cfg, "tiny3")
    assert d["dataset"]["name"] == "tiny3" and d["dataset"]["params"] == {} and d["g2d"]["schedule"] is None
    assert d["train"] == cfg["train"] and d["dataset"]["source"] == "generate"
    assert W.dataset_config(cfg, cfg["dataset"]["name"]) is cfg
    assert W.modalities(cfg, "tiny3") == ["audio", "visual", "text"]
    assert W.run_dir(cfg, "g2d", "late", 0, "audio+text", "main", "tiny3") == \
        "results/tiny3/runs/main/audio+text/g2d/late/s0"
    assert W.teacher_dir(cfg, "text", 1, "tiny3") == "results/tiny3/teachers/text/s1"
    assert W.run_dir(cfg, "g2d", "late", 0) == "results/avdigits/runs/main/all/g2d/late/s0"
    cfg["tables"]["datasets"]["tiny3"] = {"train": {"epochs": 3}, "g2d": {"schedule": [1, 1, 1]}}
    d = W.dataset_config(cfg, "tiny3")
    assert d["train"]["epochs"] == 3 and d["g2d"]["schedule"] == [1, 1, 1]
    p2 = TP.plan(cfg, 2)
    assert {r.modset for r in p2.runs} == {"audio+visual", "audio+text", "visual+text", "all"}
    assert "A-V-T" in p2.cols and "T" in p2.cols


# ---- dry runs: snakemake -n tableN lists exactly the table's runs -----------------------------------
def _expected(cfg, n):
    p = TP.plan(cfg, n)
    exp = Counter()
    for r in p.runs:
        exp[("train_student", r.dataset, r.variant, r.modset, r.method, r.fusion, str(r.seed))] += 1
        if n == 11:
            exp[("evaluate_missing", r.dataset, r.variant, r.modset, r.method, r.fusion, str(r.seed))] += 1
    teachers = set(p.teachers)
    for r in p.runs:
        for m in W.modset_modalities(cfg, r.modset, r.dataset):
            teachers.add((r.dataset, m, r.seed))
    for t in teachers:
        exp[("train_teacher", t[0], t[1], str(t[2]))] += 1
        exp[("cache_teacher", t[0], t[1], str(t[2]))] += 1
    if n == 10:
        for ds in TP.table_options(cfg, 10)["datasets"]:
            exp[("bench_step_cost", ds)] += 1
    return exp


def _job_key(rule, wc):
    if rule in ("train_student", "evaluate_missing"):
        return (rule, wc["dataset"], wc["variant"], wc["modset"], wc["method"], wc["fusion"], wc["seed"])
    if rule in ("train_teacher", "cache_teacher"):
        return (rule, wc["dataset"], wc["modality"], wc["seed"])
    if rule == "bench_step_cost":
        return (rule, wc["dataset"])
    return None


def _dry_run_jobs_api(workdir: Path, targets):
    """{target: Counter(job keys)} from Snakemake's DAG, built in this process (one parse)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (ConfigSettings, DAGSettings, OutputSettings, Quietness, ResourceSettings,
                                          StorageSettings)
    out = {}
    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        wf = api.workflow(resource_settings=ResourceSettings(cores=1), config_settings=ConfigSettings(),
                          storage_settings=StorageSettings(), snakefile=REPO / "Snakefile", workdir=workdir)
        for t in targets:
            d = wf.dag(DAGSettings(targets={t}))
            w = d.workflow_api._workflow
            w.dag_settings = d.dag_settings
            w._prepare_dag(forceall=False, ignore_incomplete=True, lock_warn_only=True)
            w._build_dag()
            c = Counter()
            for j in w.dag.needrun_jobs():
                k = _job_key(j.rule.name, dict(j.wildcards_dict))
                if k:
                    c[k] += 1
            out[t] = c
    return out


def _dry_run_jobs_cli(workdir: Path, target: str) -> Counter:
    r = subprocess.run([SNAKEMAKE, "-n", target, "-s", str(REPO / "Snakefile")], cwd=workdir, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    c, rule = Counter(), None
    for line in r.stdout.splitlines():
        s = line.strip()
        if s.startswith("rule ") and s.endswith(":"):
            rule = s[5:-1]
        elif s.startswith("wildcards:") and rule:
            wc = dict(kv.split("=", 1) for kv in s[len("wildcards:"):].strip().split(", "))
            k = _job_key(rule, wc)
            if k:
                c[k] += 1
    return c


@pytest.fixture
def dry_workdir(tmp_path):
    (tmp_path / "config").mkdir()
    shutil.copy(REPO / "config" / "config.yaml", tmp_path / "config" / "config.yaml")
    return tmp_path


@pytest.mark.skipif(not Path(SNAKEMAKE).exists(), reason="snakemake not installed")
def test_dry_run_every_table_lists_exactly_its_runs(dry_workdir):
    cfg = _default_config()
    jobs = _dry_run_jobs_api(dry_workdir, [f"table{n}" for n in TP.TABLES])
    for n in TP.TABLES:
        assert jobs[f"table{n}"] == _expected(cfg, n), f"table{n}"
    assert jobs["table3"] and all(k[1] == "tinyreg" for k in jobs["table3"])
    assert any(k[3] == "audio+text" for k in jobs["table2"])


@pytest.mark.skipif(not Path(SNAKEMAKE).exists(), reason="snakemake not installed")
def test_dry_run_cli_table7(dry_workdir):
    """The real command line: `snakemake -n table7` lists the schedule variants' runs, nothing else."""
    assert _dry_run_jobs_cli(dry_workdir, "table7") == _expected(_default_config(), 7)


# ---- aggregation --------------------------------------------------------------------------------------
def test_aggregation_mean_std_against_hand_computation(tmp_path):
    from g2d.analysis.tables import build_table, write_table
    cfg = _default_config()
    cfg["paths"]["results"] = str(tmp_path / "results")
    cfg["tables"]["table12"].update({"alpha": [0.0, 1.0], "beta": [1.0], "seeds": [0, 1, 2]})
    p = TP.plan(cfg, 12)
    rng = np.random.default_rng(0)
    truth = {}
    for c in p.cells:
        v = float(rng.uniform(0.3, 0.9))
        truth.setdefault((c.row, c.col), []).append(v)
        Path(c.path).parent.mkdir(parents=True, exist_ok=True)
        Path(c.path).write_text(json.dumps({"acc": v}))
    paths = write_table(cfg, 12, tmp_path / "tables" / "table12")
    df = __import__("pandas").read_csv(paths[0])
    assert len(df) == len(truth) == 2
    for (row, col), vals in truth.items():
        rec = df[(df["α / β"] == row) & (df["column"] == col)].iloc[0]
        mean = sum(vals) / 3 * 100
        std = (sum((x * 100 - mean) ** 2 for x in vals) / 2) ** 0.5
        assert rec["mean"] == pytest.approx(mean) and rec["std"] == pytest.approx(std) and rec["n"] == 3
    md = paths[1].read_text()
    assert "±" in md and "n = 3" in md and "**" in md
    tex = paths[2].read_text()
    assert "\\toprule" in tex and "tab:table12" in tex and "\\textbf" in tex
    # a missing run is an error naming the file, unless --allow-missing
    os.remove(p.cells[0].path)
    with pytest.raises(Exception, match="not found"):
        build_table(cfg, 12)
    _, _, csv_df, _ = build_table(cfg, 12, allow_missing=True)
    assert set(csv_df["n"]) == {2, 3}


# ---- methods: umt_smp, mslr, mla actually train ------------------------------------------------------
def _teachers(cfg, tmp):
    from g2d.data.registry import get_dataset
    from g2d.train.teacher import cache_teacher, train_teacher
    out = {}
    for m in get_dataset(cfg["dataset"]["name"]).modalities:
        d = tmp / f"t_{m}"
        train_teacher(cfg, m, 0, d, log=QUIET)
        cache_teacher(cfg, d, m, log=QUIET)
        out[m] = d
    return out


def test_extra_methods_train(synth_cfg, tmp_path):
    from g2d.methods import Batch, Stepper, get_method
    from g2d.models.nets import build_student
    from g2d.train.student import train_student
    from g2d.data.registry import get_dataset
    from g2d.data.prepared import read_meta
    from g2d.config import dataset_dirs
    synth_cfg["train"]["epochs"] = 4
    teachers = _teachers(synth_cfg, tmp_path)
    for method in ("umt_smp", "mslr", "mla"):
        m = train_student(synth_cfg, method, "late", 0, teachers, tmp_path / method, log=QUIET)
        hist = __import__("pandas").read_csv(tmp_path / method / "history.csv")
        assert np.isfinite(hist["train_loss"]).all() and 0 <= m["acc"] <= 1
        # synth2's splits have their own class centers: learning shows on the training split
        assert hist["train_loss_task"].iloc[-1] < hist["train_loss_task"].iloc[0], method
        assert hist["train_acc"].iloc[-1] > hist["train_acc"].iloc[0], method
    # umt_smp: feature distillation + SMP; mslr: per-encoder learning rates; mla: one modality per step
    cls = get_method("umt_smp")
    assert cls.feature_distill and cls.smp and not cls.logit_distill
    spec = get_dataset("synth2")
    meta = read_meta(dataset_dirs(synth_cfg)[1])
    model = build_student(synth_cfg, spec, meta, ["a", "b"], "late")
    mslr = get_method("mslr")(synth_cfg, ["a", "b"], "classification", {"a": {"val_acc": 0.9}, "b": {"val_acc": 0.45}})
    groups = mslr.param_groups(model)
    lr = synth_cfg["train"]["lr"]
    assert [g["lr"] for g in groups] == pytest.approx([lr, 2 * lr, lr])
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    mla = get_method("mla")(synth_cfg, ["a", "b"], "classification")
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = {"a": torch.randn(8, 12), "b": torch.randn(8, 10)}
    for want in ("a", "b", "a"):
        mla.training_step(model, Batch(idx=torch.arange(8), x=x, y=torch.randint(0, 3, (8,))), Stepper(opt), 0)
        g = {k: sum(float(p.grad.abs().sum()) for p in model.encoders[k].parameters() if p.grad is not None)
             for k in ("a", "b")}
        assert g[want] > 0 and g["b" if want == "a" else "a"] == 0.0


# ---- Table 11: evaluate-missing on a trained run ------------------------------------------------------
def test_evaluate_missing_on_trained_run(synth_cfg, tmp_path):
    from g2d.evaluate import evaluate_missing
    from g2d.train.student import train_student
    synth_cfg["train"]["epochs"] = 2
    teachers = _teachers(synth_cfg, tmp_path)
    run = tmp_path / "run"
    m = train_student(synth_cfg, "g2d", "late", 0, teachers, run, log=QUIET)
    res = evaluate_missing(synth_cfg, run, [0.0, 0.5, 1.0], mask_seed=3, teachers=teachers, log=QUIET)
    assert json.loads((run / "missing.json").read_text()) == json.loads(json.dumps(res))
    assert res["by_rate"]["0"]["acc"] == pytest.approx(m["acc"])  # no mask = the run's test accuracy
    assert res["by_rate"]["0.5"]["missing_fraction"] == pytest.approx(round(0.5 * res["n"]) / res["n"])
    assert res["by_rate"]["1"]["missing_fraction"] == 1.0
    # evaluating under another config than the run's is refused
    other = copy.deepcopy(synth_cfg)
    other["g2d"]["alpha"] = 0.5
    with pytest.raises(Exception, match="another config"):
        evaluate_missing(other, run, [0.0], teachers=teachers, log=QUIET)


# ---- Table 10: step cost ------------------------------------------------------------------------------
def test_step_cost_ratio(synth_cfg):
    from g2d.bench import step_cost
    res = step_cost(synth_cfg, ["joint", "g2d"], batches=2, warmup=1, repeats=2, log=QUIET)
    for m in ("joint", "g2d"):
        assert len(res["methods"][m]["time_ms"]) == 2 and all(t > 0 for t in res["methods"][m]["time_ms"])
        assert len(res["ratio"][m]["time"]) == 2
    assert res["ratio"]["joint"]["time"] == [1.0, 1.0]
    assert all(r > 0 for r in res["ratio"]["g2d"]["time"])
    comp = res["methods"]["g2d"]["mem_components_mb"]
    assert comp["teacher_cache"] > 0 and res["methods"]["joint"]["mem_components_mb"]["teacher_cache"] == 0
    assert res["methods"]["g2d"]["mem_mb"][0] > res["methods"]["joint"]["mem_mb"][0]  # the cache + distillation


# ---- three modalities end to end (tiny3, sequence Transformers) --------------------------------------
def test_three_modalities_tiny3(tmp_path):
    from g2d.data.pipeline import prepare
    from g2d.evaluate import evaluate_missing
    from g2d.train.student import train_student
    cfg = load_config(data={"dataset": {"name": "tiny3", "source": "generate", "raw_dir": str(tmp_path / "raw"),
                                        "prepared_dir": str(tmp_path / "prep")},
                            "train": {"epochs": 2, "max_train_batches": 3, "lr": 0.01}})
    prepare(cfg, log=QUIET)
    teachers = _teachers(cfg, tmp_path)
    m = train_student(cfg, "g2d", "late", 0, teachers, tmp_path / "g2d3", log=QUIET)
    assert sorted(m["modalities"]) == ["audio", "text", "visual"] and 0 <= m["acc"] <= 1
    hist = __import__("pandas").read_csv(tmp_path / "g2d3" / "history.csv")
    assert {"train_prio_audio", "train_prio_visual", "train_prio_text"} <= set(hist.columns)
    sub = train_student(cfg, "g2d", "late", 0, {k: teachers[k] for k in ("audio", "text")}, tmp_path / "g2d2",
                        modalities=["audio", "text"], log=QUIET)
    assert sub["modalities"] == ["audio", "text"]
    res = evaluate_missing(cfg, tmp_path / "g2d3", [0.0, 0.6], teachers=teachers, log=QUIET)
    assert res["by_rate"]["0.6"]["missing_fraction"] == pytest.approx(round(0.6 * res["n"]) / res["n"])


# ---- end to end: snakemake tableN on a tiny config ---------------------------------------------------
TINY = {
    "name": "tables-e2e",
    "dataset": {"name": "tiny3", "source": "generate"},
    "train": {"epochs": 1, "max_train_batches": 2, "lr": 0.01, "threads": 1},
    "g2d": {"schedule": None},
    "study": {"methods": ["joint", "g2d"], "fusions": ["late"], "seeds": [0]},
    "resources": {"train": {"threads": 1}},
    "tables": {
        "targets": [1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12],
        "table1": {"methods": ["joint", "g2d", "mslr", "mla"]},
        "table2": {"methods": ["joint", "g2d"], "modsets": ["audio+text", "all"]},
        "table3": {"methods": ["joint", "g2d"]},
        "table4": {"pairs": {"umt": "umt_smp"}},
        "table5": {"methods": ["g2d"], "fusions": ["concat", "cross_attention"]},
        "table6": {"methods": ["g2d_partial", "g2d"]},
        "table7": {"schedules": [[0, 0, 1], [1, 0, 0]]},
        "table9": {"methods": ["smp", "g2d_loss"]},
        "table10": {"batches": 2, "warmup": 1, "repeats": 2},
        "table11": {"methods": ["joint", "g2d"], "rates": [0.0, 0.5]},
        "table12": {"alpha": [0.0], "beta": [0.0, 1.0]},
    },
}


def _snakemake_tables(tmp_path, targets, tiny=None):
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(tiny or TINY, sort_keys=False))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    r = subprocess.run([SNAKEMAKE, *targets, "--cores", "2", "-s", str(REPO / "Snakefile")], cwd=tmp_path,
                       capture_output=True, text=True, env=env, timeout=1800)
    logs = "\n".join(f"--- {p}\n{p.read_text()[-1500:]}" for p in (tmp_path / "logs").rglob("*.log")) \
        if (tmp_path / "logs").exists() else ""
    assert r.returncode == 0, r.stderr[-4000:] + logs[-6000:]
    return tmp_path / "results" / "tables"


@pytest.mark.skipif(not Path(SNAKEMAKE).exists(), reason="snakemake not installed")
def test_snakemake_table10_fast(tmp_path):
    """Fast subset of the e2e: Table 10 (no training) through Snakemake."""
    out = _snakemake_tables(tmp_path, ["table10"])
    df = __import__("pandas").read_csv(out / "table10.csv")
    ratio = df[(df["Method"] == "G2D") & df["column"].str.startswith("Time ratio")]
    assert len(ratio) == 1 and ratio["mean"].iloc[0] > 0 and ratio["n"].iloc[0] == 2
    assert (out / "table10.md").read_text().count("|") > 10 and (out / "table10.tex").is_file()


@pytest.mark.e2e
@pytest.mark.skipif(not Path(SNAKEMAKE).exists(), reason="snakemake not installed")
def test_snakemake_every_table_e2e(tmp_path):
    out = _snakemake_tables(tmp_path, ["tables"])
    for n in TP.TABLES:
        for ext in (".csv", ".md", ".tex"):
            assert (out / f"table{n}{ext}").is_file(), f"table{n}{ext}"
        df = __import__("pandas").read_csv(out / f"table{n}.csv")
        assert len(df) and df["mean"].notna().all(), f"table{n}"
    t11 = __import__("pandas").read_csv(out / "table11.csv")
    assert set(t11["column"]) == {"0 %", "50 %"}
    t2 = (out / "table2.md").read_text()
    assert "A-T" in t2 and "A-V-T" in t2
