"""The ``g2d`` command: one verb per pipeline step, each on one validated config.

Every verb takes ``-c/--config FILE`` (YAML, validated against
workflow/schemas/config.schema.yaml) and any number of ``--set dotted.key=value`` overrides.
A user-fixable problem prints one line ``g2d: <message>`` (naming the file or config key) and
exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import __version__
from .errors import ConfigError, G2DError

VERBS: dict[str, tuple[str, str]] = {}


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _cfg(args) -> dict:
    from .config import load_config
    return load_config(args.config, args.set)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", default=None, help="study config YAML (default: schema defaults)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, value parsed as YAML (repeatable), e.g. --set train.epochs=3")


def _teachers(items: list[str]) -> dict[str, str]:
    out = {}
    for it in items or []:
        if "=" not in it:
            raise ConfigError(f"--teacher '{it}': expected MODALITY=DIR")
        m, d = it.split("=", 1)
        out[m] = d
    return out


# ---- verbs -------------------------------------------------------------------------------------

def cmd_datasets(args) -> None:
    from .data.registry import available_datasets, get_dataset
    rows = []
    for n in available_datasets():
        s = get_dataset(n)
        rows.append({"name": n, "task": s.task, "modalities": list(s.modalities),
                     "classes": len(s.classes) if s.classes else None, "manual": s.manual, "source": s.source,
                     "description": s.description})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        print(f"{r['name']:<14} {r['task']:<15} {'+'.join(r['modalities']):<24} {'manual' if r['manual'] else 'auto':<7} {r['description']}")


def cmd_acquire(args) -> None:
    from .data.pipeline import acquire
    cfg = _cfg(args)
    acquire(cfg, log=_log)


def cmd_prepare(args) -> None:
    from .data.pipeline import prepare
    cfg = _cfg(args)
    out = prepare(cfg, force=args.force, log=_log)
    _log(f"[g2d] prepared dataset at {out}")


def cmd_train_teacher(args) -> None:
    from .train.teacher import train_teacher
    cfg = _cfg(args)
    m = train_teacher(cfg, args.modality, args.seed, args.out, log=_log)
    key = "acc" if "acc" in m else "r2"
    _log(f"[g2d] teacher {args.modality} seed {args.seed}: test {key} {m[key]:.4f} (val {m['val_' + key]:.4f}, best epoch {m['best_epoch']})")


def cmd_cache_teacher(args) -> None:
    from .train.teacher import cache_teacher
    cfg = _cfg(args)
    p = cache_teacher(cfg, args.teacher, args.modality, args.out, log=_log)
    _log(f"[g2d] teacher outputs cached at {p}")


def _check_names(method: str | None = None, fusion: str | None = None) -> None:
    """Unknown --method / --fusion: one line naming the argument, before any data is read."""
    from .methods import available_methods
    from .models.fusion import available_fusions
    for opt, name, known in (("--method", method, available_methods), ("--fusion", fusion, available_fusions)):
        if name is not None and name not in known():
            raise ConfigError(f"{opt}: unknown name '{name}' (known: {', '.join(known())})")


def cmd_train_student(args) -> None:
    from .train.student import train_student
    _check_names(args.method, args.fusion)
    cfg = _cfg(args)
    mods = args.modalities.split(",") if args.modalities else None
    teachers = _teachers(args.teacher)
    if args.study_teachers:  # the study layout's teacher of every modality (g2d.workflow.teacher_dir)
        from .workflow import modalities, teacher_dir
        teachers = {m: teacher_dir(cfg, m, args.seed) for m in (mods or modalities(cfg))} | teachers
    m = train_student(cfg, args.method, args.fusion or cfg["model"]["fusion"], args.seed, teachers,
                      args.out, modalities=mods, log=_log, variant=args.variant)
    key = "acc" if "acc" in m else "r2"
    per = " ".join(f"{k}={m[k]:.3f}" for k in m if k.startswith(f"{key}_"))
    _log(f"[g2d] {args.method}/{m['fusion']} seed {args.seed}: test {key} {m[key]:.4f} {per} (val {m['val_' + key]:.4f})")


def cmd_summarize(args) -> None:
    from .analysis.summary import headline_metrics, summarize
    cfg = _cfg(args)
    if args.study:  # the student runs of the config's study, as the Snakefile lists them
        from .workflow import study_runs
        args.metrics = study_runs(cfg)
    if not args.metrics:
        raise ConfigError("summarize: give --metrics FILE... or --study")
    df = summarize(args.metrics, args.out)
    _log(f"[g2d] wrote {args.out} ({len(df)} rows from {len(args.metrics)} runs)")
    if args.metrics_json:
        headline_metrics(df, args.metrics_json)
        _log(f"[g2d] wrote {args.metrics_json} (headline metrics, means over seeds)")


def cmd_validate(args) -> None:
    cfg = _cfg(args)
    if args.print or args.out:
        import yaml
        text = yaml.safe_dump(cfg, sort_keys=False)
        if args.out:  # the resolved config (defaults filled) that `dvc repro` stages read and track
            from .train.common import write_text_atomic
            write_text_atomic(args.out, text)
            _log(f"[g2d] {args.config or '<defaults>'}: valid; resolved config written to {args.out}")
        if args.print:
            print(text)
    else:
        _log(f"[g2d] {args.config or '<defaults>'}: valid")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="g2d", description="G2D: gradient-guided distillation for multimodal learning — "
                                "library CLI; every pipeline step is one verb on one validated config.")
    p.add_argument("--version", action="version", version=f"g2d {__version__}")
    sub = p.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True

    s = sub.add_parser("datasets", help="list registered datasets")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_datasets)

    s = sub.add_parser("validate", help="validate a config (and print it with defaults filled)")
    _add_common(s)
    s.add_argument("--print", action="store_true", help="print the validated config with defaults")
    s.add_argument("--out", default=None, help="also write the validated config with defaults to this file (atomic)")
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser("acquire", help="download / generate / check the raw files of the configured dataset")
    _add_common(s)
    s.set_defaults(func=cmd_acquire)

    s = sub.add_parser("prepare", help="acquire (if needed) and preprocess the dataset once into prepared arrays")
    _add_common(s)
    s.add_argument("--force", action="store_true", help="rebuild even if an up-to-date prepared dataset exists")
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("train-teacher", help="train one unimodal teacher (selection on validation)")
    _add_common(s)
    s.add_argument("--modality", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, help="run directory (teacher.pt, metrics.json, history.csv)")
    s.set_defaults(func=cmd_train_teacher)

    s = sub.add_parser("cache-teacher", help="run a trained teacher once over every split and cache logits + features")
    _add_common(s)
    s.add_argument("--teacher", required=True, help="teacher run directory")
    s.add_argument("--modality", required=True)
    s.add_argument("--out", default=None, help="cache file (default TEACHER/cache.pt)")
    s.set_defaults(func=cmd_cache_teacher)

    s = sub.add_parser("train-student", help="train the multimodal student with a named method")
    _add_common(s)
    s.add_argument("--method", required=True, help="joint, umt, smp, g2d_loss, g2d, g2d_partial, ogm_ge, mslr, mla, logit_kd")
    s.add_argument("--fusion", default=None, help="fusion module (default model.fusion)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--teacher", action="append", default=[], metavar="MOD=DIR", help="teacher run dir per modality")
    s.add_argument("--study-teachers", action="store_true",
                   help="use the study layout's teacher of every modality for --seed (<results>/<dataset>/teachers/<m>/s<seed>); "
                        "an explicit --teacher wins")
    s.add_argument("--modalities", default=None, help="comma-separated subset of modalities (default all)")
    s.add_argument("--variant", default="main", help="name of the override set this run belongs to (recorded in metrics.json)")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_train_student)

    s = sub.add_parser("summarize", help="collect run metrics.json files into the long-form summary CSV")
    _add_common(s)
    s.add_argument("--metrics", nargs="+", default=[], help="metrics.json files of student runs")
    s.add_argument("--study", action="store_true",
                   help="instead of --metrics: the runs of the config's study (study.methods x fusions x seeds)")
    s.add_argument("--out", required=True)
    s.add_argument("--metrics-json", default=None, metavar="FILE",
                   help="also write headline metrics (means over seeds) as JSON, e.g. for `dvc metrics show`")
    s.set_defaults(func=cmd_summarize)

    _register_extra(sub)
    return p


def _register_extra(sub) -> None:
    """Verbs that live in other modules (report, tables, bench, evaluate): each module exposes
    ``add_parser(subparsers)``; missing optional modules are skipped."""
    import importlib
    for mod in ("g2d.analysis.cli", "g2d.analysis.tables", "g2d.evaluate", "g2d.bench"):
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name == mod:
                continue
            raise
        m.add_parser(sub, _add_common)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    try:
        args.func(args)
    except G2DError as exc:
        print(f"g2d: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("g2d: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # disk full, read-only or missing path, permissions: the file and the reason
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"g2d: {where}{exc.strerror or str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    _log(f"[g2d] {args.verb} done in {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
