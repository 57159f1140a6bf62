"""End to end through a real SLURM: Snakemake's slurm executor + workflow/profiles/slurm.

Starts a one-node SLURM 22.05 on this machine (``tests/slurm_cluster.py``: root, Debian
``slurm-wlm munge``, installed by ``.ci/slurm-setup.sh``), runs a tiny workflow with
``--profile workflow/profiles/slurm`` and checks, without sacct (there is no slurmdbd), that
every job really went through SLURM: the plugin's per-job logs in ``.snakemake/slurm_logs/``,
``_job_complete ... WEXITSTATUS 0`` in the slurmctld log, and ``scontrol show job`` (kept for
``MinJobAge=600`` s) with the partition taken from ``G2D_SLURM_PARTITION`` and the GPU request
made from the rule's ``resources: gpu=1``.

When the real workflow is present (``Snakefile``, ``workflow/rules/data.smk``,
``config/tiny.yaml``), it runs ``prepare_data`` (real ``g2d prepare``, a CPU job) and one
teacher (real ``g2d train-teacher``, 1 epoch, ``resources.train.gpu: 1`` so it is a GPU job);
otherwise a throwaway two-rule workflow (one CPU rule, one GPU rule) stands in.

Skips with the reason when not root, when the SLURM/munge binaries are absent, or when
Snakemake's slurm plugin is not installed. ~30-60 s (status polling is the floor).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slurm_cluster import SlurmCluster, unavailable_reason  # noqa: E402

pytestmark = [pytest.mark.slurm, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "workflow" / "profiles" / "slurm"
VENV_BIN = Path(sys.executable).parent
PARTITION = "g2d"  # non-default partition: proves G2D_SLURM_PARTITION reaches sbatch
SNAKEMAKE_BUDGET_S = 300  # hard kill (timeout -s KILL) for the snakemake run


def _snakemake() -> str | None:
    return shutil.which("snakemake", path=os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")]))


@pytest.fixture(scope="module")
def slurm_cluster():
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    if _snakemake() is None:
        pytest.skip("snakemake not installed (pip install -e .[pipeline])")
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        pytest.skip("snakemake-executor-plugin-slurm not installed (pip install -e .[pipeline])")
    # advertise >= 64 GB: rules may ask for more memory than this machine has; task/none
    # enforces nothing, and the tiny config uses little
    with SlurmCluster(partitions=("debug", PARTITION), real_memory_mb=65536) as cluster:
        yield cluster


# ------------------------------------------------------------------ workflows
def _real_workflow(tmp: Path) -> dict | None:
    """The lead's workflow on config/tiny.yaml, when it exists: ``prepare_data`` (CPU rule,
    real ``g2d prepare``) and one teacher (``train_teacher`` with ``gpu: 1``, real
    ``g2d train-teacher``; no CUDA driver here, so torch falls back to CPU)."""
    snakefile = REPO / "Snakefile"
    data_rules = REPO / "workflow" / "rules" / "data.smk"
    tiny = REPO / "config" / "tiny.yaml"
    if not (snakefile.exists() and tiny.exists() and data_rules.exists()
            and "rule prepare_data" in data_rules.read_text()):
        return None
    from g2d import workflow as W
    from g2d.config import load_config

    cfg = load_config(tiny)
    modality = W.modalities(cfg)[-1]
    teacher = f"{W.teacher_dir(cfg, modality, cfg['study']['seeds'][0])}/teacher.pt"
    overlay = tmp / "slurm-overlay.yaml"
    overlay.write_text(
        "train: {epochs: 1, max_train_batches: 4}\n"
        # the workflow's only GPU knob: resources.<kind>.gpu -> rule resources gpu -> --gpus
        "resources: {train: {gpu: 1, threads: 1, mem_mb: 2000, runtime: 20},"
        " cpu: {threads: 1, mem_mb: 2000, runtime: 20}}\n"
    )
    return {
        "snakefile": snakefile,
        "configfiles": [tiny, overlay],
        "targets": ["prepare_data", teacher],
        "gpu_rule": "train_teacher",
        "outputs": [W.prepared_meta(cfg), teacher],
        "gpu_out": None,
    }


THROWAWAY = textwrap.dedent(
    """
    # throwaway workflow for tests/test_slurm.py (the real one is not there yet)
    rule all:
        input: "out/gpu_step.txt"

    rule cpu_step:
        output: "out/cpu_step.txt"
        threads: 1
        resources: mem_mb=200, runtime=5, gpu=0
        shell: "echo job=${{SLURM_JOB_ID:-none}} cvd=${{CUDA_VISIBLE_DEVICES:-none}} > {output}; g2d --version >> {output}"

    rule gpu_step:
        input: "out/cpu_step.txt"
        output: "out/gpu_step.txt"
        threads: 1
        resources: mem_mb=200, runtime=5, gpu=1
        shell: "cat {input} > {output}; echo job=${{SLURM_JOB_ID:-none}} cvd=${{CUDA_VISIBLE_DEVICES:-none}} >> {output}"
    """
)


def _throwaway_workflow(tmp: Path) -> dict:
    sf = tmp / "Snakefile"
    sf.write_text(THROWAWAY)
    return {"snakefile": sf, "configfiles": [], "targets": ["all"], "gpu_rule": "gpu_step",
            "outputs": ["out/cpu_step.txt", "out/gpu_step.txt"], "gpu_out": "out/gpu_step.txt"}


# ------------------------------------------------------------------ helpers
def _scontrol_job(job_id: str) -> dict[str, str]:
    out = subprocess.run([shutil.which("scontrol") or "/usr/bin/scontrol", "show", "job", "-o", job_id],
                         capture_output=True, text=True, timeout=30).stdout
    return dict(re.findall(r"(\w+)=(\S*)", out))


def test_workflow_runs_through_slurm(slurm_cluster: SlurmCluster, tmp_path: Path):
    wf = _real_workflow(tmp_path) or _throwaway_workflow(tmp_path)
    workdir = tmp_path / "run"
    workdir.mkdir()
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(VENV_BIN), env.get("PATH", ""), "/usr/sbin", "/usr/bin"])
    env["G2D_SLURM_PARTITION"] = PARTITION
    env.pop("G2D_SLURM_ACCOUNT", None)  # no accounting here: the plugin must not validate one
    env.setdefault("G2D_TEST_THREADS", "1")
    cmd = [
        "timeout", "-s", "KILL", str(SNAKEMAKE_BUDGET_S),
        _snakemake(), "--snakefile", str(wf["snakefile"]), "--directory", str(workdir),
        "--profile", str(PROFILE),
        # no slurmdbd: poll with squeue (MinJobAge=600 keeps finished jobs visible)
        "--slurm-status-command", "squeue",
        "--slurm-init-seconds-before-status-checks", "2",
        "--slurm-keep-successful-logs",
        "--jobs", "2", "--max-threads", str(slurm_cluster.cpus),
        "--retries", "0", "--latency-wait", "5",
    ]
    if wf["configfiles"]:
        cmd += ["--configfile", *map(str, wf["configfiles"])]
    cmd += ["--", *wf["targets"]]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - t0
    print(f"snakemake through SLURM: {elapsed:.1f}s, rc={proc.returncode}")
    log = proc.stdout + proc.stderr
    context = f"\n--- snakemake ({elapsed:.0f}s, rc={proc.returncode}) ---\n{log[-8000:]}\n--- cluster ---\n{slurm_cluster.diagnostics()}"
    assert proc.returncode == 0, "snakemake through SLURM failed" + context

    # 1. outputs
    for rel in wf.get("outputs", []):
        assert (workdir / rel).is_file(), f"missing output {rel}" + context

    # 2. every job was an sbatch job: plugin log file + slurmctld saw it finish with 0
    submitted = re.findall(r"submitted with SLURM jobid (\d+) \(log: (\S+?)\)", log)
    assert submitted, "no job was submitted to SLURM (ran locally?)" + context
    ctld_log = slurm_cluster.ctld_log.read_text(errors="replace")
    for job_id, job_log in submitted:
        assert Path(job_log).is_file(), f"SLURM job log {job_log} missing" + context
        assert str(workdir / ".snakemake" / "slurm_logs") in job_log
        assert f"_job_complete: JobId={job_id} WEXITSTATUS 0" in ctld_log, f"job {job_id} not completed in slurmctld" + context
        info = _scontrol_job(job_id)
        assert info.get("JobState") == "COMPLETED", f"job {job_id}: {info}" + context
        assert info.get("Partition") == PARTITION, f"job {job_id} not in partition {PARTITION}: {info}" + context

    # 3. the GPU rule asked SLURM for a GPU (rules say gpu=1, the plugin sends --gpus=1)
    gpu_jobs = [j for j, p in submitted if wf["gpu_rule"] and f"/rule_{wf['gpu_rule']}/" in p]
    cpu_jobs = [j for j, p in submitted if j not in gpu_jobs]
    if wf["gpu_rule"]:
        assert gpu_jobs, f"rule {wf['gpu_rule']} was not submitted" + context
        for j in gpu_jobs:
            info = _scontrol_job(j)
            assert "gpu:1" in info.get("TresPerJob", ""), f"GPU job {j} has no GPU request: {info}" + context
    if wf["gpu_out"]:  # throwaway workflow: the jobs wrote their SLURM job id and GPU binding
        out = (workdir / wf["gpu_out"]).read_text()
        job_lines = re.findall(r"job=(\S+) cvd=(\S+)", out)
        assert [j for j, _ in job_lines] == [*cpu_jobs, *gpu_jobs], out
        assert job_lines[-1][1] != "none", f"no CUDA_VISIBLE_DEVICES in the GPU job: {out}"
    for j in cpu_jobs:
        assert "gpu" not in _scontrol_job(j).get("TresPerJob", ""), f"CPU job {j} requested a GPU"
