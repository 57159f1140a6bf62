"""What each table of the paper needs: its runs, their labels, and the files its cells are read from.

One function per table (:func:`plan`) turns the config (``tables.table<N>`` options, see
``docs/tables.md``) into a :class:`TablePlan`: a list of :class:`Cell` s — (row, column, seed)
-> a value at ``key`` in the JSON file ``path`` — plus the row/column order. The SAME plan is
used by

* the Snakemake target ``table<N>`` (``workflow/rules/tables.smk``): its inputs are exactly
  :func:`table_inputs` (the ``metrics.json`` of every student/teacher run the table needs, the
  ``missing.json`` of Table 11, the benchmark file of Table 10);
* the verb ``g2d table N`` (:mod:`g2d.analysis.tables`), which reads those cells, aggregates
  over seeds and renders the table.

Runs are addressed like every other run of the workflow (``g2d.workflow.run_dir``): dataset,
variant, modality set, method, fusion, seed. Tables that change student-only config keys (Table 7
schedules, Table 12 (alpha, beta), a table's own ``epochs``) do it through *generated variants*
(:func:`generated_variants`): a variant's name is derived from its overrides (``K3-9``,
``a0.5_b1``, ``e20_K5-15``), overrides equal to the dataset's config are dropped, and a variant
without overrides is ``main`` — so identical runs are shared between tables (e.g. Table 12's
(1, 1) cell is Table 1's G2D run).
"""

from __future__ import annotations

import copy
import itertools
import json
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable

from . import workflow as W
from .config import validate_config
from .data.registry import get_dataset
from .errors import ConfigError

__all__ = ["TABLES", "Cell", "Run", "TablePlan", "plan", "table_inputs", "generated_variants", "table_options",
           "method_label", "variant_name", "all_table_targets", "missing_rates", "bench_file", "table_datasets",
           "bench_args", "default_schedules", "modset_label", "lookup_variant"]

TABLES = (1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12)

METHOD_LABELS = {
    "joint": "Joint-Train", "umt": "UMT", "ogm_ge": "OGM-GE", "smp": "SMP only", "g2d_loss": "G2D loss only",
    "g2d": "G2D", "g2d_partial": "G2D (partial suppression)", "mslr": "MSLR", "mla": "MLA",
    "logit_kd": "Logit KD only", "umt_smp": "UMT + SMP", "mmpareto": "MMPareto",
}

#: per-table default for ``datasets`` when the option is null (None = the config's dataset)
_DEFAULT_DATASETS = {2: "tiny3", 3: "tinyreg"}

#: variant-name prefixes of the keys tables override (others: the key's last part)
_SHORT = {"train.epochs": "e", "g2d.schedule": "K", "g2d.alpha": "a", "g2d.beta": "b"}
#: keys a variant may not override: they determine the teachers or the data, which variants share
_TEACHER_PREFIXES = ("dataset.", "model.encoders", "teacher.", "paths.", "tables.", "study.")


def method_label(name: str) -> str:
    return METHOD_LABELS.get(name, name)


def _abbrev(modality: str) -> str:
    return modality[:1].upper()


def modset_label(mods: Iterable[str]) -> str:
    """A-V-T style label of a modality set (full names when initials collide)."""
    mods = list(mods)
    ab = [_abbrev(m) for m in mods]
    if len(set(ab)) < len(ab):
        ab = mods
    return "-".join(ab)


# ---- config access --------------------------------------------------------------------------------
_VALID: dict[str, dict] = {}


def _validated(config: dict) -> dict:
    """The config with schema defaults filled (cached; ``config`` itself is not modified)."""
    key = json.dumps(config, sort_keys=True, default=str)
    if key not in _VALID:
        _VALID[key] = validate_config(copy.deepcopy(config), "snakemake config")
    return _VALID[key]


def table_options(config: dict, n: int) -> dict:
    """Options ``tables.table<n>`` with defaults; ``seeds``/``fusion``/``epochs`` resolved."""
    if n not in TABLES:
        raise ConfigError(f"no table {n} (tables: {', '.join(map(str, TABLES))})")
    cfg = _validated(config)
    o = dict(cfg["tables"][f"table{n}"])
    o["seeds"] = [int(s) for s in (o.get("seeds") or cfg["study"]["seeds"])]
    o["fusion"] = o.get("fusion") or cfg["model"]["fusion"]
    o["epochs"] = o.get("epochs")
    o["datasets"] = list(o.get("datasets") or [_default_dataset(cfg, n)])
    return o


