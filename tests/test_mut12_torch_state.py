"""Mutation-testing round 12: torch's global state around library entry points. A run, a study,
a delta sweep's training and a sweep job each run with gradients on and float32 as the default
dtype whatever the caller set (a notebook's `torch.no_grad()`, float64), and put the caller's
dtype and thread count back afterwards; `~` in a submitted embeddings path means the home folder."""

from __future__ import annotations

from pathlib import Path

import torch

from vwbench.runner import RunOptions, torch_run_state


def _seen() -> dict:
    return {"grad": torch.is_grad_enabled(), "dtype": torch.get_default_dtype(), "inference": torch.is_inference_mode_enabled()}


def _as_a_notebook_would(call):
    """``call()`` under `torch.no_grad()` with a float64 default dtype; returns what it returned
    and the default dtype right after."""
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        with torch.no_grad():
            value = call()
        return value, torch.get_default_dtype()
    finally:
        torch.set_default_dtype(dtype)


def test_torch_run_state_turns_gradients_on_and_puts_the_callers_state_back() -> None:
    threads = torch.get_num_threads()

    def body():
        with torch_run_state():
            seen = _seen()
            torch.set_num_threads(1 if threads != 1 else 2)  # as a run's --threads does
            return seen

    try:
        seen, after = _as_a_notebook_would(body)
        assert seen == {"grad": True, "dtype": torch.float32, "inference": False}
        assert after == torch.float64 and torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(threads)


def test_a_sweep_job_runs_with_gradients_on_in_float32() -> None:
    from vwbench.executors.base import Job, execute_job

    def job_fn(reporter=None):
        return _seen()

    outcome, after = _as_a_notebook_would(lambda: execute_job(Job("one", job_fn, ())))
    assert outcome.error is None and outcome.value == {"grad": True, "dtype": torch.float32, "inference": False}
    assert after == torch.float64


def test_run_study_runs_with_gradients_on_in_float32(monkeypatch) -> None:
    import vwbench.studies.runner as studies

    monkeypatch.setattr(studies, "_run_study", lambda spec, options, reporter: _seen())
    seen, after = _as_a_notebook_would(lambda: studies.run_study(None, None))  # type: ignore[arg-type]
    assert seen == {"grad": True, "dtype": torch.float32, "inference": False} and after == torch.float64


def test_delta_training_runs_with_gradients_on_in_float32(monkeypatch) -> None:
    import vwbench.runner as runner

    seen: list[dict] = []
    monkeypatch.setattr(runner, "_train_delta_words", lambda task, runs, reporter: seen.append(_seen()))
    _, after = _as_a_notebook_would(lambda: runner.train_delta_words(None, []))  # type: ignore[arg-type]
    assert seen == [{"grad": True, "dtype": torch.float32, "inference": False}] and after == torch.float64


def test_an_embeddings_path_with_a_tilde_means_the_home_folder(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert RunOptions(embeddings="~/words.safetensors").embeddings == tmp_path / "words.safetensors"  # type: ignore[arg-type]
    assert RunOptions(embeddings=Path("words.safetensors")).embeddings == Path("words.safetensors")
