"""vwbench from a notebook or script (a library user's walkthrough): training under
`torch.no_grad()`, a float64 default dtype, torch's thread count, settings no training can use,
`~` in paths, messages through the `vwbench` logger, and what a failed run leaves."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from vwbench.errors import UserError
from vwbench.registry import TaskRegistry
from vwbench.runner import RunOptions, compute_setup, run_task
from vwbench.training.trainer import TrainConfig, train_words

from tests.training.fakes import NamedConcepts, QuadraticModel


def _task(tiny_tasks: Path, pair: str = "clip->clip"):
    return TaskRegistry.from_dir(tiny_tasks).get(pair, "synth-tiny")


def test_run_task_trains_inside_no_grad_and_leaves_torch_as_it_found_it(tiny_tasks, tmp_path) -> None:
    threads, dtype = torch.get_num_threads(), torch.get_default_dtype()
    torch.set_num_threads(2)
    torch.set_default_dtype(torch.float64)
    try:
        with torch.no_grad():
            stored = run_task(_task(tiny_tasks), RunOptions(steps=2, trials=1, out_dir=tmp_path / "o", threads=1, device="cpu"))
        assert 0.0 <= stored.result.value <= 1.0 and stored.result.steps == 2
        assert torch.get_num_threads() == 2 and torch.get_default_dtype() == torch.float64
    finally:
        torch.set_default_dtype(dtype)
        torch.set_num_threads(threads)


def test_train_words_under_inference_mode_still_trains() -> None:
    with torch.inference_mode():
        trained = train_words(QuadraticModel(), NamedConcepts("a"), torch.zeros(1, 1, 4), [0], TrainConfig(steps=5, lr=0.1))
    assert trained.vectors.requires_grad is False and (trained.vectors > 0.3).all()
    assert trained.loss_curve[0] > trained.loss_curve[-1]


def test_run_task_inside_inference_mode_loads_trainable_models(tiny_tasks, tmp_path) -> None:
    """The models were loaded inside the caller's inference mode, so their weights could not pass
    a gradient ("Inference tensors cannot be saved for backward")."""
    with torch.inference_mode():
        stored = run_task(_task(tiny_tasks), RunOptions(steps=2, trials=1, out_dir=tmp_path / "o", threads=1, device="cpu"))
    assert stored.result.steps == 2


def test_delta_training_under_a_float64_default_dtype(tiny_tasks, tmp_path) -> None:
    from vwbench.runner import train_delta_words

    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        train_delta_words(_task(tiny_tasks), [RunOptions(steps=1, trials=1, out_dir=tmp_path / "o", threads=1, device="cpu", delta=0.5)])
        assert torch.get_default_dtype() == torch.float64
    finally:
        torch.set_default_dtype(dtype)
    assert list((tmp_path / "o" / "words").rglob("*.safetensors"))


def test_train_words_names_a_model_loaded_in_inference_mode() -> None:
    class Linear:
        device = torch.device("cpu")

        def __init__(self):
            with torch.inference_mode():
                self.layer = torch.nn.Linear(4, 1)

        def prepare(self, data):
            return None

        def cpu_words_per_pass(self, batch_size):
            return None

        def loss(self, vectors, word_concepts, prepared, generators, batch_size):
            return self.layer(vectors).flatten(1).sum(dim=1)

    class Data:
        concepts = ["a"]

    with pytest.raises(ValueError, match=r"^the model was loaded inside torch.inference_mode\(\)"):
        train_words(Linear(), Data(), torch.zeros(1, 1, 4), [0], TrainConfig(steps=2))


@pytest.mark.parametrize(("concepts_attr", "index", "message"), [
    (None, -1, "word concept index -1 is negative"),
    ([], 0, "word concept index 0 is not a concept: the data has none"),
])
def test_train_words_concept_checks_without_a_known_count(concepts_attr, index, message) -> None:
    class Data:
        pass

    data = Data()
    if concepts_attr is not None:
        data.concepts = concepts_attr
    with pytest.raises(ValueError, match=f"^{message}$"):
        train_words(None, data, torch.zeros(1, 1, 4), [index], TrainConfig())  # type: ignore[arg-type]


def test_study_options_and_a_transfer_path_expand_the_home_folder(monkeypatch, tmp_path) -> None:
    from vwbench.studies.runner import StudyOptions

    monkeypatch.setenv("HOME", str(tmp_path))
    assert StudyOptions(out_dir="~/x").out_dir == tmp_path / "x"  # type: ignore[arg-type]
    assert RunOptions(transfer="~/sub/map.safetensors").transfer == str(tmp_path / "sub" / "map.safetensors")
    assert RunOptions(transfer="lstsq").transfer == "lstsq"


@pytest.mark.parametrize(("config", "concepts", "message"), [
    (TrainConfig(steps=-5), [0], "steps must be >= 0, not -5"),
    (TrainConfig(batch_size=0), [0], "batch_size must be >= 1, not 0"),
    (TrainConfig(words_per_pass=0), [0], "words_per_pass must be >= 1"),
    (TrainConfig(), [0, 0], "1 words but 2 word concepts"),
    (TrainConfig(), [3], r"word concept index 3 is not one of the data's 1 concepts \(0..0\)"),
])
def test_train_words_refuses_settings_no_training_can_use(config, concepts, message) -> None:
    class Data:
        concepts = ["a"]

    with pytest.raises(ValueError, match=message):
        train_words(None, Data(), torch.zeros(1, 1, 4), concepts, config)  # type: ignore[arg-type]


@pytest.mark.parametrize("threads", [0, -2])
def test_a_thread_count_below_one_is_a_user_error(threads) -> None:
    with pytest.raises(UserError, match=f"--threads {threads}: give a number of CPU threads of at least 1"):
        compute_setup("cpu", threads)


def test_paths_with_a_tilde_mean_the_home_folder(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    options = RunOptions(out_dir="~/vwruns", data_root=Path("~/data"))  # type: ignore[arg-type]
    assert options.out_dir == tmp_path / "vwruns" and options.data_root == tmp_path / "data"


def test_library_runs_log_what_the_command_line_prints(tiny_tasks, tmp_path, caplog) -> None:
    options = RunOptions(steps=1, trials=1, out_dir=tmp_path / "o", threads=1, device="cpu")
    first = run_task(_task(tiny_tasks), options)
    first.path.write_text(first.path.read_text()[:100])  # a torn result
    with caplog.at_level(logging.INFO, logger="vwbench"):
        run_task(_task(tiny_tasks), options)
    records = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "vwbench"]
    assert any(level == logging.WARNING and text.startswith("ignoring a damaged result") for level, text in records), records
    assert any(level == logging.INFO and text.startswith("reusing trained words") for level, text in records), records


def test_run_task_refuses_training_options_with_embeddings(tiny_tasks, tmp_path) -> None:
    options = RunOptions(embeddings=tmp_path / "words.safetensors", steps=50, out_dir=tmp_path / "o")
    with pytest.raises(UserError, match="^--steps applies to word training; submitted --embeddings are not trained"):
        run_task(_task(tiny_tasks), options)
    assert not (tmp_path / "o").exists()


def test_a_failed_run_leaves_no_folder_it_made(tiny_tasks, tmp_path, monkeypatch) -> None:
    """A run that fails once it holds its result's lock (here: the target does not load) left
    `out/.locks/result-....lock`; the command line removed the folder, the library did not."""
    import vwbench.runner as runner

    real = runner.load_resolved

    def target_fails(family, *args, **kwargs):
        if family == "owlv2":
            raise UserError("the target does not load")
        return real(family, *args, **kwargs)

    monkeypatch.setattr(runner, "load_resolved", target_fails)
    out = tmp_path / "fail_out"
    with pytest.raises(UserError, match="the target does not load"):
        run_task(_task(tiny_tasks, "clip->owlv2"), RunOptions(steps=1, trials=1, out_dir=out, threads=1, device="cpu"))
    assert not out.exists()


def test_a_transfer_object_runs_under_its_name_and_cache_key(tiny_tasks, tmp_path) -> None:
    """`run_task` could not take a method object (a TypeError), and registering one under a
    built-in's name reused its stale results after the code changed."""
    from vwbench.transfer import LeastSquaresTransfer

    class Scaled(LeastSquaresTransfer):
        name = "my-scaled"
        cache_key = "v1"

        def _map(self, vectors):
            return super()._map(vectors) * 0.5

    options = RunOptions(transfer=Scaled(), steps=1, trials=1, out_dir=tmp_path / "o", threads=1, device="cpu")  # type: ignore[arg-type]
    first = run_task(_task(tiny_tasks, "clip->owlv2"), options)
    assert first.result.transfer == "my-scaled" and not first.reused and first.path.name.startswith("my-scaled-")
    assert run_task(_task(tiny_tasks, "clip->owlv2"), options).reused
    Scaled.cache_key = "v2"  # the method changed: computed again, stored beside the first
    again = run_task(_task(tiny_tasks, "clip->owlv2"), options)
    assert not again.reused and again.path != first.path
    assert again.result.transfer_params["method_object"] == {"class": f"{Scaled.__module__}.{Scaled.__qualname__}", "cache_key": "v2"}

    class Doubled(Scaled):  # another class under the same name and key is another result
        def _map(self, vectors):
            return super()._map(vectors) * 4.0

    other = run_task(_task(tiny_tasks, "clip->owlv2"), RunOptions(transfer=Doubled(), steps=1, trials=1, out_dir=tmp_path / "o", threads=1, device="cpu"))  # type: ignore[arg-type]
    assert not other.reused and other.path != again.path