def _default_dataset(cfg: dict, n: int) -> str:
    main = cfg["dataset"]["name"]
    if n == 2 and len(W.modalities(cfg)) >= 3:
        return main
    if n == 3 and get_dataset(main).task == "regression":
        return main
    return _DEFAULT_DATASETS.get(n, main)


def table_datasets(config: dict, tables: Iterable[int] | None = None) -> list[str]:
    """Every dataset the given tables (default: all) run on, the config's dataset first."""
    cfg = _validated(config)
    out = [cfg["dataset"]["name"]]
    for n in tables or TABLES:
        out += table_options(cfg, n)["datasets"]
    return list(dict.fromkeys(out))


def _get(cfg: dict, dotted: str):
    node: Any = cfg
    for p in dotted.split("."):
        if not isinstance(node, dict) or p not in node:
            return None
        node = node[p]
    return node


def _slug(v) -> str:
    if isinstance(v, (list, tuple)):
        return "-".join(_slug(x) for x in v)
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def variant_name(overrides: dict) -> str:
    """Deterministic name of a set of overrides (``main`` when empty): ``e20_K5-15``, ``a0.5_b1``."""
    if not overrides:
        return W.MAIN
    keys = sorted(overrides, key=lambda k: (k != "train.epochs", list(_SHORT).index(k) if k in _SHORT else 99, k))
    return "_".join(f"{_SHORT.get(k, k.split('.')[-1])}{_slug(overrides[k])}" for k in keys)


def _variant(dcfg: dict, overrides: dict, reg: dict) -> str:
    """Register the canonical variant of ``overrides`` on the dataset config ``dcfg``; return its name."""
    for k in overrides:
        if k.startswith(_TEACHER_PREFIXES):
            raise ConfigError(f"key 'tables': a table variant may not override '{k}' (teachers/data are shared)")
    eff = {k: v for k, v in overrides.items() if _get(dcfg, k) != v}
    name = variant_name(eff)
    if name != W.MAIN:
        if name in reg and reg[name] != eff:
            raise ConfigError(f"key 'tables': variant name '{name}' stands for two override sets {reg[name]} and {eff}")
        reg[name] = eff
    return name


def _epoch_overrides(dcfg: dict, epochs: int | None) -> dict:
    """Overrides of a table's own ``epochs``: train.epochs, and an explicit g2d.schedule rescaled to it."""
    if not epochs or epochs == dcfg["train"]["epochs"]:
        return {}
    over: dict = {"train.epochs": int(epochs)}
    sched = dcfg["g2d"]["schedule"]
    if sched:
        f = epochs / dcfg["train"]["epochs"]
        scaled = [int(round(k * f)) for k in sched[:-1]]
        over["g2d.schedule"] = scaled + [max(0, int(epochs) - sum(scaled))]
    return over


def default_schedules(epochs: int, num_modalities: int) -> list[list[int]]:
    """Table 7 default: prioritized phase of 0, 1/4, 1/2, 3/4, all of the epochs, split equally over
    the M-1 prioritized slots; the rest is the joint phase. M=2, E=300: (0,300) (75,225) (150,150) (225,75) (300,0)."""
    out = []
    for f in (0.0, 0.25, 0.5, 0.75, 1.0):
        p = int(f * epochs) // (num_modalities - 1)
        s = [p] * (num_modalities - 1) + [epochs - p * (num_modalities - 1)]
        if s not in out:
            out.append(s)
    return out


# ---- plans ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    dataset: str
    method: str
    fusion: str
    seed: int
    modset: str = W.ALL
    variant: str = W.MAIN


@dataclass(frozen=True)
class Cell:
    """One value of a table: row x col for one seed, read at ``key`` ("a/b/c") in JSON ``path``.

    ``scale`` multiplies it (accuracies in %), ``better`` marks the direction for best/second
    highlighting (None: no highlight), ``digits`` the decimals shown."""

    row: str
    col: str
    seed: int
    path: str
    key: str
    scale: float = 1.0
    better: str | None = "max"
    digits: int = 2
    metric: str = ""  # the quantity (acc, mape, r2, time_ms, ...): direction + CSV column


