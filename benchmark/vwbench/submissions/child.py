"""The process a transfer-method submission runs in (started by :mod:`vwbench.submissions.sandbox`).

Run as a script, ``python -I -B child.py WORKDIR``; it imports only the standard library, numpy
and safetensors itself (and looks up, without importing it, where vwbench lives). Before the
submission's code is imported it installs an audit hook that refuses sockets, new processes and
file access outside the Python installation, vwbench's package and ``WORKDIR``:
a second layer behind the kernel's network namespace, and the only one where ``unshare`` is not
permitted. (An audit hook can be bypassed by native code, e.g. via ctypes; the time, memory and
output limits are enforced by the kernel and cannot.)

Protocol, all under ``WORKDIR``: ``in/request.json`` (entry file, class, tokens, init words),
``in/arrays.safetensors`` (``source [n, ds]``, ``target [n, dt]``, ``vectors [m, ds]``, float32);
the child writes ``out/mapped.safetensors`` (``mapped [m, dt]``) and ``out/describe.json``, or
``out/error.json`` (``{"stage", "error"}``) and exits 3.
"""

import importlib.util
import inspect
import json
import os
import sys

EXIT_SUBMISSION_ERROR = 3
_BLOCKED_PREFIXES = ("socket.", "subprocess.", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.system", "pty.", "webbrowser.", "urllib.")


def _roots(workdir):
    read = {os.path.realpath(p) for p in sys.path if p and os.path.isdir(p)}
    # vwbench itself, which submissions may import: an editable install whose package folders are
    # mapped by a finder (pyproject's package-dir) is not under any sys.path entry
    spec = importlib.util.find_spec("vwbench")
    read |= {os.path.realpath(p) for p in ((spec.submodule_search_locations or []) if spec else []) if os.path.isdir(p)}
    read |= {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.__file__))}
    read |= {"/proc/self", os.path.realpath("/proc/self"), "/proc/cpuinfo", "/proc/meminfo", "/sys/devices/system/cpu", "/dev/null", "/dev/urandom", "/etc/localtime", "/usr/share/zoneinfo"}
    return tuple(sorted(read)), os.path.realpath(workdir)


def install_guard(workdir):
    """Refuse sockets, processes and opens outside the allowed roots from here on."""
    read_roots, work = _roots(workdir)

    def inside(path, roots):
        return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)

    def hook(event, args):
        if event.startswith(_BLOCKED_PREFIXES):
            raise PermissionError(f"vwbench sandbox: {event} is not allowed in a transfer method")
        if event == "open":
            target, mode, flags = (list(args) + [None, None])[:3]
            if isinstance(target, int) or target is None:
                return
            path = os.path.realpath(os.fsdecode(target))
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            if inside(path, (work,)):
                return
            if not writing and inside(path, read_roots):
                return
            raise PermissionError(f"vwbench sandbox: opening {path} is not allowed in a transfer method (only its working directory)")

    sys.addaudithook(hook)


def _fail(workdir, stage, exc):
    message = f"{type(exc).__name__}: {exc}"[:2000]
    with open(os.path.join(workdir, "out", "error.json"), "w") as f:
        json.dump({"stage": stage, "error": message}, f)
    sys.exit(EXIT_SUBMISSION_ERROR)


def main(workdir):
    import importlib.util

    import numpy as np
    from safetensors.numpy import load_file, save_file

    with open(os.path.join(workdir, "in", "request.json")) as f:
        request = json.load(f)
    arrays = load_file(os.path.join(workdir, "in", "arrays.safetensors"))
    os.chdir(os.path.join(workdir, "run"))
    install_guard(workdir)

    stage = "import"
    try:
        spec = importlib.util.spec_from_file_location("vwbench_submission", request["entry"])
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        cls = getattr(module, request["class"], None)
        if cls is None:
            raise AttributeError(f"{os.path.basename(request['entry'])} defines no class {request['class']!r}")
        method = cls()
        stage = "fit"
        method.fit(arrays["source"], arrays["target"], list(request["tokens"]))
        stage = "map"
        if getattr(method, "uses_init_words", False):
            _check_takes(method.map, 2, "uses_init_words = True, so map is called as map(vectors, init_words)")
            mapped = method.map(arrays["vectors"], list(request["init_words"]))
        else:
            mapped = method.map(arrays["vectors"])
        if mapped is None:
            raise TypeError("map() returned None; return an array of shape [n, d_target]")
        mapped = np.ascontiguousarray(np.asarray(mapped, dtype=np.float32))
        stage = "describe"
        describe = method.describe() if callable(getattr(method, "describe", None)) else {}
        describe = json.loads(json.dumps(describe, default=str))
    except SystemExit:
        raise
    except BaseException as exc:  # the submission's failure, reported as such
        _fail(workdir, stage, exc)
    save_file({"mapped": mapped}, os.path.join(workdir, "out", "mapped.safetensors"))
    with open(os.path.join(workdir, "out", "describe.json"), "w") as f:
        json.dump(describe if isinstance(describe, dict) else {"describe": describe}, f)


def _check_takes(function, n_args: int, how: str) -> None:
    """A TypeError naming the expected call where ``function`` cannot take ``n_args`` positional
    arguments (Python's own says only "takes 2 positional arguments but 3 were given")."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin or C function: let the call itself fail
        return
    try:
        signature.bind(*([None] * n_args))
    except TypeError:
        raise TypeError(f"{how}, but it is {getattr(function, '__name__', 'map')}{signature}") from None


if __name__ == "__main__":
    main(sys.argv[1])
