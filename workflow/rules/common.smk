# Validation and names shared by every rule. No step logic lives here: paths, targets and
# per-step hashes come from g2d.workflow (the library), the work from `g2d <verb>`.
from snakemake.utils import validate
import g2d.workflow as W

validate(config, schema="../schemas/config.schema.yaml")
CFG = W.write_config(config)  # the validated config every `g2d` call reads
R = W.results(config)
DS = config["dataset"]["name"]
LOGS = config["paths"]["logs"]
RES_CPU = W.rule_resources(config, "cpu")
RES_TRAIN = W.rule_resources(config, "train")


wildcard_constraints:
    dataset=r"[A-Za-z0-9_]+",
    seed=r"\d+",
    modality=r"[A-Za-z0-9_]+",
    method=r"[A-Za-z0-9_]+",
    fusion=r"[A-Za-z0-9_]+",
    modset=r"[A-Za-z0-9_+]+",
    variant=r"[A-Za-z0-9_.-]+",