def test_a_leaderboard_leaves_out_a_method_objects_results(tiny_tasks, tmp_path) -> None:
    """Nothing told such a result from a submission's, and the board's check could not re-run it."""
    from vwbench.leaderboard.collect import collect
    from vwbench.transfer import LeastSquaresTransfer

    class Mine(LeastSquaresTransfer):
        name, cache_key = "mine", "v1"

    run_task(_task(tiny_tasks, "clip->owlv2"), RunOptions(transfer=Mine(), steps=1, trials=1, out_dir=tmp_path / "o", threads=1, device="cpu"))  # type: ignore[arg-type]
    run_task(_task(tiny_tasks, "clip->owlv2"), RunOptions(transfer="lstsq", steps=1, trials=1, out_dir=tmp_path / "o", threads=1, device="cpu"))
    collected = collect(tmp_path / "o" / "results")
    assert [e.result.transfer for e in collected.entries] == ["lstsq"]
    assert len(collected.skipped) == 1 and "made by a method object from Python" in collected.skipped[0][1]
    assert f"{Mine.__module__}.{Mine.__qualname__}" in collected.skipped[0][1] and "submit the method as a folder" in collected.skipped[0][1]


@pytest.mark.parametrize(("make", "message"), [
    (lambda: object(), "^transfer object is not a name, a path or a TransferMethod"),
    (lambda: __import__("vwbench.transfer", fromlist=["x"]).get_transfer("lstsq"), "^transfer LeastSquaresTransfer has no cache_key"),
])
def test_a_transfer_object_without_what_results_need_is_refused(make, message, tiny_tasks, tmp_path) -> None:
    options = RunOptions(transfer=make(), steps=1, trials=1, out_dir=tmp_path / "o")  # type: ignore[arg-type]
    with pytest.raises(UserError, match=message):
        run_task(_task(tiny_tasks, "clip->owlv2"), options)
    assert not (tmp_path / "o").exists()