@dataclass
class TablePlan:
    number: int
    title: str
    cells: list[Cell] = field(default_factory=list)
    rows: list[str] = field(default_factory=list)
    cols: list[str] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    teachers: list[tuple[str, str, int]] = field(default_factory=list)  # (dataset, modality, seed)
    notes: list[str] = field(default_factory=list)
    variants: dict[str, dict] = field(default_factory=dict)
    row_header: str = "Method"

    @property
    def inputs(self) -> list[str]:
        return list(dict.fromkeys(c.path for c in self.cells))

    def add(self, *a, **k) -> None:
        c = Cell(*a, **k)
        if not c.metric:
            c = dataclasses.replace(c, metric=c.key.rsplit("/", 1)[-1])
        self.cells.append(c)
        if c.row not in self.rows:
            self.rows.append(c.row)
        if c.col not in self.cols:
            self.cols.append(c.col)


def _metric(task: str) -> tuple[str, float, str]:
    """(primary metric key, scale, label) of a task."""
    return ("acc", 100.0, "Acc") if task == "classification" else ("r2", 1.0, "R²")


class _Builder:
    def __init__(self, config: dict, n: int):
        self.config = _validated(config)
        self.n = n
        self.o = table_options(self.config, n)
        self.multi = len(self.o["datasets"]) > 1
        self.p = TablePlan(n, TITLES[n])

    def dcfg(self, ds: str) -> dict:
        return W.dataset_config(self.config, ds)

    def task(self, ds: str) -> str:
        return get_dataset(ds).task

    def col(self, ds: str, name: str) -> str:
        return f"{ds}: {name}" if self.multi else name

    def variant(self, ds: str, overrides: dict | None = None) -> str:
        over = dict(_epoch_overrides(self.dcfg(ds), self.o["epochs"]))
        over.update(overrides or {})
        return _variant(self.dcfg(ds), over, self.p.variants)

    def run(self, ds, method, seed, fusion=None, modset=W.ALL, variant=W.MAIN) -> str:
        r = Run(ds, method, fusion or self.o["fusion"], int(seed), modset, variant)
        if r not in self.p.runs:
            self.p.runs.append(r)
        return f"{W.run_dir(self.config, r.method, r.fusion, r.seed, r.modset, r.variant, dataset=ds)}/metrics.json"

    def teacher(self, ds, modality, seed) -> str:
        t = (ds, modality, int(seed))
        if t not in self.p.teachers:
            self.p.teachers.append(t)
        return f"{W.teacher_dir(self.config, modality, seed, dataset=ds)}/metrics.json"

    def methods(self, key: str = "methods") -> list[str]:
        from .methods import available_methods
        ms = list(self.o[key])
        for m in ms:
            if m not in available_methods():
                raise ConfigError(f"key 'tables.table{self.n}.{key}': unknown method '{m}' (known: {', '.join(available_methods())})")
        return ms


# Table 1 / 3: teachers + methods, per-modality and multimodal metric -----------------------------
def _plan_main(b: _Builder, regression_cols: bool = False) -> TablePlan:
    for ds in b.o["datasets"]:
        task = b.task(ds)
        key, scale, lab = _metric(task)
        mods = W.modalities(b.config, ds)
        v = b.variant(ds)
        rows = []
        if b.o.get("teachers", True):
            for m in mods:
                row = f"Teacher ({m})"
                rows.append(row)
                for s in b.o["seeds"]:
                    tp = b.teacher(ds, m, s)
                    if task == "classification":
                        b.p.add(row, b.col(ds, f"{m} {lab}"), s, tp, key, scale)
                    else:
                        b.p.add(row, b.col(ds, "MAPE (%)"), s, tp, "mape", 1.0, "min")
                        b.p.add(row, b.col(ds, "R²"), s, tp, "r2", 1.0, "max", 3)
        for meth in b.methods():
            row = method_label(meth)
            for s in b.o["seeds"]:
                rp = b.run(ds, meth, s, variant=v)
                if task == "classification":
                    for m in mods:
                        b.p.add(row, b.col(ds, f"{m} {lab}"), s, rp, f"{key}_{m}", scale)
                    b.p.add(row, b.col(ds, f"Multi {lab}"), s, rp, key, scale)
                else:
                    b.p.add(row, b.col(ds, "MAPE (%)"), s, rp, "mape", 1.0, "min")
                    b.p.add(row, b.col(ds, "R²"), s, rp, "r2", 1.0, "max", 3)
        b.p.notes.append(f"{ds}: per-modality columns of a student = its unimodal head/branch "
                         "(method.md 'Models'); teacher rows = the unimodal teachers")
    return b.p


def _plan_1(b):
    return _plan_main(b)


