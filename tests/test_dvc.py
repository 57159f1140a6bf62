"""The DVC pipeline (dvc.yaml) against the Snakefile, and the real ``dvc repro/push/pull`` cycle.

- ``test_dvc_and_snakemake_cover_same_steps`` (fast, dry runs only): the main study DAG — the
  Snakefile's targets ``summarize`` + ``report`` (prepare -> teachers -> caches -> students ->
  summary -> report) — and the stages of dvc.yaml run the same ``g2d`` verbs, the same number of
  times, writing the same files. Adding a step (or an output) to one and not the other fails here.
- ``test_dvc_repro_push_pull`` (``-m e2e``, ~3 min on 2 cores): on a copy of the working tree with
  config/tiny.yaml as config/config.yaml, ``dvc repro`` runs the study, a second ``dvc repro`` does
  nothing, ``dvc push`` to the default local remote, then with the cache and every cached output
  deleted ``dvc pull`` restores them byte for byte.

Both work on a copy of the working tree (tracked + untracked, not ignored files) in a temp dir
with its own ``git init``, so uncommitted edits are tested and the checkout is never written to.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

#: the Snakefile targets whose DAG is the main study that dvc.yaml mirrors
MAIN_STUDY_RULES = ("summarize", "report")
#: verbs the main study must use (both pipelines)
MAIN_VERBS = {"prepare", "train-teacher", "cache-teacher", "train-student", "summarize", "notebook"}
#: DVC-only: stage validate_config writes the resolved config the other stages read and track as
#: params; Snakemake does the same while parsing (common.smk: g2d.workflow.write_config)
DVC_ONLY_VERBS = {"validate"}
#: DVC-only outputs: that resolved config, the headline metrics, resumable checkpoints (persist)
DVC_ONLY_OUTS = re.compile(r"^results/config\.yaml$|^results/metrics\.json$|/ckpt$")


def _need_pipeline_tools() -> None:
    for mod in ("dvc", "snakemake"):
        pytest.importorskip(mod, reason=f"{mod} not installed (pip install -e '.[pipeline]')")


# ---- helpers ---------------------------------------------------------------------------------------

def _worktree_files() -> list[str]:
    """Tracked and untracked-but-not-ignored files of the checkout (what a commit would hold)."""
    if shutil.which("git") and (REPO / ".git").exists():
        out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                             capture_output=True, check=True).stdout.decode()
        return [f for f in out.split("\0") if f and (REPO / f).is_file()]
    skip = {".git", ".venv", "results", "data", "logs", ".snakemake", "dvc-storage", "__pycache__",
            ".pytest_cache"}
    return [str(p.relative_to(REPO)) for p in REPO.rglob("*")
            if p.is_file() and not skip.intersection(p.relative_to(REPO).parts)
            and p.relative_to(REPO).parts[:2] not in ((".dvc", "cache"), (".dvc", "tmp"))]


def _copy_worktree(dst: Path, config: str = "config.yaml", commit: bool = False) -> Path:
    """Copy the working tree to ``dst``, select ``config/<config>`` as config/config.yaml, git init."""
    for f in _worktree_files():
        (dst / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / f, dst / f)
    if config != "config.yaml":
        shutil.copy2(REPO / "config" / config, dst / "config" / "config.yaml")
    git = ["git", "-c", "user.name=g2d-test", "-c", "user.email=g2d-test@localhost", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q"], cwd=dst, check=True)
    if commit:
        subprocess.run([*git, "add", "-A"], cwd=dst, check=True)
        subprocess.run([*git, "commit", "-qm", "worktree copy"], cwd=dst, check=True)
    return dst


def _env(root: Path) -> dict:
    env = dict(os.environ, DVC_NO_ANALYTICS="1", PYTHONUNBUFFERED="1",
               OMP_NUM_THREADS=os.environ.get("G2D_TEST_THREADS", "2"))
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # the g2d / dvc of this environment
    # the copy's own package (ahead of the editable install), so the run sees one snapshot of the tree
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root / "src"), env.get("PYTHONPATH")]))
    return env


def _run(cmd: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, env=_env(cwd), capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r


def _dvc(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-m", "dvc", *args], cwd, timeout)


def _verb(cmd: str) -> str:
    """The g2d verb of a pipeline step's command; every step is exactly one `g2d <verb>` call."""
    cmd = " ".join(cmd.split())
    m = re.fullmatch(r"g2d ([a-z][a-z0-9-]*)(?: .*)?", cmd)
    assert m, f"a pipeline step must be one `g2d <verb> ...` call, got: {cmd!r}"
    assert not re.search(r"&&|\|\||;|\|", cmd), f"a pipeline step must not chain commands: {cmd!r}"
    return m.group(1)


