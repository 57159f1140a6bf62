# Paper tables: one target per table, `snakemake --cores 8 table5` -> results/tables/table5.{csv,md,tex}.
# What each table needs (datasets, methods, variants, seeds) is g2d.tables_plan.plan(config, N),
# driven by config `tables.table<N>` (docs/tables.md); `g2d table N` reads the same plan, so a
# table's inputs here are exactly the files its cells come from. Input functions (not values) so
# that a table whose dataset is not installed fails only when that table is asked for.
import g2d.tables_plan as TP

TABLE_TARGETS = TP.all_table_targets(config)
TABLES_DIR = f"{R}/tables"


def _table_rule_inputs(n):
    return lambda w: TP.table_inputs(config, n)


def _run_teacher_args(w):
    return " ".join(f"--teacher {m}={W.teacher_dir(config, m, w.seed, w.dataset)}"
                    for m in W.modset_modalities(config, w.modset, w.dataset))


def _run_teacher_files(w):
    return [f"{W.teacher_dir(config, m, w.seed, w.dataset)}/teacher.pt"
            for m in W.modset_modalities(config, w.modset, w.dataset)]


# Table 11: a trained run evaluated with seeded per-sample modality masks at each missing rate.
rule evaluate_missing:
    input:
        metrics=f"{R}/{{dataset}}/runs/{{variant}}/{{modset}}/{{method}}/{{fusion}}/s{{seed}}/metrics.json",
        teachers=_run_teacher_files,
    output:
        f"{R}/{{dataset}}/runs/{{variant}}/{{modset}}/{{method}}/{{fusion}}/s{{seed}}/missing.json",
    params:
        cfg=lambda w: W.dataset_config_file(config, w.dataset),
        run=lambda w: W.run_dir(config, w.method, w.fusion, w.seed, w.modset, w.variant, w.dataset),
        overrides=lambda w: " ".join(f"--set '{o}'" for o in W.variant_overrides(config, w.variant)),
        teachers=_run_teacher_args,
        rates=lambda w: ",".join(f"{r:g}" for r in TP.missing_rates(config)),
        mask_seed=lambda w: TP.table_options(config, 11)["mask_seed"],
    log:
        f"{LOGS}/{{dataset}}/runs/{{variant}}/{{modset}}/{{method}}_{{fusion}}_s{{seed}}.missing.log",
    threads: RES_TRAIN["threads"]
    resources:
        mem_mb=RES_TRAIN["mem_mb"],
        runtime=RES_CPU["runtime"],
        gpu=RES_TRAIN["gpu"],
    shell:
        "g2d evaluate-missing -c {params.cfg} --set train.threads={threads} {params.overrides} --run {params.run}"
        " {params.teachers} --rates {params.rates} --mask-seed {params.mask_seed} --out {output} > {log} 2>&1"


# Table 10: memory and time per batch of the methods, measured side by side in one process.
rule bench_step_cost:
    input:
        lambda w: W.prepared_meta(config, w.dataset),
    output:
        f"{R}/{{dataset}}/bench/step_cost.json",
    params:
        cfg=lambda w: W.dataset_config_file(config, w.dataset),
        args=lambda w: TP.bench_args(config),
    log:
        f"{LOGS}/{{dataset}}/bench/step_cost.log",
    threads: RES_TRAIN["threads"]
    resources:
        mem_mb=RES_TRAIN["mem_mb"],
        runtime=RES_CPU["runtime"],
        gpu=RES_TRAIN["gpu"],
    shell:
        "g2d bench -c {params.cfg} --set train.threads={threads} {params.args} --out {output} > {log} 2>&1"


rule table1:
    """Table 1: unimodal teachers and balancing methods, per-modality and multimodal accuracy."""
    input:
        _table_rule_inputs(1),
    output:
        multiext(f"{TABLES_DIR}/table1", ".csv", ".md", ".tex"),
    log:
        f"{LOGS}/tables/table1.log",
    shell:
        "g2d table 1 -c {CFG} --out {TABLES_DIR}/table1 > {log} 2>&1"


