"""``--executor ray``: jobs as Ray tasks on a cluster (``--address``) or a local Ray instance.

Each job reserves ``--threads`` CPUs (1 by default) and, where the cluster has GPUs, one GPU, so a
GPU cluster runs one job per GPU. Workers import vwbench from this checkout (the runtime
environment puts it first on ``PYTHONPATH``; on a multi-node cluster the checkout, the output
folder and the weights must be on a shared file system). Ctrl-C cancels the outstanding tasks.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from vwbench.errors import UserError
from vwbench.executors.base import Executor, ExecutorSettings, Job, JobOutcome, execute_job
from vwbench.interrupts import route_sigterm, sigterm_routed

# environment variables a worker needs to find what the driver finds
_FORWARDED_ENV = ("VWBENCH_WEIGHTS", "VWBENCH_DATA", "VWBENCH_TASKS_DIR", "HF_HOME", "HF_HUB_OFFLINE")
# a local instance's object store only carries job arguments and small outcomes
_LOCAL_OBJECT_STORE_BYTES = 200 * 1024**2


def _import_ray():
    try:
        import ray
    except ImportError as exc:
        raise UserError("--executor ray needs the ray package: pip install 'vwbench[scale]' (or pip install 'ray>=2.9')") from exc
    return ray


def package_root() -> Path:
    """The folder that holds the ``vwbench`` package of this checkout."""
    import vwbench

    return Path(vwbench.__file__).resolve().parents[1]


def worker_env() -> dict[str, str]:
    """Environment variables for Ray workers: this checkout first on ``PYTHONPATH``, and the
    driver's vwbench settings."""
    paths = [str(package_root())] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}
    env.update({k: os.environ[k] for k in _FORWARDED_ENV if os.environ.get(k)})
    return env


def check_address(address: str, timeout: float = 5.0) -> None:
    """Fail fast (ray itself retries for minutes) when a ``HOST:PORT`` or ``ray://HOST:PORT``
    address does not answer; ``auto`` is left to ray."""
    if address == "auto":
        return
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"ray address {address!r} is not HOST:PORT, ray://HOST:PORT or auto; give the head node's address with --address")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UserError(f"cannot reach the Ray cluster at {address} ({reason}); start it there with `ray start --head`, or fix --address") from exc


def _use_token_auth_like_ray_start() -> None:
    """Connect to an explicit address the way ``ray start --address`` joins one: with token
    authentication when this machine has a Ray token and ``RAY_AUTH_MODE`` is unset. (Ray >= 2.5x
    drivers given an address never do this themselves, and a driver without the token a cluster
    wants retries forever.)"""
    try:
        from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available
    except ImportError:  # an older Ray without token authentication
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def _init(ray, **kwargs) -> None:
    """``ray.init(**kwargs)`` with vwbench's SIGTERM route kept while it runs, and what it started
    stopped again when it fails or is interrupted half-way."""
    try:
        with _sigterm_route_kept(ray):
            ray.init(**kwargs)
    except BaseException:
        with suppress(Exception):
            ray.shutdown()
        raise


@contextmanager
def _sigterm_route_kept(ray) -> Iterator[None]:
    """While ``ray.init`` runs, Ray's own Python SIGTERM handler (``sys.exit(15)``: no cleanup
    message, exit code 15) is not put over vwbench's (:func:`vwbench.interrupts.route_sigterm`),
    so a SIGTERM then stops the sweep as Ctrl-C does. Ray installs it through a private helper;
    where that helper is missing (another Ray version) nothing is changed. The handler Ray's core
    worker installs at the end of ``ray.init`` is replaced afterwards (``route_sigterm(force=True)``)."""
    utils = getattr(getattr(ray, "_private", None), "utils", None)
    original = getattr(utils, "set_sigterm_handler", None)
    if original is None or not sigterm_routed():
        yield
        return
    utils.set_sigterm_handler = lambda handler: None
    try:
        yield
    finally:
        utils.set_sigterm_handler = original


class RayExecutor(Executor):
    """Runs jobs as Ray tasks; starts (and stops) a local instance unless given ``--address`` or
    Ray is already initialized in this process."""

    name = "ray"

    def __init__(self, settings: ExecutorSettings) -> None:
        super().__init__(settings)
        ray = self._ray = _import_ray()
        self._cpus = settings.threads or 1
        self._started = False
        self._pending: dict = {}
        if not ray.is_initialized():
            common = {"runtime_env": {"env_vars": worker_env()}, "log_to_driver": False, "logging_level": logging.ERROR}
            if settings.address:
                check_address(settings.address)
                _use_token_auth_like_ray_start()
                try:
                    _init(ray, address=settings.address, **common)
                except (ConnectionError, RuntimeError, ValueError) as exc:
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                    raise UserError(f"cannot connect to the Ray cluster at {settings.address}: {first}; check --address") from exc
            else:
                workers = settings.workers or max(1, (os.cpu_count() or 1) // self._cpus)
                # "local": a new instance even when `ray start` left a cluster (or its address
                # file) on this machine, which ray.init() would otherwise join
                _init(ray, address="local", num_cpus=workers * self._cpus, include_dashboard=False,
                      object_store_memory=_LOCAL_OBJECT_STORE_BYTES, **common)
            self._started = True
            route_sigterm(force=True)  # ray.init replaced vwbench's SIGTERM handler with one that dumps a stack and exits 134
        resources = ray.cluster_resources()
        self.gpus = int(resources.get("GPU", 0))
        self._slots = settings.workers or (self.gpus if self.gpus else max(1, int(resources.get("CPU", 1)) // self._cpus))
        # a GPU job's worker exits after it, so that the models it loaded free the GPU's memory
        self._remote = ray.remote(num_cpus=self._cpus, num_gpus=1 if self.gpus else 0, max_calls=1 if self.gpus else 0)(execute_job)

    @property
    def slots(self) -> int:
        return self._slots

    def describe(self) -> str:
        gpus = f", one GPU per job ({self.gpus} in the cluster)" if self.gpus else ""
        return f"ray executor, {self._slots} worker(s) x {self._cpus} CPU thread(s){gpus}"

    def _execute(self, jobs: list[Job], on_start: Callable[[int], None]) -> Iterator[tuple[int, JobOutcome]]:
        ray = self._ray
        self._pending = {self._remote.remote(job, self._cpus): i for i, job in enumerate(jobs)}
        while self._pending:
            ready, _ = ray.wait(list(self._pending), num_returns=1)
            for ref in ready:
                index = self._pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayTaskError:
                    raise  # a bug inside the job: its remote traceback
                except ray.exceptions.RayError as exc:
                    first = (str(exc).strip().splitlines() or [""])[0][:200]
                    raise UserError(f"{jobs[index].label}: the Ray worker was lost ({type(exc).__name__}: {first}); "
                                    "run the sweep again to resume (what finished is stored)") from exc
                yield index, outcome

    def cancel_outstanding(self) -> None:
        for ref in list(self._pending):
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - a task that just finished cannot be cancelled
                pass
        self._pending = {}

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()
            self._started = False
