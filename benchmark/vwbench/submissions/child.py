"""The process a transfer-method submission runs in (started by :mod:`vwbench.submissions.sandbox`).

Run as a script, ``python -I -B child.py WORKDIR``; it imports only the standard library, numpy
and safetensors itself (and looks up, without importing it, where vwbench lives). Before the
submission's code is imported it installs an audit hook that refuses sockets, new processes,
signals to other processes, and file access outside the Python installation, vwbench's package
and ``WORKDIR`` (details in :func:`install_guard`).

The hook is defence in depth, **not a security boundary**: it runs inside the process it watches,
so the submission's own Python can rewrite its state (module globals, ``os.path.realpath``, the
closure cells of the hook found through ``gc``) and native code (ctypes, a compiled extension)
never raises audit events at all. Where the kernel permits it, the boundary is the sandbox's
namespaces (a read-only filesystem but for the work folder, no network, its own process tree);
where it does not, the hook and the kernel's resource limits are all there is, and vwbench warns
that only trusted submissions should be run.

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
_BLOCKED_PREFIXES = ("socket.", "subprocess.", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.system", "os.forkpty", "pty.",
                     "webbrowser.", "urllib.", "os.chown", "os.lchown", "os.link", "os.symlink", "os.setxattr", "os.removexattr",
                     "os.chflags", "os.lchflags", "sqlite3.", "signal.pthread_kill", "os.putenv", "os.unsetenv")
# events whose path arguments must lie in the working directory (and that take no dir_fd)
_PATHS_AND_DIR_FDS = {  # the (path, dir_fd) pairs in each event's arguments (CPython passes -1 for no dir_fd)
    "os.remove": lambda a: [(a[0], a[1])], "os.rmdir": lambda a: [(a[0], a[1])], "os.rename": lambda a: [(a[0], a[2]), (a[1], a[3])],
    "os.mkdir": lambda a: [(a[0], a[2])], "os.chmod": lambda a: [(a[0], a[2])], "os.utime": lambda a: [(a[0], a[3])],
    "os.truncate": lambda a: [(a[0], None)],
}
_WORK_ONLY = tuple(_PATHS_AND_DIR_FDS)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND | getattr(os, "O_TMPFILE", 0)
# what numpy, torch and Python itself read outside the installation (not /proc/self: through it,
# /proc/self/root and /proc/self/cwd lead anywhere)
_SYSTEM_READS = ("/proc/cpuinfo", "/proc/meminfo", "/sys/devices/system/cpu", "/dev/null", "/dev/urandom", "/etc/localtime",
                 "/usr/share/zoneinfo", "/etc/ld.so.cache")


def _roots(workdir):
    read = {os.path.realpath(p) for p in sys.path if p and os.path.isdir(p)}
    # vwbench itself, which submissions may import: an editable install whose package folders are
    # mapped by a finder (pyproject's package-dir) is not under any sys.path entry
    spec = importlib.util.find_spec("vwbench")
    read |= {os.path.realpath(p) for p in ((spec.submodule_search_locations or []) if spec else []) if os.path.isdir(p)}
    read |= {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.__file__))}
    read |= set(_SYSTEM_READS) | {os.path.realpath("/proc/self/net/dev")}  # the interfaces it sees: loopback only, in a namespace
    return tuple(sorted(read)), os.path.realpath(workdir)


def _refuse(what):
    raise PermissionError(f"vwbench sandbox: {what} is not allowed in a transfer method")


def install_guard(workdir):
    """Refuse, from here on (each refusal is a ``PermissionError`` naming what was refused):

    * sockets, subprocesses, ``os.fork``/``exec``/``spawn``/``system``, multiprocessing's process
      starts (``_posixsubprocess.fork_exec`` is replaced and may not be imported again), signals
      to any process but itself, sqlite3 (which opens files without an audit event);
    * ``open``/``os.open`` that writes (any write, create, truncate, append or tmpfile flag) outside
      the working directory, reads outside it and the read roots, opens a directory outside it, or
      (``os.open``) takes a relative path other than a plain name, since its ``dir_fd`` is not in
      the audit event (a directory fd can only be opened inside the working directory);
    * remove, rename, mkdir, rmdir, chmod, utime, truncate, chdir outside the working directory
      (with a ``dir_fd``: only a plain name); links, symlinks, chown and extended attributes anywhere;
    * listing a directory outside the working directory and the read roots;
    * ``ctypes.dlopen`` of anything but a library file inside the read roots (so torch still loads).

    Not a boundary: see the module docstring (the submission can disable this hook).
    """
    read_roots, work = _roots(workdir)
    import _posixsubprocess

    def no_fork_exec(*args, **kwargs):
        _refuse("starting a process")

    _posixsubprocess.fork_exec = no_fork_exec  # multiprocessing's spawn starts its interpreter through this, unaudited

    def inside(path, roots):
        return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)

    def real(target):
        return os.path.realpath(os.fsdecode(target))

    def in_work(target):
        return isinstance(target, (str, bytes, os.PathLike)) and inside(real(target), (work,))

    def plain(name):  # one entry of a directory: relative to a directory fd (only ones inside the work folder can be opened) or the cwd
        name = os.fsdecode(name) if isinstance(name, (str, bytes)) else ""
        return bool(name) and "/" not in name and name not in (".", "..")

    def hook(event, args):
        if event.startswith(_BLOCKED_PREFIXES):
            _refuse(event)
        if event == "open":
            target, mode, flags = (list(args) + [None, None])[:3]
            if isinstance(target, int) or target is None:
                return
            if mode is None and not os.path.isabs(os.fsdecode(target)):
                if plain(target):
                    return  # os.open(name, dir_fd=...) as shutil.rmtree does: the directory fd was checked when it was opened
                _refuse(f"os.open of the relative path {os.fsdecode(target)!r} (its dir_fd cannot be checked)")
            path = real(target)
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & _WRITE_FLAGS)
            if inside(path, (work,)):
                return
            if isinstance(flags, int) and flags & os.O_DIRECTORY or os.path.isdir(path):
                _refuse(f"opening the directory {path}")
            if not writing and inside(path, read_roots):
                return
            _refuse(f"opening {path} (only its working directory)")
        elif event in _WORK_ONLY:
            pairs = _PATHS_AND_DIR_FDS[event](args)
            for path, dir_fd in pairs:
                if isinstance(path, int) and event in ("os.truncate", "os.chmod", "os.utime"):
                    continue  # an open file descriptor: its open was checked
                ok = plain(path) if dir_fd not in (None, -1, -100) else in_work(path)
                if not ok:
                    _refuse(f"{event} outside its working directory")
        elif event == "os.chdir":
            if not (isinstance(args[0], int) or in_work(args[0])):
                _refuse("os.chdir outside its working directory")
        elif event in ("os.listdir", "os.scandir"):
            target = args[0] if args else None
            if target is None or isinstance(target, int):
                return
            path = real(target)
            if not (inside(path, (work,)) or inside(path, read_roots)):
                _refuse(f"listing {path}")
        elif event in ("os.kill", "os.killpg"):
            if not (event == "os.kill" and args[0] == os.getpid()):
                _refuse(f"{event} (signals to other processes)")
        elif event == "ctypes.dlopen":
            name = args[0] if args else None
            if not (isinstance(name, (str, bytes)) and os.path.isabs(os.fsdecode(name)) and inside(real(name), read_roots)):
                _refuse(f"ctypes.dlopen({name!r})")
        elif event == "import" and args and args[0] == "_posixsubprocess":
            _refuse("importing _posixsubprocess")

    sys.addaudithook(hook)


def _fail(workdir, stage, exc):
    try:
        message = f"{type(exc).__name__}: {exc}"[:2000]
    except BaseException:  # an exception whose str() itself raises
        message = type(exc).__name__[:200]
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
        mapped = np.asarray(mapped)
        if mapped.dtype.kind != "f":  # a cast would turn bools into 0/1 and ints into huge values, silently
            raise TypeError(f"map() returned values of dtype {mapped.dtype}; return floating-point vectors (float32: .astype(np.float32))")
        mapped = np.ascontiguousarray(mapped, dtype=np.float32)
        stage = "describe"
        describe = method.describe() if callable(getattr(method, "describe", None)) else {}
        describe = _as_json(describe)
    except SystemExit:
        raise
    except BaseException as exc:  # the submission's failure, reported as such
        _fail(workdir, stage, exc)
    save_file({"mapped": mapped}, os.path.join(workdir, "out", "mapped.safetensors"))
    with open(os.path.join(workdir, "out", "describe.json"), "w") as f:
        json.dump(describe if isinstance(describe, dict) else {"describe": describe}, f)


def _as_json(describe):
    """``describe()``'s value as JSON data (numpy scalars become numbers); a TypeError naming the
    key whose value is not JSON (it would otherwise be stored as its repr, an array's cut short)."""
    import numpy as np

    def scalar(value):
        item = value.item() if isinstance(value, np.generic) else value
        if item is not value and isinstance(item, (bool, int, float, str)):
            return item
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")

    def dump(value):
        return json.dumps(value, default=scalar)

    try:
        return json.loads(dump(describe))
    except (TypeError, ValueError) as exc:
        keys = list(describe) if isinstance(describe, dict) else []
        for key in keys:
            try:
                dump(describe[key])
            except (TypeError, ValueError) as inner:
                raise TypeError(f"describe()[{key!r}] is not JSON ({inner}); return a dict of JSON values: "
                                "str, numbers, bools, None, lists and dicts (an array: .tolist())") from None
        raise TypeError(f"describe() did not return JSON data ({exc}); return a dict with str keys and JSON values") from None


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
