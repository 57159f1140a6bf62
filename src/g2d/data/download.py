"""Verified downloads and checksum manifests.

``fetch(url, dest, sha256=..., size=...)`` downloads over HTTP(S) with :mod:`urllib` into
``<dest>.part``, resumes an interrupted transfer with an HTTP ``Range`` request, retries network
errors with exponential backoff, verifies size and SHA-256 and only then renames the file into
place — a file at ``dest`` is therefore always complete and verified. A file that already exists
and verifies is not downloaded again. A download whose bytes do not match is deleted and fetched
once more from scratch; if it is still wrong a :class:`~g2d.errors.DataError` names the URL and
the file.

Checksum manifests are TSV files with the header ``path  url  sha256  size`` (extra columns are
kept); the package ships them in ``g2d/data/checksums/`` (see :func:`packaged_manifest`).
"""

from __future__ import annotations

import csv
import hashlib
import http.client
import json
import os
import shutil
import socket
import time
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path
from typing import Iterable, Mapping

from ..errors import ConfigError, DataError

__all__ = ["fetch", "sha256_file", "load_manifest", "packaged_manifest", "verify_files", "link_or_copy",
           "gather_files", "USER_AGENT"]

USER_AGENT = "g2d-downloader/1.0 (+https://pypi.org/project/g2d)"
_CHUNK = 1 << 16
#: HTTP statuses worth retrying; any other 4xx is permanent.
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class _Transient(Exception):
    """A network failure that a retry may fix."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def _check(path: Path, sha256: str | None, size: int | None) -> str | None:
    """None when ``path`` matches; otherwise a short reason."""
    n = path.stat().st_size
    if size is not None and n != size:
        return f"size {n} != expected {size}"
    if sha256 is not None:
        got = sha256_file(path)
        if got.lower() != sha256.lower():
            return f"sha256 {got[:12]}… != expected {sha256[:12]}…"
    return None


def _progress_bar(total: int | None, initial: int, desc: str, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=desc, disable=not enabled, leave=False)


def _transfer(url: str, part: Path, size: int | None, timeout: float, progress: bool) -> None:
    """One HTTP attempt: append to ``part`` from its current length (Range) to the end.

    Raises :class:`_Transient` for failures a retry may fix, DataError for permanent ones.
    """
    start = part.stat().st_size if part.exists() else 0
    if size is not None and start > size:  # longer than the real file: cannot be a prefix
        part.unlink()
        start = 0
    if size is not None and start == size:
        return  # already complete; the caller verifies
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if start:
        headers["Range"] = f"bytes={start}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # range not satisfiable: the partial is complete or junk
            if size is None or start != size:
                part.unlink(missing_ok=True)
                raise _Transient(f"HTTP 416 for a resume at byte {start}") from None
            return
        if exc.code in _RETRY_STATUS:
            raise _Transient(f"HTTP {exc.code} {exc.reason}") from None
        raise DataError(f"{url}: HTTP {exc.code} {exc.reason} (cannot download {part.with_suffix('').name})") from None
    except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, http.client.HTTPException, OSError) as exc:
        raise _Transient(str(getattr(exc, "reason", exc))) from None
    with resp:
        status = getattr(resp, "status", 200)
        if start and status == 206:
            cr = resp.headers.get("Content-Range", "")
            # "bytes START-END/TOTAL"
            try:
                got_start = int(cr.split()[1].split("-")[0])
            except (IndexError, ValueError):
                got_start = -1
            if got_start != start:
                part.unlink(missing_ok=True)
                raise _Transient(f"server resumed at {got_start}, asked {start}")
            mode = "ab"
        else:  # 200: the server ignored Range (or no Range sent): start over
            start = 0
            mode = "wb"
        length = resp.headers.get("Content-Length")
        expected = int(length) if length is not None and length.isdigit() else None
        total = start + expected if expected is not None else size
        bar = _progress_bar(total, start, part.name.removesuffix(".part"), progress)
        received = 0
        try:
            with open(part, mode) as f:
                while True:
                    try:
                        b = resp.read(_CHUNK)
                    except (http.client.IncompleteRead, socket.timeout, TimeoutError, ConnectionError, OSError,
                            http.client.HTTPException) as exc:
                        raise _Transient(f"connection lost after {start + received} bytes ({type(exc).__name__})") from None
                    if not b:
                        break
                    f.write(b)
                    received += len(b)
                    if bar is not None:
                        bar.update(len(b))
                f.flush()
                os.fsync(f.fileno())
        finally:
            if bar is not None:
                bar.close()
        if expected is not None and received < expected:
            raise _Transient(f"connection closed after {start + received} of {start + expected} bytes")


def fetch(url: str, dest: str | Path, sha256: str | None = None, size: int | None = None,
          retries: int = 3, timeout: float = 60, progress: bool = True, *, backoff: float = 1.0) -> Path:
    """Download ``url`` to ``dest`` and verify it; return ``dest``.

    - ``dest`` exists and matches ``size``/``sha256`` → returned without network access
      (an existing file with no checksum given is trusted).
    - Bytes go to ``<dest>.part``; a network failure keeps the partial and the next attempt
      resumes it with ``Range: bytes=N-`` (a server answering 200 restarts from zero).
    - Up to ``retries`` attempts per pass, waiting ``backoff * 2**k`` seconds between them.
    - A complete transfer that fails verification is deleted and downloaded again once from
      scratch; a second mismatch raises DataError naming the URL and the file.
    """
    dest = Path(dest)
    part = dest.with_suffix(dest.suffix + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        if _check(dest, sha256, size) is None:
            return dest
        dest.unlink()  # wrong final file: fetch it again
    attempts = max(1, int(retries))
    reason = ""
    for pass_no in range(2):  # second pass only after a verification failure
        last: str = ""
        for k in range(attempts):
            try:
                _transfer(url, part, size, timeout, progress)
                break
            except _Transient as exc:
                last = str(exc)
                if k + 1 < attempts:
                    time.sleep(backoff * (2 ** k))
        else:
            raise DataError(f"{url}: download failed after {attempts} attempts ({last}); partial kept at {part}, "
                            f"re-run to resume or place the file at {dest}")
        reason = _check(part, sha256, size) or ""
        if not reason:
            os.replace(part, dest)
            return dest
        part.unlink(missing_ok=True)
    raise DataError(f"{url}: downloaded file {dest} does not match its checksum ({reason}) after a re-download")


# --------------------------------------------------------------------------------------------
# manifests

_MANIFEST_COLUMNS = ("path", "url", "sha256", "size")


def packaged_manifest(name: str) -> Path:
    """Path of ``g2d/data/checksums/<name>.tsv`` shipped with the package."""
    p = Path(str(resources.files("g2d").joinpath("data", "checksums", f"{name}.tsv")))
    if not p.is_file():
        raise DataError(f"{p}: packaged checksum manifest missing (reinstall g2d)")
    return p


def load_manifest(path: str | Path) -> list[dict]:
    """Read a TSV manifest with columns ``path, url, sha256, size`` (``url`` may be empty).

    Returns one dict per row; ``size`` is an int (or None when empty). Lines starting with ``#``
    are comments.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: checksum manifest not found")
    with open(p, newline="", encoding="utf-8") as f:
        lines = [ln for ln in f if ln.strip() and not ln.startswith("#")]
    reader = csv.DictReader(lines, delimiter="\t")
    cols = reader.fieldnames or []
    for c in ("path", "sha256", "size"):
        if c not in cols:
            raise DataError(f"{p}: manifest lacks column '{c}' (has {', '.join(cols)})")
    rows: list[dict] = []
    for i, row in enumerate(reader, start=2):
        r = {k: (v if v is not None else "") for k, v in row.items()}
        r.setdefault("url", "")
        try:
            r["size"] = int(r["size"]) if r["size"] else None
        except ValueError:
            raise DataError(f"{p}: line {i}: size {r['size']!r} is not an integer") from None
        if r["sha256"] and len(r["sha256"]) != 64:
            raise DataError(f"{p}: line {i}: sha256 must be 64 hex digits")
        rows.append(r)
    return rows


