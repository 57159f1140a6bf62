"""The real ``g2d`` command with the tests' synthetic datasets registered, for subprocess tests
(fault injection, determinism across processes).

    python tests/_g2d_cli.py VERB [ARGS...]                 # one verb, exactly like `g2d VERB ...`
    python tests/_g2d_cli.py --chain "VERB ARGS" "VERB ARGS"  # several verbs in one process

Datasets: ``synth2`` (modalities a, b; as in conftest) and ``synthbig`` (wide rows, for disk-full
tests). Environment ``G2D_FAULT_SLOW=SECONDS`` slows every write the way a slow disk would, so a
SIGKILL lands in the middle of it: ``torch.save`` (checkpoints, teacher caches) writes its bytes in
4 chunks with sleeps, ``numpy.save`` (prepared labels/ids) sleeps after writing. A line
``[fault] writing <file>`` on stderr announces each slow write.
"""

from __future__ import annotations

import io
import os
import shlex
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import conftest  # noqa: E402  (dataset registration helpers; importing it registers nothing)


def _install_slow_writes(slow: float) -> None:
    import numpy as np
    import torch

    orig_save, orig_np_save = torch.save, np.save

    def slow_save(obj, f, *a, **k):
        if not hasattr(f, "write"):
            return orig_save(obj, f, *a, **k)
        buf = io.BytesIO()
        orig_save(obj, buf, *a, **k)
        data = buf.getvalue()
        print(f"[fault] writing {getattr(f, 'name', '?')}", file=sys.stderr, flush=True)
        n = 4
        for i in range(n):
            f.write(data[i * len(data) // n:(i + 1) * len(data) // n])
            f.flush()
            time.sleep(slow / n)

    def slow_np_save(file, arr, *a, **k):
        print(f"[fault] writing {file}", file=sys.stderr, flush=True)
        orig_np_save(file, arr, *a, **k)
        time.sleep(slow)

    torch.save = slow_save
    np.save = slow_np_save


def main(argv: list[str]) -> int:
    conftest._register_synth("synth2", {"a": 12, "b": 10})
    conftest._register_synth("synthbig", {"a": 3000, "b": 10})
    slow = float(os.environ.get("G2D_FAULT_SLOW", "0") or 0)
    if slow > 0:
        _install_slow_writes(slow)
    from g2d.cli import main as g2d_main
    if argv and argv[0] == "--chain":
        for cmd in argv[1:]:
            rc = g2d_main(shlex.split(cmd))
            if rc:
                return rc
        return 0
    return g2d_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
