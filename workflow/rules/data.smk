# Acquire + preprocess the configured dataset once (g2d prepare is idempotent and atomic).


rule prepare_data:
    output:
        W.prepared_meta(config),
    params:
        key=W.step_key(config, "prepare"),
    log:
        f"{LOGS}/{DS}/prepare.log",
    threads: RES_CPU["threads"]
    resources:
        mem_mb=RES_CPU["mem_mb"],
        runtime=RES_CPU["runtime"],
        gpu=0,
    shell:
        "g2d prepare -c {CFG} --force > {log} 2>&1"


# The other datasets the paper tables use (tables.table<N>.datasets, e.g. tiny3, tinyreg), each
# with its derived config (g2d.workflow.dataset_config); outputs data/prepared/<name>/meta.json.
rule prepare_extra_data:
    output:
        "{prepared}/meta.json",
    wildcard_constraints:
        prepared=W.extra_prepared_regex(config),
    params:
        cfg=lambda w: W.dataset_config_file(config, W.dataset_of_prepared(config, w.prepared)),
        key=lambda w: W.step_key(W.dataset_config(config, W.dataset_of_prepared(config, w.prepared)), "prepare"),
    log:
        f"{LOGS}/prepare/{{prepared}}.log",
    threads: RES_CPU["threads"]
    resources:
        mem_mb=RES_CPU["mem_mb"],
        runtime=RES_CPU["runtime"],
        gpu=0,
    shell:
        "g2d prepare -c {params.cfg} --force > {log} 2>&1"