def test_a_run_made_with_a_relative_out_folder_opens_from_anywhere(tiny_tasks, tmp_path, monkeypatch) -> None:
    """The result records `runs/words/...` relative to where the run started; an analysis run from
    another folder said the words were missing."""
    from vwbench.analysis.context import open_run

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    stored = run_task(_task(tiny_tasks), RunOptions(steps=1, trials=1, out_dir=Path("runs"), threads=1, device="cpu"))
    result = (tmp_path / "a" / stored.path).resolve()
    assert not Path(stored.result.provenance.words_file).is_absolute()
    monkeypatch.chdir(tmp_path / "b")
    opened = open_run(result, TaskRegistry.from_dir(tiny_tasks))
    assert opened.words.vectors.shape[0] == len(opened.words.concepts)


def test_a_validation_report_prints_short() -> None:
    from pathlib import Path as P

    from vwbench.submissions.validate import Report

    report = Report(P("words.safetensors"), "embeddings", [], {"vectors": torch.zeros(100, 4, 64), "n_words": 100})
    text = repr(report)
    assert text == "Report(path='words.safetensors', kind='embeddings', ok=True, problems=[], info keys: n_words, vectors)"


def test_loading_clip_leaves_the_root_logger_to_the_caller() -> None:
    from vwbench.submissions import load_model

    root = logging.getLogger()
    saved = root.handlers[:]
    for handler in saved:
        root.removeHandler(handler)
    try:
        load_model("clip", tier="mini")
        assert root.handlers == []  # so that the caller's logging.basicConfig still takes effect
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)


def test_a_transfer_path_object_expands_the_home_folder_too(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert RunOptions(transfer=Path("~/sub/map.safetensors")).transfer == str(tmp_path / "sub" / "map.safetensors")  # type: ignore[arg-type]
