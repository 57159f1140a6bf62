"""Snakemake runs the workflow's jobs through Apptainer with the configured image and binds.

STAND-IN: Apptainer/Singularity cannot be installed on the dev/CI machines (no package in the
registries we can reach, and it needs setuid/user namespaces). So these tests put a small
``apptainer`` (and ``singularity``) script first on PATH. It answers ``--version``, fakes
``pull`` (creates the ``.simg`` file Snakemake asks for), records every argv to a JSON-lines
file, and for ``exec [options] IMAGE CMD...`` drops the ``exec [options] IMAGE`` prefix and runs
``CMD`` (Snakemake's ``bash -c '<rule shell>'``) on the host, so the job really runs.

What this proves: Snakemake 9 with ``--use-singularity`` (alias of ``--use-apptainer``) or
``--software-deployment-method apptainer`` wraps every shell job in ``apptainer exec``, with
the image named by the workflow's top-level ``container:`` directive (config key
``container``, default in ``workflow/schemas/config.schema.yaml``), ``--home <workdir>`` (so
the working directory is mounted) and the extra binds given by ``--apptainer-args`` (data
outside the working directory). It does NOT prove the image works: build and run it for that
(containers/README.md).

The last test removes the ``container:`` directive from a copy of the Snakefile and checks
that the stand-in is then never asked to exec, i.e. that these assertions fail without the
directive. Runs the real Snakefile (``prepare_data`` on ``config/tiny.yaml``) when it exists;
otherwise a throwaway Snakefile with the same directive.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
VENV_BIN = Path(sys.executable).parent
OTHER_IMAGE = "docker://example.org/g2d-test/g2d:standin"

STANDIN = r'''#!__PYTHON__
"""Apptainer/Singularity stand-in for tests/test_container.py (records argv, runs the command)."""
import json, os, sys

LOG = __LOG__
# options of `apptainer exec` that take a value (apptainer 1.3 / singularity 3.x)
VALUED = {"-B", "--bind", "--mount", "-H", "--home", "--pwd", "-W", "--workdir", "-S", "--scratch",
          "--env", "--env-file", "--overlay", "-o", "--security", "--network", "--network-args",
          "--dns", "--hostname", "--add-caps", "--drop-caps", "--app", "--apply-cgroups", "--cpus",
          "--memory", "--memory-swap", "--cpu-shares", "--cpuset-cpus", "--cpuset-mems",
          "--blkio-weight", "--pids-limit", "--fusemount", "--no-mount", "--pem-path", "--config"}

argv = sys.argv[1:]
with open(LOG, "a") as fh:
    fh.write(json.dumps({"prog": os.path.basename(sys.argv[0]), "argv": argv, "cwd": os.getcwd()}) + "\n")

i = 0
while i < len(argv) and argv[i].startswith("-"):  # global options: --quiet --silent --debug
    if argv[i] in ("--version", "version"):
        print("apptainer version 1.3.4-standin")
        sys.exit(0)
    i += 1
if i >= len(argv):
    sys.exit(0)
sub, rest = argv[i], argv[i + 1:]
if sub == "version":
    print("apptainer version 1.3.4-standin")
    sys.exit(0)
if sub == "pull":  # pull [--name NAME] URL: create an empty image file where asked
    name = rest[rest.index("--name") + 1] if "--name" in rest else "image.sif"
    open(name, "w").close()
    sys.exit(0)
if sub not in ("exec", "run", "shell"):
    sys.exit(0)
j, pwd, env = 0, None, {}
while j < len(rest) and rest[j].startswith("-"):
    opt = rest[j]
    val = None
    if "=" in opt and opt.startswith("--"):
        opt, val = opt.split("=", 1)
    elif opt in VALUED:
        j += 1
        val = rest[j]
    if opt == "--pwd":
        pwd = val
    elif opt == "--env" and val and "=" in val:
        k, v = val.split("=", 1)
        env[k] = v
    j += 1
image, cmd = rest[j], rest[j + 1:]
if not os.path.exists(image):
    sys.exit(f"stand-in apptainer: image {image} does not exist")
for k, v in list(os.environ.items()):
    for prefix in ("APPTAINERENV_", "SINGULARITYENV_"):
        if k.startswith(prefix):
            env[k[len(prefix):]] = v
os.environ.update(env)
if pwd:
    os.chdir(pwd)
if not cmd:
    cmd = ["bash"]
os.execvp(cmd[0], cmd)
'''

THROWAWAY = textwrap.dedent(
    """
    # throwaway workflow for tests/test_container.py (the real Snakefile is not there yet)
    from snakemake.utils import validate

    validate(config, schema="__SCHEMA__")  # fills the schema defaults, `container` included


    container: config["container"]


    rule prepare_data:
        output: "data/prepared/standin/meta.json"
        shell: "mkdir -p $(dirname {output}) && echo '{{}}' > {output}"
    """
)


# ------------------------------------------------------------------ fixtures / helpers
@pytest.fixture
def standin(tmp_path: Path) -> dict:
    """A bin dir with apptainer + singularity stand-ins and the file they log to."""
    bindir = tmp_path / "standin-bin"
    bindir.mkdir()
    log = tmp_path / "apptainer-calls.jsonl"
    script = STANDIN.replace("__PYTHON__", sys.executable).replace("__LOG__", repr(str(log)))
    for name in ("apptainer", "singularity"):
        p = bindir / name
        p.write_text(script)
        p.chmod(0o755)
    return {"bin": bindir, "log": log}


def _calls(log: Path) -> list[dict]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def _schema_default_image() -> str:
    return yaml.safe_load(SCHEMA.read_text())["properties"]["container"]["default"]


def _real_snakefile() -> Path | None:
    sf = REPO / "Snakefile"
    if sf.exists() and (REPO / "config" / "tiny.yaml").exists() and re.search(r"^container:", sf.read_text(), re.M):
        return sf
    return None


def _workflow(tmp: Path) -> dict:
    """Snakefile + config files + target + expected output (real workflow when present)."""
    sf = _real_snakefile()
    if sf is not None:
        from g2d import workflow as W
        from g2d.config import load_config

        tiny = REPO / "config" / "tiny.yaml"
        return {"snakefile": sf, "configfiles": [tiny], "target": "prepare_data",
                "output": W.prepared_meta(load_config(tiny))}
    sf = tmp / "Snakefile"
    sf.write_text(THROWAWAY.replace("__SCHEMA__", str(SCHEMA)))
    return {"snakefile": sf, "configfiles": [], "target": "prepare_data",
            "output": "data/prepared/standin/meta.json"}


def _without_container(snakefile: Path, dest: Path) -> Path:
    """Copy of ``snakefile`` without its top-level ``container:`` directive (includes made absolute)."""
    text = snakefile.read_text()
    stripped, n = re.subn(r"^container:.*(\n[ \t]+.*)*\n", "", text, flags=re.M)
    assert n == 1, f"expected one top-level container: directive in {snakefile}"
    stripped = re.sub(r'^include:\s*"(?!/)', f'include: "{snakefile.parent}/', stripped, flags=re.M)
    dest.write_text(stripped)
    return dest


def _run(wf: dict, workdir: Path, standin: dict, deploy: list[str], config: list[str] = (),
         snakefile: Path | None = None) -> subprocess.CompletedProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(standin["bin"]), str(VENV_BIN), env.get("PATH", "")])
    for k in [k for k in env if k.startswith(("APPTAINER", "SINGULARITY"))]:
        env.pop(k)
    snakemake = shutil.which("snakemake", path=env["PATH"])
    if snakemake is None:
        pytest.skip("snakemake not installed (pip install -e .[pipeline])")
    cmd = ["timeout", "-s", "KILL", "240", snakemake, "--snakefile", str(snakefile or wf["snakefile"]),
           "--directory", str(workdir), "--cores", "1", *deploy]
    if wf["configfiles"]:
        cmd += ["--configfile", *map(str, wf["configfiles"])]
    if config:
        cmd += ["--config", *config]
    cmd += ["--", wf["target"]]
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)


def assert_ran_in_container(calls: list[dict], image_url: str, workdir: Path, binds: list[Path]) -> None:
    """The job went through `apptainer exec` on the pulled image, with the working dir and binds."""
    pulls = [c["argv"] for c in calls if "pull" in c["argv"]]
    assert any(p[-1] == image_url for p in pulls), f"image {image_url} never pulled; calls: {calls}"
    expected_sif = f"{hashlib.md5(image_url.encode()).hexdigest()}.simg"
    execs = [c["argv"] for c in calls if "exec" in c["argv"]]
    assert execs, f"apptainer exec never called; calls: {calls}"
    for argv in execs:
        rest = argv[argv.index("exec") + 1:]
        image = next(a for a in rest if a.endswith(".simg") or a.endswith(".sif"))
        assert Path(image).name == expected_sif, f"exec on {image}, expected the image of {image_url}"
        assert Path(image).parent == workdir / ".snakemake" / "singularity", image
        # the working dir is mounted as the container's home (Snakemake: --home <cwd>)
        assert rest[rest.index("--home") + 1] == str(workdir), argv
        bound = [rest[k + 1].split(":")[0] for k, a in enumerate(rest) if a in ("--bind", "-B")]
        for b in binds:
            assert str(b) in bound, f"{b} not bound in {argv}"
        assert rest[-3:-1] == ["bash", "-c"], f"not a shell job: {argv}"


# ------------------------------------------------------------------ tests
def test_use_singularity_runs_jobs_in_configured_image(standin: dict, tmp_path: Path):
    """`--use-singularity` + default config: the image is the schema's `container` default."""
    wf = _workflow(tmp_path)
    workdir = tmp_path / "run"
    data_dir = tmp_path / "shared-data"  # stands for data outside the working directory
    data_dir.mkdir()
    proc = _run(wf, workdir, standin, ["--use-singularity", f"--singularity-args=--bind {data_dir}"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert (workdir / wf["output"]).is_file(), "the job did not run (stand-in exec failed?)"
    assert_ran_in_container(_calls(standin["log"]), _schema_default_image(), workdir, [data_dir])


def test_apptainer_sdm_uses_config_container(standin: dict, tmp_path: Path):
    """`--software-deployment-method apptainer` + `--config container=...`: that image is used."""
    wf = _workflow(tmp_path)
    workdir = tmp_path / "run"
    proc = _run(wf, workdir, standin, ["--software-deployment-method", "apptainer", "--apptainer-args=--nv"],
                config=[f"container={OTHER_IMAGE}"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    calls = _calls(standin["log"])
    assert_ran_in_container(calls, OTHER_IMAGE, workdir, [])
    assert all("--nv" in c["argv"] for c in calls if "exec" in c["argv"]), calls
    assert not any(_schema_default_image() in c["argv"] for c in calls), "default image used despite override"


def test_without_container_directive_standin_is_not_called(standin: dict, tmp_path: Path):
    """Mutation check: drop `container:` from the Snakefile -> no exec, and the check above fails."""
    wf = _workflow(tmp_path)
    stripped = _without_container(Path(wf["snakefile"]), tmp_path / "Snakefile.nocontainer")
    workdir = tmp_path / "run"
    proc = _run(wf, workdir, standin, ["--use-singularity"], snakefile=stripped)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert (workdir / wf["output"]).is_file()  # the job ran, on the host
    calls = _calls(standin["log"])
    assert not [c for c in calls if "exec" in c["argv"]], f"stand-in exec called without container:: {calls}"
    with pytest.raises(AssertionError):
        assert_ran_in_container(calls, _schema_default_image(), workdir, [])
