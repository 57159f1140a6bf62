# Benchmark target: `snakemake --cores 1 bench` -> results/bench.json (g2d bench).
