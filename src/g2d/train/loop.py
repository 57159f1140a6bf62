"""The epoch loop shared by teacher and student training.

Every epoch: reseed from (seed, epoch), train, StepLR step, validate, append a history row,
save ``ckpt/best.pt`` when the validation metric improves, save ``ckpt/last.pt`` (atomic), rewrite
``history.csv``. A run finds ``ckpt/last.pt`` with the same config hash and resumes after its
epoch; results are identical to an uninterrupted run (CPU, same seed). Model selection uses the
validation split only.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from ..data.prepared import remove_stale_temps
from .common import CKPT_VERSION, atomic_save, epoch_seed, safe_load, write_history
from ..errors import DataError

__all__ = ["FitResult", "fit", "load_best_weights"]


@dataclass
class FitResult:
    history: list[dict]
    best_epoch: int
    best_value: float
    resumed_from: int | None
    stopped_early: bool


def _better(a: float, b: float | None, mode: str) -> bool:
    if b is None or (isinstance(b, float) and math.isnan(b)):
        return not math.isnan(a)
    return a > b if mode == "max" else a < b


def fit(*, model: torch.nn.Module, optimizer: torch.optim.Optimizer, lr_scheduler, out_dir: Path,
        epochs: int, seed: int, config_hash: str, train_epoch: Callable[[int], dict],
        validate: Callable[[int], dict], select: str, mode: str = "max", patience: int = 0,
        desc: str = "train", log=print) -> FitResult:
    out_dir = Path(out_dir)
    ck_dir = out_dir / "ckpt"
    last_p, best_p = ck_dir / "last.pt", ck_dir / "best.pt"
    for p in (last_p, best_p):  # temp files of a run killed mid-write (never read; see atomic_save)
        remove_stale_temps(ck_dir, f".{p.name}.tmp-")
    history: list[dict] = []
    best_epoch, best_value, start, stopped, resumed = -1, None, 0, False, None
    if last_p.exists():
        try:
            ck = safe_load(last_p, "g2d.checkpoint")
        except DataError as exc:
            log(f"[g2d] ignoring unreadable checkpoint ({exc}); starting fresh")
            ck = None
        if ck is not None and ck.get("config_hash") != config_hash:
            log(f"[g2d] {last_p}: config changed since this checkpoint (hash {ck.get('config_hash')} != {config_hash}); starting fresh")
            ck = None
        if ck is not None:
            model.load_state_dict(ck["model"])
            optimizer.load_state_dict(ck["optimizer"])
            lr_scheduler.load_state_dict(ck["lr_scheduler"])
            history = json.loads(ck["history"])
            best_epoch, best_value = ck["best_epoch"], ck["best_value"]
            stopped = bool(ck["stopped"])
            start = ck["epoch"] + 1
            resumed = ck["epoch"]
            log(f"[g2d] resuming {desc} from {last_p} after epoch {ck['epoch']}")
    bar = tqdm(range(start, epochs), desc=desc, unit="epoch", initial=start, total=epochs,
               disable=None, file=sys.stderr, dynamic_ncols=True)
    for epoch in bar:
        if stopped:
            break
        torch.manual_seed(epoch_seed(seed, epoch))
        t0 = time.perf_counter()
        model.train()
        tr = train_epoch(epoch)
        lr = optimizer.param_groups[0]["lr"]
        lr_scheduler.step()
        model.eval()
        with torch.no_grad():
            va = validate(epoch)
        row = {"epoch": epoch, "lr": lr, **{f"train_{k}": v for k, v in tr.items()}, **va,
               "epoch_time_s": round(time.perf_counter() - t0, 4)}
        history.append(row)
        value = float(va[select])
        if _better(value, best_value, mode):
            best_epoch, best_value = epoch, value
            atomic_save({"schema": "g2d.weights", "version": CKPT_VERSION, "config_hash": config_hash,
                         "epoch": epoch, "model": model.state_dict()}, best_p)
        if patience and epoch - best_epoch >= patience:
            stopped = True
            log(f"[g2d] early stop at epoch {epoch}: no {select} improvement for {patience} epochs")
        atomic_save({"schema": "g2d.checkpoint", "version": CKPT_VERSION, "config_hash": config_hash,
                     "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "lr_scheduler": lr_scheduler.state_dict(), "history": json.dumps(history),
                     "best_epoch": best_epoch, "best_value": best_value, "stopped": stopped}, last_p)
        write_history(out_dir / "history.csv", history)
        bar.set_postfix({k: f"{v:.3f}" for k, v in (("loss", tr.get("loss")), (select, value)) if v is not None})
        if bar.disable:  # not a terminal (e.g. a Snakemake log): one line per epoch instead of a bar
            log(f"[{desc}] epoch {epoch + 1}/{epochs} loss {tr.get('loss', float('nan')):.4f} {select} {value:.4f} "
                f"({row['epoch_time_s']:.1f}s)")
    bar.close()
    if history:
        write_history(out_dir / "history.csv", history)
    return FitResult(history, best_epoch, best_value if best_value is not None else float("nan"), resumed, stopped)


def load_best_weights(model: torch.nn.Module, out_dir: Path, config_hash: str) -> int:
    ck = safe_load(Path(out_dir) / "ckpt" / "best.pt", "g2d.weights")
    if ck["config_hash"] != config_hash:
        raise DataError(f"{out_dir}/ckpt/best.pt: written by another config (hash {ck['config_hash']})")
    model.load_state_dict(ck["model"])
    return int(ck["epoch"])
