"""The verified downloader against a real local HTTP server (Range resume, corruption, retries)."""

from __future__ import annotations

import hashlib
import os

import pytest

from g2d.data.download import fetch, load_manifest, packaged_manifest, sha256_file, verify_files
from g2d.errors import DataError

from _http_fixture import serve_files

PAYLOAD = os.urandom(200_000)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_normal_download_and_no_refetch(tmp_path):
    with serve_files({"a.bin": PAYLOAD}) as srv:
        dest = tmp_path / "sub" / "a.bin"
        out = fetch(srv.url("a.bin"), dest, sha256=SHA, size=len(PAYLOAD), progress=False, backoff=0)
        assert out == dest and dest.read_bytes() == PAYLOAD
        assert not dest.with_suffix(".bin.part").exists()
        assert len(srv.requests_for("a.bin")) == 1
        # already there and verified: no network access
        fetch(srv.url("a.bin"), dest, sha256=SHA, size=len(PAYLOAD), progress=False, backoff=0)
        assert len(srv.requests_for("a.bin")) == 1
    assert sha256_file(dest) == SHA


def test_interrupted_download_resumes_with_range(tmp_path):
    with serve_files({"a.bin": PAYLOAD}) as srv:
        srv.truncate["a.bin"] = 1  # first response: half the body, then the connection closes
        dest = tmp_path / "a.bin"
        fetch(srv.url("a.bin"), dest, sha256=SHA, size=len(PAYLOAD), progress=False, backoff=0)
        assert dest.read_bytes() == PAYLOAD
        log = srv.requests_for("a.bin")
        assert [s for _, _, s in log] == [200, 206]
        assert log[0][1] is None and log[1][1] == f"bytes={len(PAYLOAD) // 2}-"


def test_partial_file_from_earlier_run_is_resumed(tmp_path):
    dest = tmp_path / "a.bin"
    dest.with_suffix(".bin.part").write_bytes(PAYLOAD[:1234])
    with serve_files({"a.bin": PAYLOAD}) as srv:
        fetch(srv.url("a.bin"), dest, sha256=SHA, size=len(PAYLOAD), progress=False, backoff=0)
        assert srv.requests_for("a.bin")[0][1:] == ("bytes=1234-", 206)
    assert dest.read_bytes() == PAYLOAD


def test_corrupted_download_is_redone_once(tmp_path):
    with serve_files({"a.bin": PAYLOAD}) as srv:
        srv.corrupt["a.bin"] = 1  # first transfer has the wrong bytes, the second is right
        dest = tmp_path / "a.bin"
        fetch(srv.url("a.bin"), dest, sha256=SHA, size=len(PAYLOAD), progress=False, backoff=0)
        assert dest.read_bytes() == PAYLOAD
        assert len(srv.requests_for("a.bin")) == 2


def test_persistently_corrupted_download_raises(tmp_path):
    with serve_files({"a.bin": PAYLOAD}) as srv:
        srv.corrupt["a.bin"] = 99
        dest = tmp_path / "a.bin"
        with pytest.raises(DataError) as ei:
            fetch(srv.url("a.bin"), dest, sha256=SHA, size=len(PAYLOAD), progress=False, backoff=0)
        msg = str(ei.value)
        assert srv.url("a.bin") in msg and str(dest) in msg and "\n" not in msg
        assert len(srv.requests_for("a.bin")) == 2
    assert not dest.exists() and not dest.with_suffix(".bin.part").exists()


def test_wrong_existing_file_is_replaced(tmp_path):
    dest = tmp_path / "a.bin"
    dest.write_bytes(b"x" * len(PAYLOAD))
    with serve_files({"a.bin": PAYLOAD}) as srv:
        fetch(srv.url("a.bin"), dest, sha256=SHA, size=len(PAYLOAD), progress=False, backoff=0)
    assert dest.read_bytes() == PAYLOAD


def test_retries_exhausted_and_404(tmp_path):
    with serve_files({"a.bin": PAYLOAD}) as srv:
        srv.truncate["a.bin"] = 99
        with pytest.raises(DataError, match="after 2 attempts"):
            fetch(srv.url("a.bin"), tmp_path / "a.bin", sha256=SHA, retries=2, progress=False, backoff=0)
        assert (tmp_path / "a.bin.part").exists()  # kept for the next resume
        with pytest.raises(DataError, match="HTTP 404"):
            fetch(srv.url("nope.bin"), tmp_path / "nope.bin", progress=False, backoff=0)
        assert len(srv.requests_for("nope.bin")) == 1  # a 404 is not retried


def test_manifest_and_verify(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "ok.bin").write_bytes(PAYLOAD)
    (tmp_path / "d" / "bad.bin").write_bytes(PAYLOAD[::-1])
    m = tmp_path / "m.tsv"
    m.write_text("# comment\npath\turl\tsha256\tsize\n"
                 f"d/ok.bin\thttp://x/ok\t{SHA}\t{len(PAYLOAD)}\n"
                 f"d/bad.bin\t\t{SHA}\t{len(PAYLOAD)}\n"
                 f"d/missing.bin\t\t{SHA}\t{len(PAYLOAD)}\n")
    rows = load_manifest(m)
    assert [r["path"] for r in rows] == ["d/ok.bin", "d/bad.bin", "d/missing.bin"]
    assert rows[0]["size"] == len(PAYLOAD) and rows[0]["url"] == "http://x/ok"
    bad = dict(verify_files(rows, tmp_path))
    assert set(bad) == {"d/bad.bin", "d/missing.bin"} and bad["d/missing.bin"] == "missing"
    assert bad["d/bad.bin"].startswith("sha256")
    # the stamp remembers the verified file; a changed file is re-hashed
    assert dict(verify_files(rows, tmp_path)) == bad
    (tmp_path / "d" / "ok.bin").write_bytes(PAYLOAD[::-1])
    assert "d/ok.bin" in dict(verify_files(rows, tmp_path))


def test_packaged_cremad_manifest():
    rows = load_manifest(packaged_manifest("cremad"))
    assert len(rows) == 1 + 2 * 7442
    assert all(r["url"].startswith("https://") and len(r["sha256"]) == 64 and r["size"] > 0 for r in rows)
    wav = [r for r in rows if r["path"].startswith("AudioWAV/")]
    assert wav[0]["url"] == ("https://media.githubusercontent.com/media/CheyneyComputerScience/CREMA-D/master/"
                             + wav[0]["path"])
