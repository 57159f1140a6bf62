"""``g2d notebook``: execute an analysis notebook with papermill and export it to HTML.

    g2d notebook -c CFG --notebook notebooks/report.ipynb --out results/notebooks/report.ipynb \\
        --html results/notebooks/report.html [--param key=value ...] [--figures-dir DIR]

- Runs in the current directory (the Snakemake working directory), kernel ``python3`` (the
  kernelspec of the environment running ``g2d``; jupyter_client starts it with this interpreter).
- Parameters: ``--param key=value`` (value parsed like papermill's ``-p``: None/null, true/false,
  int, float, a YAML list/dict when it starts with ``[``/``{``, else a string); ``--figures-dir``
  sets ``figures_dir``. With ``-c`` the notebook's ``results`` and ``dataset`` parameters default to
  the config's ``paths.results`` and ``dataset.name``. A key the notebook does not declare in its
  ``parameters`` cell is an error.
- The executed notebook is written atomically to ``--out`` and converted to self-contained HTML
  (images embedded) at ``--html``. If a cell raises, the executed notebook with the traceback is
  saved as ``<out stem>.failed.ipynb`` next to ``--out``, the traceback goes to stderr, and the
  command exits 2 with one line ``g2d: notebook NB failed in cell N: <ErrorName>: <message>``
  (N = the cell's execution count, ``In [N]`` in the saved notebook).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from ..errors import ConfigError, DataError, G2DError

__all__ = ["add_parser", "run_notebook", "parse_param"]

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def parse_param(item: str) -> tuple[str, object]:
    """``key=value`` -> (key, typed value), papermill ``-p`` rules plus YAML lists/dicts."""
    if "=" not in item:
        raise ConfigError(f"--param '{item}': expected KEY=VALUE")
    k, v = item.split("=", 1)
    k = k.strip()
    if not k.isidentifier():
        raise ConfigError(f"--param '{item}': '{k}' is not a valid parameter name")
    low = v.strip().lower()
    if low in ("none", "null", "~"):
        return k, None
    if low in ("true", "false"):
        return k, low == "true"
    for cast in (int, float):
        try:
            return k, cast(v)
        except ValueError:
            pass
    if v.strip()[:1] in ("[", "{"):
        import yaml
        try:
            return k, yaml.safe_load(v)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--param '{item}': invalid list/dict ({str(exc).splitlines()[0]})") from None
    return k, v


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise G2DError(f"{path}: cannot write ({exc.strerror or exc})") from None


def _to_html(nb_path: Path, html: Path) -> None:
    from nbconvert import HTMLExporter
    exporter = HTMLExporter(embed_images=True)
    try:
        body, _ = exporter.from_filename(str(nb_path))
    except Exception as exc:  # nbconvert raises many types; report one line naming the file
        raise G2DError(f"{nb_path}: HTML export failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    _atomic_write(html, body)


def run_notebook(notebook: str | Path, out: str | Path, html: str | Path | None = None,
                 parameters: dict | None = None, kernel: str = "python3", cwd: str | Path | None = None,
                 timeout: int | None = None, log=_log) -> Path:
    """Execute ``notebook`` with papermill into ``out`` (atomically) and export ``html``; see module doc."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    nb, out = Path(notebook), Path(out)
    if not nb.is_file():
        raise DataError(f"{nb}: notebook not found")
    try:
        declared = pm.inspect_notebook(str(nb))
    except Exception as exc:
        raise DataError(f"{nb}: not a readable notebook ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    params = dict(parameters or {})
    unknown = [k for k in params if k not in declared]
    if unknown:
        raise ConfigError(f"{nb}: no parameter {', '.join(repr(k) for k in unknown)} "
                          f"(its parameters cell declares: {', '.join(declared) or 'none'})")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp-{os.getpid()}.ipynb")
    failed = out.with_name(f"{out.stem}.failed.ipynb")
    try:
        pm.execute_notebook(str(nb), str(tmp), parameters=params, kernel_name=kernel,
                            cwd=str(cwd or os.getcwd()), progress_bar=False, log_output=False,
                            execution_timeout=timeout, report_mode=False)
    except PapermillExecutionError as exc:
        if tmp.exists():
            tmp.replace(failed)
            log(f"[g2d] executed notebook with the traceback saved at {failed}")
        for line in exc.traceback or []:
            log(_ANSI.sub("", line))
        msg = (str(exc.evalue).strip().splitlines() or [""])[0]
        cell = exc.exec_count if exc.exec_count is not None else exc.cell_index
        raise G2DError(f"notebook {nb} failed in cell {cell}: {exc.ename}: {msg}") from None
    except Exception as exc:
        if tmp.exists():
            tmp.replace(failed)
        name = type(exc).__name__
        text = (str(exc).strip().splitlines() or [""])[0]
        if name == "NoSuchKernel":
            raise G2DError(f"notebook {nb}: Jupyter kernel '{kernel}' not found; install it with "
                           f"`{sys.executable} -m ipykernel install --sys-prefix --name {kernel}`") from None
        raise G2DError(f"notebook {nb} failed: {name}: {text}") from None
    failed.unlink(missing_ok=True)
    tmp.replace(out)
    log(f"[g2d] executed notebook written to {out}")
    if html:
        _to_html(out, Path(html))
        log(f"[g2d] HTML written to {html}")
    return out


def cmd_notebook(args) -> None:
    from ..config import load_config
    cfg = load_config(args.config, args.set)  # validates the study config the notebook belongs to
    params = dict(parse_param(p) for p in args.param)
    if args.figures_dir is not None:
        params["figures_dir"] = args.figures_dir
    if args.config is not None:
        import papermill as pm
        nb = Path(args.notebook)
        declared = pm.inspect_notebook(str(nb)) if nb.is_file() else {}
        defaults = {"results": cfg["paths"]["results"], "dataset": cfg["dataset"]["name"]}
        for k, v in defaults.items():
            if k in declared and k not in params:
                params[k] = v
    run_notebook(args.notebook, args.out, args.html, params, kernel=args.kernel, timeout=args.timeout)


def add_parser(sub, add_common) -> None:
    s = sub.add_parser("notebook", help="execute an analysis notebook with papermill (and export HTML)",
                       description=__doc__.split("\n\n")[0])
    add_common(s)
    s.add_argument("--notebook", required=True, help="notebook to execute (e.g. notebooks/report.ipynb)")
    s.add_argument("--out", required=True, help="executed notebook (.ipynb), written atomically")
    s.add_argument("--html", default=None, help="HTML export of the executed notebook (images embedded)")
    s.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="notebook parameter (repeatable); value parsed like papermill -p")
    s.add_argument("--figures-dir", default=None, help="where the notebook saves its figures (parameter figures_dir)")
    s.add_argument("--kernel", default="python3", help="Jupyter kernel name (default python3)")
    s.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds (default none)")
    s.set_defaults(func=cmd_notebook)
