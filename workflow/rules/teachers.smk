# One unimodal teacher per modality and seed, then its cached outputs (logits + features).


rule train_teacher:
    input:
        lambda w: W.prepared_meta(config, w.dataset),
    output:
        weights=f"{R}/{{dataset}}/teachers/{{modality}}/s{{seed}}/teacher.pt",
        metrics=f"{R}/{{dataset}}/teachers/{{modality}}/s{{seed}}/metrics.json",
        history=f"{R}/{{dataset}}/teachers/{{modality}}/s{{seed}}/history.csv",
    params:
        cfg=lambda w: W.dataset_config_file(config, w.dataset),
        key=lambda w: W.step_key(W.dataset_config(config, w.dataset), "teacher", modality=w.modality, seed=w.seed),
        out=lambda w: W.teacher_dir(config, w.modality, w.seed, w.dataset),
    log:
        f"{LOGS}/{{dataset}}/teachers/{{modality}}_s{{seed}}.log",
    threads: RES_TRAIN["threads"]
    resources:
        mem_mb=RES_TRAIN["mem_mb"],
        runtime=RES_TRAIN["runtime"],
        gpu=RES_TRAIN["gpu"],
    shell:
        "g2d train-teacher -c {params.cfg} --set train.threads={threads} --modality {wildcards.modality}"
        " --seed {wildcards.seed} --out {params.out} > {log} 2>&1"


rule cache_teacher:
    input:
        f"{R}/{{dataset}}/teachers/{{modality}}/s{{seed}}/teacher.pt",
    output:
        f"{R}/{{dataset}}/teachers/{{modality}}/s{{seed}}/cache.pt",
    params:
        cfg=lambda w: W.dataset_config_file(config, w.dataset),
        out=lambda w: W.teacher_dir(config, w.modality, w.seed, w.dataset),
    log:
        f"{LOGS}/{{dataset}}/teachers/{{modality}}_s{{seed}}.cache.log",
    threads: RES_TRAIN["threads"]
    resources:
        mem_mb=RES_TRAIN["mem_mb"],
        runtime=RES_CPU["runtime"],
        gpu=RES_TRAIN["gpu"],
    shell:
        "g2d cache-teacher -c {params.cfg} --set train.threads={threads} --teacher {params.out}"
        " --modality {wildcards.modality} > {log} 2>&1"