def _stamp_path(root: Path) -> Path:
    return root / ".g2d-verified.json"


def verify_files(manifest_rows: Iterable[Mapping], root: str | Path, check_hash: bool = True,
                 use_stamp: bool = True) -> list[tuple[str, str]]:
    """Check every manifest row against ``root/<path>``; return ``[(path, reason), ...]`` for the
    missing or corrupt ones (empty list = all good).

    ``reason`` is ``"missing"``, ``"size …"`` or ``"sha256 …"``. Hashing thousands of media files
    is slow, so files already verified are remembered in ``root/.g2d-verified.json`` keyed by
    (size, mtime) and not re-hashed while unchanged.
    """
    root = Path(root)
    stamp_file = _stamp_path(root)
    stamp: dict[str, list] = {}
    if use_stamp and stamp_file.is_file():
        try:
            stamp = json.loads(stamp_file.read_text())
        except (json.JSONDecodeError, OSError):
            stamp = {}
    bad: list[tuple[str, str]] = []
    changed = False
    for row in manifest_rows:
        rel = str(row["path"])
        f = root / rel
        if not f.is_file():
            bad.append((rel, "missing"))
            continue
        st = f.stat()
        size = row.get("size")
        if size is not None and st.st_size != size:
            bad.append((rel, f"size {st.st_size} != expected {size}"))
            continue
        sha = row.get("sha256") or None
        if not (check_hash and sha):
            continue
        key = [st.st_size, st.st_mtime_ns, sha]
        if stamp.get(rel) == key:
            continue
        got = sha256_file(f)
        if got != sha:
            bad.append((rel, f"sha256 {got[:12]}… != expected {sha[:12]}…"))
            stamp.pop(rel, None)
            changed = True
            continue
        stamp[rel] = key
        changed = True
    if use_stamp and changed and root.is_dir():
        tmp = stamp_file.with_name(stamp_file.name + ".tmp")
        tmp.write_text(json.dumps(stamp))
        os.replace(tmp, stamp_file)
    return bad