def _snakemake_jobs(root: Path) -> list[dict]:
    """Jobs of the main study DAG from a forced dry run: [{rule, verb, outputs}]."""
    r = _run([sys.executable, "-m", "snakemake", "-n", "-p", "--forceall", "--cores", "1", *MAIN_STUDY_RULES],
             root, timeout=300)
    jobs = []
    for block in re.split(r"\n\s*\n", r.stdout + "\n" + r.stderr):
        rule = re.search(r"^(?:local)?rule (\w+):\s*$", block, re.M)
        if not rule:
            continue
        shell = re.search(r"^Shell command: (.*)$", block, re.M)
        assert shell, f"rule {rule.group(1)}: no shell command in the dry run (every rule is a `g2d` call)\n{block}"
        outs = re.search(r"^\s+output: (.*)$", block, re.M)
        jobs.append({"rule": rule.group(1), "verb": _verb(shell.group(1)),
                     "outputs": outs.group(1).split(", ") if outs else []})
    assert jobs, f"no jobs parsed from the Snakemake dry run:\n{r.stdout[-3000:]}"
    return jobs


def _dvc_stages(root: Path) -> list[dict]:
    """Pipeline stages of dvc.yaml (foreach/matrix expanded with config/config.yaml): [{stage, verb, outputs}]."""
    from dvc.repo import Repo
    with Repo(str(root)) as repo:
        return [{"stage": s.addressing, "verb": _verb(s.cmd if isinstance(s.cmd, str) else " && ".join(s.cmd)),
                 "outputs": [o.def_path for o in s.outs]}
                for s in repo.index.stages if getattr(s, "cmd", None)]


def _covered(path: str, by: set[str]) -> bool:
    return any(path == o or path.startswith(o.rstrip("/") + "/") for o in by)