def _plan_3(b):
    for ds in b.o["datasets"]:
        if b.task(ds) != "regression":
            raise ConfigError(f"key 'tables.table3.datasets': '{ds}' is a {b.task(ds)} dataset; Table 3 is regression")
    p = _plan_main(b)
    p.notes.append("MAPE in % of the target (lower is better), R² (higher is better); regression logit loss: "
                   "g2d.regression_logit_loss, teacher confidence: 1 - mean|ŷ - y| (g2d.smp)")
    return p


def _plan_2(b):
    for ds in b.o["datasets"]:
        mods = W.modalities(b.config, ds)
        if b.o["modsets"]:
            sets = [W.modset_modalities(b.config, ms, ds) for ms in b.o["modsets"]]
        else:
            sets = [list(c) for r in range(2, len(mods) + 1) for c in itertools.combinations(mods, r)]
        key, scale, lab = _metric(b.task(ds))
        v = b.variant(ds)
        if b.o.get("teachers", True):
            for m in mods:
                for s in b.o["seeds"]:
                    b.p.add("Unimodal teacher", b.col(ds, modset_label([m])), s, b.teacher(ds, m, s), key, scale)
        for meth in b.methods():
            for sub in sets:
                unknown = [m for m in sub if m not in mods]
                if unknown or len(sub) < 2:
                    raise ConfigError(f"key 'tables.table2.modsets': bad modality set {sub} for {ds} ({'+'.join(mods)})")
                ms = W.ALL if sorted(sub) == sorted(mods) else "+".join(sub)
                for s in b.o["seeds"]:
                    b.p.add(method_label(meth), b.col(ds, modset_label(sub)), s, b.run(ds, meth, s, modset=ms, variant=v),
                            key, scale)
    b.p.notes.append("modality subsets train a student on those modalities only (their own SMP schedule: "
                     "g2d.schedule or the default for M modalities)")
    return b.p


def _plan_4(b):
    pairs = b.o["pairs"]
    from .methods import available_methods
    for off, on in pairs.items():
        for m in (off, on):
            if m not in available_methods():
                raise ConfigError(f"key 'tables.table4.pairs': unknown method '{m}'")
    for ds in b.o["datasets"]:
        key, scale, lab = _metric(b.task(ds))
        v = b.variant(ds)
        for off, on in pairs.items():
            for s in b.o["seeds"]:
                b.p.add(method_label(off), b.col(ds, "w/o SMP"), s, b.run(ds, off, s, variant=v), key, scale)
                b.p.add(method_label(off), b.col(ds, "w/ SMP"), s, b.run(ds, on, s, variant=v), key, scale)
        b.p.notes.append("w/ SMP runs: " + ", ".join(f"{method_label(a)} -> {on}" for a, on in pairs.items()))
    return b.p


def _plan_5(b):
    from .models.fusion import available_fusions
    b.p.row_header = "Fusion"
    for ds in b.o["datasets"]:
        key, scale, lab = _metric(b.task(ds))
        v = b.variant(ds)
        for f in b.o["fusions"]:
            if f not in available_fusions():
                raise ConfigError(f"key 'tables.table5.fusions': unknown fusion '{f}' (known: {', '.join(available_fusions())})")
            for meth in b.methods():
                for s in b.o["seeds"]:
                    b.p.add(f, b.col(ds, method_label(meth)), s, b.run(ds, meth, s, fusion=f, variant=v), key, scale)
    return b.p


def _plan_methods(b, per_modality: bool = True):
    for ds in b.o["datasets"]:
        key, scale, lab = _metric(b.task(ds))
        mods = W.modalities(b.config, ds)
        v = b.variant(ds)
        for meth in b.methods():
            for s in b.o["seeds"]:
                rp = b.run(ds, meth, s, variant=v)
                if per_modality and key == "acc":
                    for m in mods:
                        b.p.add(method_label(meth), b.col(ds, f"{m} {lab}"), s, rp, f"{key}_{m}", scale)
                b.p.add(method_label(meth), b.col(ds, f"Multi {lab}"), s, rp, key, scale)
    return b.p


def _plan_6(b):
    p = _plan_methods(b)
    cfg = b.config
    p.notes.append(f"partial suppression k = 1 - tanh(a*rho), a = g2d.partial_a = {cfg['g2d']['partial_a']}; "
                   "OGM-GE: its own scores (student), ogm.alpha")
    return p


