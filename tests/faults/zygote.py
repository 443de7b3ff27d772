"""A process that imports vwbench and the model libraries once, then forks one child per
``vwbench`` command, so that dozens of crash-and-resume runs cost no import time each.

Each child is a real process running ``vwbench.cli.main``: the fault hook kills it with SIGKILL
exactly as ``kill -9`` would. Protocol: one JSON request per stdin line, ``{"args": [...],
"env": {...}, "log": path, "kill_after": seconds | null}``; one JSON reply per stdout line,
``{"rc": exit code, or -signal when the child was killed, "wall": seconds}``. ``{"parallel":
[request, ...]}`` starts several children at once and answers ``{"rcs": [...], "wall": ...}``.
``{"where": true}`` answers ``{"vwbench": path}``: the ``vwbench/__init__.py`` the children run.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import torch

import vwbench
import vwbench.cli  # noqa: F401  (everything a run imports, loaded before forking)
import vwbench.metrics  # noqa: F401
import vwbench.models.clip  # noqa: F401
import vwbench.models.owlv2  # noqa: F401
import vwbench.pipeline_steps  # noqa: F401
import vwbench.transfer  # noqa: F401

torch.set_num_threads(1)


def _child(request: dict) -> None:
    # like a run started from an interactive shell (a background job inherits an ignored SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.environ.update(request.get("env") or {})
    sys.argv = ["vwbench", *request["args"]]
    code = 0
    try:
        vwbench.cli.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - a traceback is a failure the test reports
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _wait(pid: int, kill_after: float | None) -> int:
    if kill_after is not None:
        end = time.monotonic() + kill_after
        while time.monotonic() < end:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.01)
        else:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
    else:
        _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _start(request: dict) -> int:
    pid = os.fork()
    if pid == 0:
        _child(request)
    return pid


def main() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("where"):  # which vwbench the children run
            print(json.dumps({"vwbench": vwbench.__file__}), flush=True)
            continue
        started = time.monotonic()
        if "parallel" in request:  # several children at once; reply with each exit code
            pids = [_start(r) for r in request["parallel"]]
            rcs = [_wait(pid, None) for pid in pids]
            print(json.dumps({"rcs": rcs, "wall": time.monotonic() - started}), flush=True)
            continue
        rc = _wait(_start(request), request.get("kill_after"))
        print(json.dumps({"rc": rc, "wall": time.monotonic() - started}), flush=True)


if __name__ == "__main__":
    main()