def _hashes(paths: list[Path], root: Path) -> dict[str, str]:
    out = {}
    for p in paths:
        for f in ([p] if p.is_file() else sorted(x for x in p.rglob("*") if x.is_file())):
            out[str(f.relative_to(root))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


# ---- drift: the two pipelines run the same steps ----------------------------------------------------

@pytest.mark.parametrize("config", ["config.yaml", "tiny.yaml"])
def test_dvc_and_snakemake_cover_same_steps(tmp_path, config, monkeypatch):
    _need_pipeline_tools()
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    root = _copy_worktree(tmp_path / "repo", config)
    jobs, stages = _snakemake_jobs(root), _dvc_stages(root)

    snake_verbs = Counter(j["verb"] for j in jobs)
    dvc_verbs = Counter(s["verb"] for s in stages if s["verb"] not in DVC_ONLY_VERBS)
    assert MAIN_VERBS <= set(snake_verbs), f"the Snakefile's main study lost a step: {sorted(MAIN_VERBS - set(snake_verbs))}"
    assert set(dvc_verbs) == set(snake_verbs), (
        f"g2d verbs differ — only in the Snakefile: {sorted(set(snake_verbs) - set(dvc_verbs))}, "
        f"only in dvc.yaml: {sorted(set(dvc_verbs) - set(snake_verbs))}")
    assert dvc_verbs == snake_verbs, f"jobs per verb differ: Snakemake {dict(snake_verbs)} vs DVC {dict(dvc_verbs)}"

    # same files, made by the same verb: every Snakemake output is (inside) an output of a DVC stage
    # with that verb, and every DVC output holds a Snakemake output of that verb (or is DVC-only)
    for verb in snake_verbs:
        s_outs = {p for j in jobs if j["verb"] == verb for p in j["outputs"]}
        d_outs = {p for s in stages if s["verb"] == verb for p in s["outputs"]}
        missing = sorted(p for p in s_outs if not _covered(p, d_outs))
        assert not missing, f"`g2d {verb}`: Snakemake outputs that no dvc.yaml stage writes: {missing}"
        extra = sorted(o for o in d_outs if not DVC_ONLY_OUTS.search(o)
                       and not any(p == o or p.startswith(o.rstrip("/") + "/") for p in s_outs))
        assert not extra, f"`g2d {verb}`: dvc.yaml outputs the Snakefile does not make: {extra}"


# ---- the g2d pieces dvc.yaml relies on ---------------------------------------------------------------

def test_validate_out_writes_the_resolved_config(tmp_path):
    """`g2d validate --out`: the file every DVC stage reads and tracks (defaults filled, reloads equal)."""
    import yaml
    from g2d.cli import main
    from g2d.config import load_config
    out = tmp_path / "results" / "config.yaml"
    assert main(["validate", "-c", str(REPO / "config" / "tiny.yaml"), "--out", str(out)]) == 0
    resolved = yaml.safe_load(out.read_text())
    assert resolved == load_config(REPO / "config" / "tiny.yaml") == load_config(out)
    assert resolved["train"]["lr"] is not None and resolved["study"]["methods"] == ["joint", "g2d"]


def test_summarize_study_and_headline_metrics(tmp_path, monkeypatch):
    """`g2d summarize --study --metrics-json`: the study's runs (g2d.workflow.study_runs), means over seeds."""
    from g2d.cli import main
    monkeypatch.chdir(tmp_path)
    for method, acc in (("joint", 0.5), ("g2d", 0.7)):
        for seed in (0, 1):
            d = tmp_path / "results" / "avdigits" / "runs" / "main" / "all" / method / "late" / f"s{seed}"
            d.mkdir(parents=True)
            (d / "metrics.json").write_text(json.dumps({
                "dataset": "avdigits", "method": method, "fusion": "late", "seed": seed,
                "modalities": ["audio", "visual"], "acc": acc + 0.1 * seed, "acc_audio": 0.3, "macro_f1": acc,
                "val_acc": 0.9, "teacher_acc_audio": 0.4 + 0.2 * seed, "best_epoch": 3}))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("dataset: {name: avdigits}\nstudy: {methods: [joint, g2d], fusions: [late], seeds: [0, 1]}\n")
    assert main(["summarize", "-c", str(cfg), "--study", "--out", "results/summary.csv",
                 "--metrics-json", "results/metrics.json"]) == 0
    h = json.loads((tmp_path / "results" / "metrics.json").read_text())["avdigits"]
    assert h["late"]["g2d"] == {"acc": pytest.approx(0.75), "acc_audio": 0.3, "macro_f1": 0.7, "n_seeds": 2}
    assert h["late"]["joint"]["acc"] == pytest.approx(0.55)
    assert h["teachers"] == {"teacher_acc_audio": pytest.approx(0.5)}  # one value per seed, not per run
    assert main(["summarize", "-c", str(cfg), "--out", "results/s.csv"]) == 2  # neither --metrics nor --study


# ---- end to end: repro, no-op repro, push, pull -------------------------------------------------------

@pytest.mark.e2e
@pytest.mark.timeout(1200)
def test_dvc_repro_push_pull(tmp_path):
    _need_pipeline_tools()
    root = _copy_worktree(tmp_path / "repo", "tiny.yaml", commit=True)
    # Raw data: no remote holds it in a fresh copy, so synthesize it (eSpeak output is not
    # bit-reproducible, so `dvc repro` re-records data.dvc: the documented fresh-clone path).
    _run(["g2d", "acquire", "-c", "config/config.yaml"], root)

    r1 = _dvc("repro", cwd=root, timeout=900)
    ran = set(re.findall(r"Running stage '([^']+)'", r1.stdout))
    for stage in ("validate_config", "prepare_data", "train_teacher@audio-0", "train_teacher@visual-0",
                  "cache_teacher@audio-0", "cache_teacher@visual-0", "train_student@joint-late-0",
                  "train_student@g2d-late-0", "summarize", "report"):
        assert stage in ran, f"stage {stage} did not run:\n{r1.stdout[-3000:]}"

    r2 = _dvc("repro", cwd=root)
    assert "Running stage" not in r2.stdout, f"second `dvc repro` ran stages:\n{r2.stdout}"
    assert "Data and pipelines are up to date" in r2.stdout, r2.stdout

    metrics = json.loads(_dvc("metrics", "show", "--json", cwd=root).stdout)
    flat = json.dumps(metrics)
    assert "results/metrics.json" in flat and '"acc"' in flat and "teacher_acc_audio" in flat, flat[:2000]
    headline = json.loads((root / "results" / "metrics.json").read_text())
    assert set(headline["avdigits"]["late"]) == {"joint", "g2d"}
    assert 0.0 <= headline["avdigits"]["late"]["g2d"]["acc"] <= 1.0

    plots = json.loads(_dvc("plots", "show", "--json", cwd=root).stdout)
    plotted = json.dumps(plots)
    assert "runs/main/all/g2d/late/s0/history.csv" in plotted and "teachers/audio/s0/history.csv" in plotted

    # every DVC-cached output (pipeline outs + data/raw); results/metrics.json is git-tracked instead
    from dvc.repo import Repo
    with Repo(str(root)) as repo:
        cached = [Path(o.fs_path) for o in repo.index.outs if o.use_cache]
    assert any(p.name == "raw" for p in cached) and any(p.name == "teacher.pt" for p in cached)
    before = _hashes(cached, root)
    assert len(before) > 700, len(before)

    _dvc("push", cwd=root)
    assert any((root / "dvc-storage").rglob("*")), "default remote dvc-storage/ is empty after dvc push"
    shutil.rmtree(root / ".dvc" / "cache")
    for p in cached:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    _dvc("pull", cwd=root)
    after = _hashes(cached, root)
    assert after == before, f"dvc pull did not restore the outputs: {sorted(set(before) ^ set(after))[:10]} " \
                            f"{[k for k in before if after.get(k) != before[k]][:10]}"
    assert "Data and pipelines are up to date" in _dvc("status", cwd=root).stdout
    assert "Running stage" not in _dvc("repro", cwd=root).stdout