def _plan_7(b):
    meth = b.o["method"]
    b.p.row_header = "Schedule"
    for ds in b.o["datasets"]:
        key, scale, lab = _metric(b.task(ds))
        mods = W.modalities(b.config, ds)
        E = b.o["epochs"] or b.dcfg(ds)["train"]["epochs"]
        scheds = b.o["schedules"] or default_schedules(E, len(mods))
        for sc in scheds:
            if len(sc) != len(mods):
                raise ConfigError(f"key 'tables.table7.schedules': {sc} needs {len(mods)} entries ({', '.join(mods)}) for {ds}")
            v = b.variant(ds, {"g2d.schedule": [int(k) for k in sc]})
            row = "K = (" + ", ".join(str(k) for k in sc) + ")"
            for s in b.o["seeds"]:
                rp = b.run(ds, meth, s, variant=v)
                for m in mods if key == "acc" else []:
                    b.p.add(row, b.col(ds, f"{m} {lab}"), s, rp, f"{key}_{m}", scale)
                b.p.add(row, b.col(ds, f"Multi {lab}"), s, rp, key, scale)
        b.p.notes.append(f"{ds}: method {meth}, {E} epochs; K = (K_1..K_M) epochs, last = joint phase; "
                         "(0, E) = G2D loss without prioritization")
    return b.p


def _plan_9(b):
    from .methods import get_method
    for ds in b.o["datasets"]:
        key, scale, lab = _metric(b.task(ds))
        v = b.variant(ds)
        for meth in b.methods():
            row = method_label(meth)
            for s in b.o["seeds"]:
                rp = b.run(ds, meth, s, variant=v)
                b.p.add(row, b.col(ds, f"Multi {lab}"), s, rp, key, scale)
        b.p.notes.append("components per row: " + "; ".join(
            f"{method_label(m)}: " + (", ".join(n for n, f in (("feature KD", get_method(m).feature_distill),
                                                            ("logit KD", get_method(m).logit_distill),
                                                            ("SMP", get_method(m).smp)) if f) or "task loss only")
            for m in b.methods()))
    return b.p


def bench_file(config: dict, dataset: str | None = None) -> str:
    return f"{W.results(config)}/{W.dataset(config, dataset)}/bench/step_cost.json"


def _plan_10(b):
    ms = b.methods()
    base = ms[0]
    cols = (("Memory (MB)", "mem_mb", "mem_mb"), ("Memory excl. cache (MB)", "mem_step_mb", "mem_step_mb"),
            ("Time / batch (ms)", "time_ms", "time_ms"))
    for ds in b.o["datasets"]:
        path = bench_file(b.config, ds)
        for r in range(b.o["repeats"]):
            for meth in ms:
                row = method_label(meth)
                for lab, key, metric in cols:
                    b.p.add(row, b.col(ds, lab), r, path, f"methods/{meth}/{key}/{r}", 1.0, "min", 3, metric)
                for lab, key in ((f"Memory ratio (/ {method_label(base)})", "mem"),
                                 (f"Memory excl. cache ratio (/ {method_label(base)})", "mem_step"),
                                 (f"Time ratio (/ {method_label(base)})", "time")):
                    b.p.add(row, b.col(ds, lab), r, path, f"ratio/{meth}/{key}/{r}", 1.0, "min", 4, f"{key}_ratio")
    b.p.notes.append("measured in one process, methods interleaved step by step, at batch size "
                     f"{b.o['batch_size'] or b.config['train']['batch_size']}; G2D reads cached teacher outputs; "
                     "mean ± std over measurement rounds (n = rounds); ratios per round relative to "
                     f"{method_label(base)}; memory = parameters + gradients + optimizer state (+ teacher cache) + "
                     "step transient (CUDA: allocator peak; CPU: saved activations + batch), see g2d.bench")
    return b.p


def bench_args(config: dict) -> str:
    """CLI arguments of ``g2d bench`` for Table 10 (rule bench_step_cost)."""
    o = table_options(config, 10)
    args = [f"--methods {','.join(o['methods'])}", f"--fusion {o['fusion']}", f"--batches {o['batches']}",
            f"--warmup {o['warmup']}", f"--repeats {o['repeats']}"]
    if o.get("batch_size"):
        args.append(f"--batch-size {o['batch_size']}")
    return " ".join(args)


def missing_rates(config: dict) -> list[float]:
    return [float(r) for r in table_options(config, 11)["rates"]]


def _rate_key(r: float) -> str:
    return f"{float(r):g}"


