# G2D study workflow. Every rule is one `g2d <verb>` call on the one validated config.
#   snakemake --cores 2 all                      # embedded dataset, CPU
#   snakemake --cores 8 --use-singularity all    # in the CUDA container
#   snakemake --profile workflow/profiles/slurm all
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


container: config.get("container", "docker://ghcr.io/g2d-project/g2d:0.1.0-cuda")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/teachers.smk"
include: "workflow/rules/students.smk"
include: "workflow/rules/reports.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/bench.smk"


rule all:
    input:
        f"{R}/summary.csv",
        REPORT_TARGETS,
    default_target: True
