# G2D study workflow. Every rule is one `g2d <verb>` call on the one validated config.
#   snakemake --cores 2 all                      # embedded dataset, CPU
#   snakemake --cores 8 --use-singularity all    # in the CUDA container
#   snakemake --profile workflow/profiles/slurm all
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"  # validates the config and fills the schema defaults


container: config["container"]  # the project image (containers/); used with --use-singularity


include: "workflow/rules/data.smk"
include: "workflow/rules/teachers.smk"
include: "workflow/rules/students.smk"
include: "workflow/rules/reports.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/bench.smk"


rule all:
    input:
        f"{R}/summary.csv",
        W.study_teachers(config),
        REPORT_TARGETS,
        TABLE_TARGETS,
    default_target: True
