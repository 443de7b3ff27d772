"""Fixtures of the fault-injection tests: a tiny world, a zygote that forks ``vwbench`` runs, and
the reference numbers of uninterrupted runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.tiny_world import build_tiny_tasks

HERE = Path(__file__).resolve().parent
STEPS = 6  # checkpointed after every step (vwbench checkpoints ten times per run, at most once a step)
QUIET_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "COLUMNS": "200"}


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a process a fault test starts (the zygote, a ``vwbench`` run from the
    shell): quiet threads, no inherited fault, and first on its path the very ``vwbench`` this test
    process imported. Without that a checkout's tests run with ``PYTHONPATH=<checkout>/benchmark``
    while the virtualenv's editable install points at another checkout: children importing that
    one run other code (a reference from other code, a git commit of another checkout in the
    result) than the runs they are compared with."""
    import vwbench

    package_root = str(Path(vwbench.__file__).resolve().parents[1])
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = {**os.environ, **QUIET_ENV, **extra, "PYTHONPATH": os.pathsep.join([package_root, str(HERE.parents[1]), *inherited])}
    env.pop("VWBENCH_FAULT", None)
    return env


@dataclass
class Outcome:
    rc: int
    log: str
    wall: float = 0.0


class Zygote:
    """Forks one ``vwbench`` child per call from a process that has imported everything."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.count = 0
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "zygote.py")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=child_env(), cwd=str(logs),
        )

    def run(self, args: list[str], *, fault: str | None = None, kill_after: float | None = None) -> Outcome:
        self.count += 1
        log = self.logs / f"run{self.count:03d}.log"
        env = {"VWBENCH_FAULT": fault} if fault else {}
        answer = self._ask({"args": args, "env": env, "log": str(log), "kill_after": kill_after})
        return Outcome(answer["rc"], log.read_text(), answer["wall"])

    def run_parallel(self, runs: list[tuple[list[str], str | None]]) -> list[Outcome]:
        """Start several children at once (``(args, fault)`` each) and wait for all."""
        requests, logs = [], []
        for args, fault in runs:
            self.count += 1
            logs.append(self.logs / f"run{self.count:03d}.log")
            requests.append({"args": args, "env": {"VWBENCH_FAULT": fault} if fault else {}, "log": str(logs[-1])})
        answer = self._ask({"parallel": requests})
        return [Outcome(rc, log.read_text(), answer["wall"]) for rc, log in zip(answer["rcs"], logs)]

    def vwbench_file(self) -> str:
        """The ``vwbench/__init__.py`` the zygote (so every child it forks) imported."""
        return self._ask({"where": True})["vwbench"]

    def _ask(self, request: dict) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline()
        if not reply:
            raise RuntimeError(f"the zygote died (exit {self.proc.wait()})")
        return json.loads(reply)

    def close(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except BrokenPipeError:
            pass  # the zygote already died; the test that met it has reported why
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session")
def fault_tasks(tmp_path_factory, vocab_dir) -> Path:
    return build_tiny_tasks(tmp_path_factory.mktemp("fault-world"), vocab_dir, steps=STEPS, trials=2)


@pytest.fixture(scope="session")
def zygote(tmp_path_factory):
    z = Zygote(tmp_path_factory.mktemp("zygote-logs"))
    yield z
    z.close()


def run_args(tasks: Path, out: Path, task: str = "clip->clip", *extra: str) -> list[str]:
    return ["run", "--task", task, "--dataset", "synth-tiny", "--tasks-dir", str(tasks), "--out", str(out), "--device", "cpu", "--threads", "1", *extra]


def result_numbers(path: Path) -> dict:
    """A result file's content without what legitimately differs between runs: timings, the
    creation time and the (out-folder dependent) words path."""
    payload = json.loads(path.read_text())
    prov = payload.pop("provenance")
    for volatile in ("wall_time_s", "created", "words_file"):
        prov.pop(volatile)
    payload["provenance"] = prov
    return payload


@dataclass
class Reference:
    numbers: dict
    words: bytes  # the trained words' tensor bytes
    result_name: str
    words_name: str
    wall: float  # seconds the uninterrupted run took (forked, imports done)


def words_bytes(path: Path) -> bytes:
    from safetensors.torch import load_file

    return load_file(str(path))["vectors"].numpy().tobytes()


def single(out: Path, pattern: str) -> Path:
    found = sorted(p for p in out.rglob(pattern) if not p.name.startswith("."))
    assert len(found) == 1, f"expected one {pattern} under {out}, found {found}"
    return found[0]


@pytest.fixture(scope="session")
def references(zygote, fault_tasks, tmp_path_factory) -> dict[str, Reference]:
    """Uninterrupted runs of the pairs the crash tests use."""
    refs = {}
    for task in ("clip->clip", "owlv2->clip"):
        out = tmp_path_factory.mktemp("reference")
        outcome = zygote.run(run_args(fault_tasks, out, task))
        assert outcome.rc == 0, outcome.log
        result, words = single(out / "results", "*.json"), single(out / "words", "*.safetensors")
        refs[task] = Reference(
            result_numbers(result), words_bytes(words), result.relative_to(out).as_posix(), words.relative_to(out).as_posix(), outcome.wall
        )
    return refs
