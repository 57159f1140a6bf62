# Benchmark target: `snakemake --cores 1 bench` -> results/bench.json (`g2d bench`, docs/bench.md).
# Joint vs G2D (cached / online teachers): time and peak memory per step and per epoch, side by side
# in one process, on the configured dataset and on synthetic CREMA-D-sized batches (ResNet-18), and
# the loader's throughput. Options: config `bench:` (g2d.bench.BENCH_OPTIONS), e.g.
#   snakemake --cores 2 bench --config bench='{rounds: 5, synthetic: false}'
# Not part of `all`: timings are only meaningful on a quiet machine.
from g2d.bench import bench_cli_args


rule bench:
    input:
        W.prepared_meta(config),
    output:
        f"{R}/bench.json",
    params:
        args=bench_cli_args(config),
    log:
        f"{LOGS}/bench.log",
    threads: RES_TRAIN["threads"]
    resources:
        mem_mb=RES_TRAIN["mem_mb"],
        runtime=RES_CPU["runtime"],
        gpu=RES_TRAIN["gpu"],
    shell:
        "g2d bench -c {CFG} --set train.threads={threads} --suite full {params.args} --out {output} > {log} 2>&1"
