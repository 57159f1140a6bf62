"""`g2d bench`: the full benchmark on a tiny dataset (structure, sanity checks, CLI, Snakemake target)
and Table 10's `--methods` mode still producing the step_cost layout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from g2d.bench import MODES, bench_cli_args, bench_suite
from g2d.errors import ConfigError

QUIET = lambda *a, **k: None  # noqa: E731
REPO = Path(__file__).resolve().parents[1]
SMALL = {"audio": (1, 24, 20), "visual": (1, 3, 32, 32)}  # CREMA-D's layout, tiny sizes (ResNet-18 still)


def test_bench_suite_structure_and_sanity(synth_cfg):
    r = bench_suite(synth_cfg, steps=2, warmup=1, rounds=2, epoch_rounds=1, synthetic_steps=1, synthetic_warmup=1,
                    synthetic_rounds=1, synthetic_batch_size=4, synthetic_loader_samples=8, synthetic_shapes=SMALL,
                    log=QUIET)
    assert r["schema"] == "g2d.bench" and r["machine"]["device"] == "cpu"
    e = r["embedded"]
    assert set(e["step"]) == {"prioritized", "joint"} and e["step"]["prioritized"]["epoch"] == 0
    assert e["step"]["joint"]["epoch"] == 1  # g2d.schedule [1, 2]: joint phase from epoch 1
    for ph in e["step"].values():
        assert set(ph["modes"]) == set(MODES)
        for m in ph["modes"].values():
            assert m["time_ms"] > 0 and len(m["time_ms_rounds"]) == 2
            assert m["memory"]["method"] == "cpu_profiler" and m["memory"]["peak_mb"] > m["memory"]["at_start_mb"] > 0
        assert ph["ratio_to_joint"]["joint"]["time"] == 1.0
        assert ph["modes"]["g2d_online"]["memory"]["teacher_state_mb"] > 0  # teacher weights are held
    # both G2D modes distil from identical teacher outputs (the cache is the teachers' own output)
    assert e["check"]["cached_vs_online_distill_loss_abs_diff"] == 0.0
    ov = e["step"]["joint"]["distill_overhead"]
    assert ov["g2d_loss_ms"] > ov["joint_loss_ms"] > 0 and ov["fraction_of_joint_step"] > 0
    for ph in e["epoch"].values():
        assert set(ph["modes"]) == set(MODES) | {"loader"} and ph["samples"] == 96
        assert all(m["time_s"] > 0 and m["peak_mb"] is not None for m in ph["modes"].values())
    assert e["loader"]["samples_per_s"] > 0 and e["loader"]["ratio_loader_to_training"] > 0
    s = r["cremad_synthetic"]
    assert s["shapes"] == {k: list(v) for k, v in SMALL.items()} and s["encoders"]["visual"] == "ResNet18Encoder"
    assert s["epoch_estimate"]["joint"]["steps"] == -(-6698 // 4)
    assert s["loader"]["samples"] == 8
    summ = r["summary"]["embedded"]
    assert "step_time_g2d_cached_over_joint_joint" in summ and "loader_over_training" in summ
    assert isinstance(summ["target_g2d_cached_step_time_le_1.02"], bool)


def test_bench_cli_full_and_table10_modes(synth_cfg, tmp_path, capsys):
    from g2d.cli import main
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(synth_cfg))
    out = tmp_path / "bench.json"
    assert main(["bench", "-c", str(cfg), "--batches", "1", "--warmup", "0", "--repeats", "1", "--epoch-rounds", "1",
                 "--no-synthetic", "--no-epoch-memory", "--phases", "joint", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert set(r["embedded"]["step"]) == {"joint"} and "cremad_synthetic" not in r
    assert "step_time_g2d_cached_over_joint_joint" in capsys.readouterr().err
    # Table 10 (rule bench_step_cost) passes --methods: the step_cost layout
    out10 = tmp_path / "t10.json"
    assert main(["bench", "-c", str(cfg), "--methods", "joint,g2d", "--batches", "1", "--warmup", "0", "--repeats", "1",
                 "--out", str(out10)]) == 0
    t10 = json.loads(out10.read_text())
    assert set(t10["methods"]) == {"joint", "g2d"} and t10["ratio"]["joint"]["time"] == [1.0]


def test_bench_cli_rejects_bad_options(synth_cfg, tmp_path, capsys):
    from g2d.cli import main
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(synth_cfg))
    assert main(["bench", "-c", str(cfg), "--phases", "warmup", "--out", str(tmp_path / "x.json")]) == 2
    assert capsys.readouterr().err.strip() == "g2d: --phases: expected prioritized and/or joint, got 'warmup'"


def test_bench_cli_args_from_config():
    assert bench_cli_args({"bench": {}}) == ""
    assert bench_cli_args({"bench": {"steps": 30, "rounds": 5, "synthetic": False, "phases": ["joint"]}}) == \
        "--batches 30 --repeats 5 --no-synthetic --phases joint"
    with pytest.raises(ConfigError, match="bench.step"):
        bench_cli_args({"bench": {"step": 3}})


SNAKEMAKE = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))


@pytest.mark.skipif(not Path(SNAKEMAKE).exists(), reason="snakemake not installed")
def test_snakemake_bench_target_dry_run(tmp_path):
    cfg = {"dataset": {"name": "avdigits", "source": "generate", "prepared_dir": "data/prepared"},
           "paths": {"results": "results", "logs": "logs"}, "bench": {"rounds": 5, "synthetic": False}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = subprocess.run([SNAKEMAKE, "-n", "-p", "bench", "--cores", "1", "-s", str(REPO / "Snakefile"),
                        "--configfile", "config.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    assert "results/bench.json" in out and "--suite full --repeats 5 --no-synthetic" in out, out[-3000:]
