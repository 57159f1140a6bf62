"""Test-time missing-modality evaluation of a trained student (Table 11): ``g2d evaluate-missing``.

Masks (:func:`missing_masks`)
    A missing rate r is the fraction of test samples that lose at least one modality: exactly
    ``round(r * N)`` samples, chosen by a seeded permutation, each lose a uniformly drawn
    non-empty *proper* subset of the modalities (for two modalities: one of the two), so every
    sample keeps at least one modality. The permutation and the dropped subsets depend only on
    (``mask_seed``, N, M), so the masks are identical for every run and nested across rates (the
    samples incomplete at 10 % are also incomplete, the same way, at 20 %).

Missing modalities are zeroed at the fusion input (``MultimodalModel.forward(x, present=...)``):
their encoder features are replaced by zeros, as a deployed model would do without that input.

Output ``missing.json`` in the run directory::

    {"method", "fusion", "seed", "modalities", "mask_seed", "rates": [...],
     "by_rate": {"0.1": {"acc"|"mape"/"r2": ..., "macro_f1", "missing_fraction", "n",
                         "dropped": {modality: samples without it}}, ...}}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import torch

from .config import dataset_dirs
from .data.prepared import PreparedDataset, read_meta
from .data.registry import get_dataset
from .errors import ConfigError, DataError
from .methods import get_method
from .models.nets import build_student
from .train.common import (apply_threads, autocast_factory, make_loader, resolve_device, safe_load, seed_everything,
                           write_json)
from .train.evaluate import collect_multimodal, task_metrics
from .train.loop import load_best_weights
from .train.student import student_hash
from .train.teacher import _target_scale

__all__ = ["missing_masks", "evaluate_missing", "add_parser"]


def missing_masks(n: int, modalities: Sequence[str], rate: float, seed: int = 0) -> dict[str, torch.Tensor]:
    """{modality: bool (n,) present} with round(rate * n) samples missing >= 1 modality (see module doc)."""
    mods = list(modalities)
    M = len(mods)
    if M < 2:
        raise ConfigError(f"missing-modality masks need >= 2 modalities, got {mods}")
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"missing rate {rate} is not in [0, 1]")
    g = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n, generator=g)
    codes = torch.randint(1, 2 ** M - 1, (n,), generator=g)  # bitmask of dropped modalities, never 0 or all
    k = int(round(rate * n))
    present = torch.ones(n, M, dtype=torch.bool)
    chosen = perm[:k]
    bits = (codes[:k].unsqueeze(1) >> torch.arange(M)) & 1
    present[chosen] = ~bits.bool()
    return {m: present[:, j].clone() for j, m in enumerate(mods)}


def _run_metrics(run_dir: Path) -> dict:
    p = run_dir / "metrics.json"
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise DataError(f"{p}: not found (train the run first)") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{p}: corrupt JSON ({exc.msg})") from None


def load_run(cfg: dict, run_dir: str | Path, teachers: Mapping[str, str | Path] | None = None, device=None):
    """The trained student of ``run_dir`` (best-on-validation weights) and its metrics.json.

    The checkpoint's config hash is recomputed like the trainer does (same config + variant
    overrides, same teachers), so a run is never evaluated under a different config."""
    run_dir = Path(run_dir)
    rm = _run_metrics(run_dir)
    spec = get_dataset(cfg["dataset"]["name"])
    if rm.get("dataset") != spec.name:
        raise ConfigError(f"{run_dir}: run of dataset '{rm.get('dataset')}' but dataset.name is '{spec.name}'")
    _, prepared = dataset_dirs(cfg)
    meta = read_meta(prepared)
    mods = list(rm["modalities"])
    teachers = dict(teachers or {})
    meth = get_method(rm["method"])(cfg, mods, spec.task, {})
    have_all = all(m in teachers for m in mods)
    from .train.teacher import teacher_file_hash
    thashes = {m: teacher_file_hash(Path(teachers[m]) / "teacher.pt") for m in mods} if have_all else {}
    h = student_hash(cfg, rm["method"], rm["fusion"], int(rm["seed"]), mods, thashes,
                     meth.scheduler.schedule if meth.scheduler else None)
    device = device or resolve_device(cfg)
    seed_everything(int(rm["seed"]))
    model = build_student(cfg, spec, meta, mods, rm["fusion"])
    try:
        load_best_weights(model, run_dir, h)
    except DataError as exc:
        raise DataError(f"{exc} — pass the same config, variant overrides (--set) and --teacher dirs as training") from None
    return model.to(device).eval(), rm


def evaluate_missing(cfg: dict, run_dir: str | Path, rates: Sequence[float], mask_seed: int = 0,
                     teachers: Mapping[str, str | Path] | None = None, out: str | Path | None = None,
                     log=print) -> dict:
    apply_threads(cfg)
    run_dir = Path(run_dir)
    device = resolve_device(cfg)
    model, rm = load_run(cfg, run_dir, teachers, device)
    spec = get_dataset(cfg["dataset"]["name"])
    _, prepared = dataset_dirs(cfg)
    meta = read_meta(prepared)
    mods = list(rm["modalities"])
    ds = PreparedDataset(prepared, "test", mods)
    loader = make_loader(ds, max(cfg["train"]["batch_size"], 64), False, 0, cfg["dataset"]["num_workers"],
                         device.type == "cuda")
    autocast = autocast_factory(cfg, device)
    ncls = len(spec.classes) if spec.classes else None
    n = len(ds)
    res = {"dataset": spec.name, "method": rm["method"], "fusion": rm["fusion"], "seed": rm["seed"],
           "modalities": mods, "mask_seed": int(mask_seed), "rates": [float(r) for r in rates], "n": n, "by_rate": {}}
    for r in rates:
        present = missing_masks(n, mods, float(r), mask_seed)
        out_r = collect_multimodal(model, loader, device, autocast, cfg["train"]["channels_last"], present=present)
        met = task_metrics(out_r["logits"], out_r["y"], spec.task, ncls, "", _target_scale(meta))
        stacked = torch.stack([present[m] for m in mods], 1)
        met["missing_fraction"] = float((~stacked).any(1).float().mean())
        met["n"] = n
        met["dropped"] = {m: int((~present[m]).sum()) for m in mods}
        res["by_rate"][f"{float(r):g}"] = met
        key = "acc" if "acc" in met else "r2"
        log(f"[g2d] missing rate {float(r):g}: {key} {met[key]:.4f} ({met['missing_fraction']:.3f} of samples incomplete)")
    out = Path(out) if out else run_dir / "missing.json"
    write_json(out, res)
    return res


def _parse_rates(s: str) -> list[float]:
    try:
        rates = [float(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--rates '{s}': expected comma-separated numbers in [0, 1]") from None
    if not rates or any(not 0 <= r <= 1 for r in rates):
        raise ConfigError(f"--rates '{s}': expected comma-separated numbers in [0, 1]")
    return rates


def cmd_evaluate_missing(args) -> None:
    from .cli import _cfg, _log, _teachers
    cfg = _cfg(args)
    evaluate_missing(cfg, args.run, _parse_rates(args.rates), args.mask_seed, _teachers(args.teacher), args.out, log=_log)
    _log(f"[g2d] wrote {args.out or Path(args.run) / 'missing.json'}")


def add_parser(sub, add_common) -> None:
    s = sub.add_parser("evaluate-missing", help="evaluate a trained student with modalities missing at test time (Table 11)")
    add_common(s)
    s.add_argument("--run", required=True, help="student run directory (metrics.json, ckpt/best.pt)")
    s.add_argument("--teacher", action="append", default=[], metavar="MOD=DIR",
                   help="the teacher dirs the run was trained with (its checkpoint hash includes them)")
    s.add_argument("--rates", default="0,0.1,0.2,0.3,0.4,0.5,0.6", help="comma-separated missing rates in [0, 1]")
    s.add_argument("--mask-seed", type=int, default=0, help="seed of the masks (identical masks for every run)")
    s.add_argument("--out", default=None, help="output JSON (default RUN/missing.json)")
    s.set_defaults(func=cmd_evaluate_missing)