rule table2:
    """Table 2: modality subsets (A-V, A-T, V-T, A-V-T) of a three-modality dataset."""
    input:
        _table_rule_inputs(2),
    output:
        multiext(f"{TABLES_DIR}/table2", ".csv", ".md", ".tex"),
    log:
        f"{LOGS}/tables/table2.log",
    shell:
        "g2d table 2 -c {CFG} --out {TABLES_DIR}/table2 > {log} 2>&1"


rule table3:
    """Table 3: regression (MIS-ME layout): teachers, joint, G2D; MAPE and R²."""
    input:
        _table_rule_inputs(3),
    output:
        multiext(f"{TABLES_DIR}/table3", ".csv", ".md", ".tex"),
    log:
        f"{LOGS}/tables/table3.log",
    shell:
        "g2d table 3 -c {CFG} --out {TABLES_DIR}/table3 > {log} 2>&1"


rule table4:
    """Table 4: joint / UMT / G2D loss, each without and with SMP."""
    input:
        _table_rule_inputs(4),
    output:
        multiext(f"{TABLES_DIR}/table4", ".csv", ".md", ".tex"),
    log:
        f"{LOGS}/tables/table4.log",
    shell:
        "g2d table 4 -c {CFG} --out {TABLES_DIR}/table4 > {log} 2>&1"


rule table5:
    """Table 5: fusion modules x {joint, G2D}."""
    input:
        _table_rule_inputs(5),
    output:
        multiext(f"{TABLES_DIR}/table5", ".csv", ".md", ".tex"),
    log:
        f"{LOGS}/tables/table5.log",
    shell:
        "g2d table 5 -c {CFG} --out {TABLES_DIR}/table5 > {log} 2>&1"


rule table6:
    """Table 6: partial vs complete suppression (+ OGM-GE)."""
    input:
        _table_rule_inputs(6),
    output:
        multiext(f"{TABLES_DIR}/table6", ".csv", ".md", ".tex"),
    log:
        f"{LOGS}/tables/table6.log",
    shell:
        "g2d table 6 -c {CFG} --out {TABLES_DIR}/table6 > {log} 2>&1"


rule table7:
    """Table 7: SMP schedules K."""
    input:
        _table_rule_inputs(7),
    output:
        multiext(f"{TABLES_DIR}/table7", ".csv", ".md", ".tex"),
    log:
        f"{LOGS}/tables/table7.log",
    shell:
        "g2d table 7 -c {CFG} --out {TABLES_DIR}/table7 > {log} 2>&1"


rule table9:
    """Table 9: distinctions — the G2D components (feature KD, logit KD, SMP)."""
    input:
        _table_rule_inputs(9),
    output:
        multiext(f"{TABLES_DIR}/table9", ".csv", ".md", ".tex"),
    log:
        f"{LOGS}/tables/table9.log",
    shell:
        "g2d table 9 -c {CFG} --out {TABLES_DIR}/table9 > {log} 2>&1"


rule table10:
    """Table 10: memory and time per batch, joint vs G2D with cached teachers (ratio)."""
    input:
        _table_rule_inputs(10),
    output:
        multiext(f"{TABLES_DIR}/table10", ".csv", ".md", ".tex"),
    log:
        f"{LOGS}/tables/table10.log",
    shell:
        "g2d table 10 -c {CFG} --out {TABLES_DIR}/table10 > {log} 2>&1"


rule table11:
    """Table 11: missing modalities at test time (rates 0-60 %)."""
    input:
        _table_rule_inputs(11),
    output:
        multiext(f"{TABLES_DIR}/table11", ".csv", ".md", ".tex"),
    log:
        f"{LOGS}/tables/table11.log",
    shell:
        "g2d table 11 -c {CFG} --out {TABLES_DIR}/table11 > {log} 2>&1"


rule table12:
    """Table 12: loss weights (α, β) grid."""
    input:
        _table_rule_inputs(12),
    output:
        multiext(f"{TABLES_DIR}/table12", ".csv", ".md", ".tex"),
    log:
        f"{LOGS}/tables/table12.log",
    shell:
        "g2d table 12 -c {CFG} --out {TABLES_DIR}/table12 > {log} 2>&1"


rule tables:
    """Every table listed in config tables.targets."""
    input:
        TABLE_TARGETS,