def _plan_11(b):
    rates = [float(r) for r in b.o["rates"]]
    for r in rates:
        if not 0 <= r <= 1:
            raise ConfigError(f"key 'tables.table11.rates': {r} is not in [0, 1]")
    for ds in b.o["datasets"]:
        key, scale, lab = _metric(b.task(ds))
        v = b.variant(ds)
        for meth in b.methods():
            for s in b.o["seeds"]:
                mp = b.run(ds, meth, s, variant=v).replace("/metrics.json", "/missing.json")
                for r in rates:
                    b.p.add(method_label(meth), b.col(ds, f"{r * 100:g} %"), s, mp, f"by_rate/{_rate_key(r)}/{key}", scale)
    b.p.notes.append(f"missing rate = fraction of test samples with >= 1 modality missing (a random non-empty proper "
                     f"subset dropped, features zeroed); masks seeded by tables.table11.mask_seed = {b.o['mask_seed']}")
    return b.p


def _plan_12(b):
    meth = b.o["method"]
    b.p.row_header = "α / β"
    for ds in b.o["datasets"]:
        key, scale, lab = _metric(b.task(ds))
        for a in b.o["alpha"]:
            for be in b.o["beta"]:
                v = b.variant(ds, {"g2d.alpha": a, "g2d.beta": be})
                for s in b.o["seeds"]:
                    b.p.add(f"α = {a:g}", b.col(ds, f"β = {be:g}"), s, b.run(ds, meth, s, variant=v), key, scale)
        b.p.notes.append(f"{ds}: method {meth}; (α, β) = (0, 0) is the task loss (+ SMP for g2d)")
    return b.p


TITLES = {
    1: "Table 1: unimodal teachers and balancing methods (per-modality and multimodal accuracy)",
    2: "Table 2: modality subsets of a three-modality dataset",
    3: "Table 3: regression (MAPE, R²)",
    4: "Table 4: with and without Sequential Modality Prioritization",
    5: "Table 5: fusion modules",
    6: "Table 6: partial vs complete suppression",
    7: "Table 7: SMP schedules K",
    9: "Table 9: distinctions — G2D components",
    10: "Table 10: memory and time per batch (cached teachers)",
    11: "Table 11: missing modalities at test time",
    12: "Table 12: loss weights (α, β)",
}

_PLANS = {1: _plan_1, 2: _plan_2, 3: _plan_3, 4: _plan_4, 5: _plan_5, 6: _plan_6, 7: _plan_7, 9: _plan_9,
          10: _plan_10, 11: _plan_11, 12: _plan_12}
_PLAN_CACHE: dict[tuple[str, int], TablePlan] = {}


def plan(config: dict, n: int) -> TablePlan:
    """The plan of table ``n`` under ``config`` (cached)."""
    key = (json.dumps(config, sort_keys=True, default=str), int(n))
    if key not in _PLAN_CACHE:
        if n not in _PLANS:
            raise ConfigError(f"no table {n} (tables: {', '.join(map(str, TABLES))})")
        b = _Builder(config, n)
        _PLAN_CACHE[key] = _PLANS[n](b)
    return _PLAN_CACHE[key]


def table_inputs(config: dict, n: int) -> list[str]:
    """Every file table ``n`` reads (Snakemake input of rule ``table<n>``)."""
    return plan(config, n).inputs


def generated_variants(config: dict, strict: bool = True) -> dict[str, dict]:
    """{variant name: {dotted key: value}} of every variant the tables generate.

    ``strict=False`` skips tables whose plan is invalid (e.g. a dataset that is not installed), so
    one broken table does not stop the runs of the others.
    """
    out: dict[str, dict] = {}
    for n in TABLES:
        try:
            out.update(plan(config, n).variants)
        except ConfigError:
            if strict:
                raise
    return out


def lookup_variant(config: dict, name: str) -> dict:
    """Overrides of a generated variant; ConfigError naming the problem when unknown."""
    gen = generated_variants(config, strict=False)
    if name in gen:
        return gen[name]
    generated_variants(config, strict=True)  # surfaces a broken table's error, if any
    raise ConfigError(f"key 'tables.variants': unknown variant '{name}' (neither in tables.variants nor "
                      f"generated by a table: {', '.join(sorted(gen)) or 'none'})")


def all_table_targets(config: dict) -> list[str]:
    """The rendered tables ``all`` builds (``tables.targets``)."""
    cfg = _validated(config)
    return [f"{W.results(cfg)}/tables/table{n}.md" for n in cfg["tables"]["targets"]]
