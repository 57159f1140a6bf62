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
