# One unimodal teacher per modality and seed, then its cached outputs (logits + features).


rule train_teacher:
    input:
        W.prepared_meta(config),
    output:
        weights=f"{R}/{DS}/teachers/{{modality}}/s{{seed}}/teacher.pt",
        metrics=f"{R}/{DS}/teachers/{{modality}}/s{{seed}}/metrics.json",
        history=f"{R}/{DS}/teachers/{{modality}}/s{{seed}}/history.csv",
    params:
        key=lambda w: W.step_key(config, "teacher", modality=w.modality, seed=w.seed),
        out=lambda w: W.teacher_dir(config, w.modality, w.seed),
    log:
        f"{LOGS}/{DS}/teachers/{{modality}}_s{{seed}}.log",
    threads: RES_TRAIN["threads"]
    resources:
        mem_mb=RES_TRAIN["mem_mb"],
        runtime=RES_TRAIN["runtime"],
        gpu=RES_TRAIN["gpu"],
    shell:
        "g2d train-teacher -c {CFG} --set train.threads={threads} --modality {wildcards.modality}"
        " --seed {wildcards.seed} --out {params.out} > {log} 2>&1"


rule cache_teacher:
    input:
        f"{R}/{DS}/teachers/{{modality}}/s{{seed}}/teacher.pt",
    output:
        f"{R}/{DS}/teachers/{{modality}}/s{{seed}}/cache.pt",
    params:
        out=lambda w: W.teacher_dir(config, w.modality, w.seed),
    log:
        f"{LOGS}/{DS}/teachers/{{modality}}_s{{seed}}.cache.log",
    threads: RES_TRAIN["threads"]
    resources:
        mem_mb=RES_TRAIN["mem_mb"],
        runtime=RES_CPU["runtime"],
        gpu=RES_TRAIN["gpu"],
    shell:
        "g2d cache-teacher -c {CFG} --set train.threads={threads} --teacher {params.out}"
        " --modality {wildcards.modality} > {log} 2>&1"
