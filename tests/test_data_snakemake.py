"""Each real-data dataset through the workflow: ``snakemake prepare_data`` (rule in
workflow/rules/data.smk → ``g2d prepare``) with a tiny config in a temp dir, from a fixture in the
dataset's real on-disk format (``source: local``, so acquire runs too)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from g2d.data import cremad
from g2d.data.prepared import PreparedDataset, read_meta

import _media_fixtures as M

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))
pytestmark = pytest.mark.skipif(not Path(SNAKEMAKE).exists(), reason="snakemake not installed (pip install g2d[pipeline])")


def _cremad(src: Path, work: Path) -> dict:
    clips = M.pick_cremad_clips(cremad._split_table())
    M.make_cremad_raw(src, clips)
    files = ["VideoDemographics.csv"] + [f"AudioWAV/{c}.wav" for c in clips] + [f"VideoFlash/{c}.flv" for c in clips]
    M.write_manifest(work / "cremad.tsv", src, files, lambda f: "")
    return {"manifest": str(work / "cremad.tsv"), "split": "speaker_independent", "frame_size": 32, "progress": False}


def _vggsound(src: Path, work: Path) -> dict:
    M.make_vggsound_raw(src, skip_last=False)
    return {"frame_size": 32, "val_fraction": 0.34, "progress": False}


def _urfunny(src: Path, work: Path) -> dict:
    _, digest = M.make_humor_pkl(src)
    return {"sha256": digest, "seq_len": 5}


CASES = {
    "cremad": (_cremad, {"train": 4, "val": 4, "test": 4}),
    "avmnist": (lambda s, w: (M.make_avmnist_raw(s), {"val_size": 4})[1], {"train": 8, "val": 4, "test": 5}),
    "vggsound": (_vggsound, {"train": 4, "val": 2, "test": 3}),
    "urfunny": (_urfunny, {"train": 5, "val": 3, "test": 4}),
    "iemocap": (lambda s, w: (M.make_iemocap_npz(s), {})[1], None),
    "misme": (lambda s, w: (M.make_misme_raw(s), {"image_size": 16})[1], {"train": 8, "val": 2, "test": 2}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_snakemake_prepare_data(name, tmp_path):
    make, sizes = CASES[name]
    src = tmp_path / "src"
    params = make(src, tmp_path)
    cfg = {"dataset": {"name": name, "source": "local", "source_dir": str(src), "raw_dir": "data/raw",
                       "prepared_dir": "data/prepared", "params": params},
           "paths": {"results": "results", "logs": "logs"}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    r = subprocess.run([SNAKEMAKE, "prepare_data", "--cores", "1", "-s", str(REPO / "Snakefile"),
                        "--configfile", "config.yaml"], cwd=tmp_path, capture_output=True, text=True, env=env,
                       timeout=600)
    log = tmp_path / "logs" / name / "prepare.log"
    assert r.returncode == 0, (r.stderr[-3000:], log.read_text() if log.exists() else "")
    out = tmp_path / "data" / "prepared"
    meta = read_meta(out)
    assert meta["dataset"] == name and set(meta["splits"]) == {"train", "val", "test"}
    if sizes:
        assert meta["splits"] == sizes
    assert not list((tmp_path / "data").glob("prepared.tmp-*"))
    ds = PreparedDataset(out, "train")
    _, x, _ = ds[0]
    assert set(x) == set(meta["modalities"]) and all(np.isfinite(v.numpy()).all() for v in x.values())