# --------------------------------------------------------------------------------------------
# user-provided raw files (manual / local sources)


def link_or_copy(src: str | Path, dst: str | Path) -> None:
    """Hard-link ``src`` to ``dst`` (no extra disk), else copy; via a temp name + rename."""
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def _missing_message(dataset: str, where: Path, missing: list[str], total: int, hint: str) -> str:
    shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
    return f"{dataset}: {len(missing)} of {total} raw files missing in {where}: {shown}; {hint}"


def gather_files(dataset: str, files: Iterable[str], raw_dir: str | Path, source: str,
                 source_dir: str | Path | None, hint: str, sha256: Mapping[str, str] | None = None) -> None:
    """Acquire step for datasets whose raw files the user provides.

    ``files`` are paths relative to the dataset root. ``source: local`` hard-links/copies them from
    ``source_dir`` into ``raw_dir``; ``manual`` and ``download`` (no public download exists) check
    that they are in ``raw_dir``. Missing files raise one DataError line listing them and where
    they go (``hint`` says how to get them); ``sha256`` (path → hex) is verified when given.
    """
    files = list(files)
    raw = Path(raw_dir)
    if source == "generate":
        raise ConfigError(f"key 'dataset.source': {dataset} cannot be generated (use local or manual)")
    if source not in ("local", "manual", "download"):
        raise ConfigError(f"key 'dataset.source': unknown source {source!r}")
    if source == "local":
        if not source_dir:
            raise ConfigError(f"key 'dataset.source_dir': source: local needs the folder holding the {dataset} files")
        src = Path(source_dir).expanduser()
        absent = [f for f in files if not (src / f).is_file()]
        if absent:
            raise DataError(_missing_message(dataset, src, absent, len(files), hint))
        for f in files:
            d = raw / f
            if not d.is_file() or d.stat().st_size != (src / f).stat().st_size:
                link_or_copy(src / f, d)
    absent = [f for f in files if not (raw / f).is_file()]
    if absent:
        how = hint if source != "download" else f"{hint} ({dataset} has no automatic download)"
        raise DataError(_missing_message(dataset, raw, absent, len(files), how))
    for f, digest in (sha256 or {}).items():
        got = sha256_file(raw / f)
        if got.lower() != digest.lower():
            raise DataError(f"{raw / f}: sha256 {got} does not match the expected {digest}")
