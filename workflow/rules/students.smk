# Multimodal students: method x fusion x modality set x seed (x variant for ablation tables).


def _teacher_files(w):
    mods = W.modset_modalities(config, w.modset, w.dataset)
    return [f"{W.teacher_dir(config, m, w.seed, w.dataset)}/{f}" for m in mods for f in ("teacher.pt", "cache.pt", "metrics.json")]


rule train_student:
    input:
        _teacher_files,
    output:
        metrics=f"{R}/{{dataset}}/runs/{{variant}}/{{modset}}/{{method}}/{{fusion}}/s{{seed}}/metrics.json",
        history=f"{R}/{{dataset}}/runs/{{variant}}/{{modset}}/{{method}}/{{fusion}}/s{{seed}}/history.csv",
        embeddings=f"{R}/{{dataset}}/runs/{{variant}}/{{modset}}/{{method}}/{{fusion}}/s{{seed}}/embeddings.npz",
    params:
        cfg=lambda w: W.dataset_config_file(config, w.dataset),
        key=lambda w: W.step_key(W.dataset_config(config, w.dataset), "student",
                                 **{k: v for k, v in w.items() if k != "dataset"}),
        out=lambda w: W.run_dir(config, w.method, w.fusion, w.seed, w.modset, w.variant, w.dataset),
        teachers=lambda w: " ".join(f"--teacher {m}={W.teacher_dir(config, m, w.seed, w.dataset)}"
                                    for m in W.modset_modalities(config, w.modset, w.dataset)),
        mods=lambda w: ",".join(W.modset_modalities(config, w.modset, w.dataset)),
        overrides=lambda w: " ".join(f"--set '{o}'" for o in W.variant_overrides(config, w.variant)),
    log:
        f"{LOGS}/{{dataset}}/runs/{{variant}}/{{modset}}/{{method}}_{{fusion}}_s{{seed}}.log",
    threads: RES_TRAIN["threads"]
    resources:
        mem_mb=RES_TRAIN["mem_mb"],
        runtime=RES_TRAIN["runtime"],
        gpu=RES_TRAIN["gpu"],
    shell:
        "g2d train-student -c {params.cfg} --set train.threads={threads} {params.overrides} --method {wildcards.method}"
        " --fusion {wildcards.fusion} --variant {wildcards.variant} --seed {wildcards.seed} --modalities {params.mods} {params.teachers}"
        " --out {params.out} > {log} 2>&1"
