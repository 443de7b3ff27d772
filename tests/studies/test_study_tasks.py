"""The study families in the harness: registry loading and names, bad input, a tiny end-to-end run
of each family on tiny random-config encoders, the result schema round trip, reuse, leaderboard
rendering and `vwbench check` re-runs."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from vwbench.cli import app
from vwbench.errors import UserError
from vwbench.registry.studies import FAMILY_SETTINGS, StudyRegistry, list_studies_table, normalize_study_name
from vwbench.results.schema import read_result

REPO_TASKS = Path(__file__).resolve().parents[2] / "tasks"
TINY_STUDIES = {
    "probe.yaml": {
        "family": "probe", "datasets": ["synth-tiny"],
        "encoders": {"clip": {"model": "clip"}, "owlv2": {"model": "owlv2", "pooling": "mean-regions"}},
        "data": {"train_per_concept": 3, "heldout_per_concept": 2},
        "settings": {"hidden": 16, "epochs": 2, "batch_size": 256, "embed_batch_size": 64},
    },
    "align.yaml": {
        "family": "align", "datasets": ["synth-tiny"],
        "encoders": {"owlv2": {"model": "owlv2", "pooling": "mean-regions"}, "judge": {"model": "judge"}, "clip": {"model": "clip"}},
        "pairs": ["owlv2->clip", "judge->clip"], "transfer": "lstsq",
        "data": {"train_per_concept": 12, "heldout_per_concept": 3},
        "settings": {"probe_steps": 20},
    },
    "sae.yaml": {
        "family": "sae", "datasets": ["synth-tiny"], "encoders": {"clip": {"model": "clip"}},
        "data": {"train_per_concept": 6, "heldout_per_concept": 2, "caption_objects": 2},
        "settings": {"expansion": 1.0, "topk_levels": [2, 4], "l1_levels": [0.03], "steps": 20, "batch_size": 16, "n_seeds": 2, "top_bridges": 3},
    },
}
RUNS = [("probe:clip", []), ("probe:owlv2", []), ("align:owlv2->clip", []), ("align:owlv2->clip", ["--transfer", "ridge"]), ("sae:clip", [])]


@pytest.fixture(scope="module")
def study_tasks(tiny_tasks, tmp_path_factory) -> Path:
    """The tiny tasks folder (tiny clip, judge and owlv2 checkpoints) plus tiny study files."""
    tasks = tmp_path_factory.mktemp("study-tasks") / "tasks"
    shutil.copytree(tiny_tasks, tasks)
    (tasks / "studies").mkdir()
    for name, payload in TINY_STUDIES.items():
        (tasks / "studies" / name).write_text(yaml.safe_dump(payload))
    return tasks


def vw(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def study_runs(study_tasks, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("study-runs") / "runs"
    for task, extra in RUNS:
        res = vw("run", "--task", task, "--dataset", "synth-tiny", "--tasks-dir", str(study_tasks), "--out", str(out), "--device", "cpu", "--threads", "1", *extra)
        assert res.exit_code == 0, (task, res.output, res.exception)
    return out


# ---- registry --------------------------------------------------------------------------------


def test_the_repo_study_files_load_with_both_tiers() -> None:
    registry = StudyRegistry.from_dir(REPO_TASKS)
    rows = list_studies_table(registry)
    assert {r["family"] for r in rows} == {"probe", "align", "sae"} and {r["tier"] for r in rows} == {"mini", "paper"}
    probe = registry.get("Probe : OWLv2", "synth-imagenet")
    assert probe.name == "probe:owlv2" and probe.encoders[0].model.checkpoint.path == "zoo/mini-owlv2" and probe.encoders[0].pooling == "mean-regions"
    assert probe.settings["hidden"] == 2048 and probe.settings["dropout"] == 0.2 and probe.settings["batch_size"] == 1024
    align = registry.get("align:owlv2→clip", "imagenet")
    assert [(e.role, e.model.checkpoint.hf_id) for e in align.encoders] == [("source", "google/owlv2-base-patch16-ensemble"), ("target", "apple/DFN2B-CLIP-ViT-L-14")]
    assert align.data.train_per_concept == 100 and align.transfer == "lstsq"
    sae_mini, sae_paper = registry.get("sae:clip", "synth-coco"), registry.get("sae:clip", "coco")
    assert sae_mini.settings["topk_levels"] == [4, 8, 16] and sae_paper.settings["topk_levels"] == [8, 16, 32, 64]
    assert normalize_study_name(" ALIGN: judge to clip ") == "align:judge->clip"


def test_registry_settings_match_the_compute_modules() -> None:
    """Every typed setting of a study file is a field of the family's settings dataclass (or an
    argument the family passes on), so a renamed field cannot be silently ignored."""
    from vwbench.studies.align import AlignSettings
    from vwbench.studies.families import _PROBE_EXTRA
    from vwbench.studies.probe import ProbeSettings
    from vwbench.studies.sae import SaeSettings

    for family, cls, extra in (("probe", ProbeSettings, set(_PROBE_EXTRA)), ("align", AlignSettings, set()), ("sae", SaeSettings, set())):
        fields = {f.name for f in dataclasses.fields(cls)} | extra
        assert set(FAMILY_SETTINGS[family].model_fields) <= fields, (family, set(FAMILY_SETTINGS[family].model_fields) - fields)


@pytest.mark.parametrize(
    ("task", "dataset", "message"),
    [
        ("prob:clip", "synth-imagenet", "unknown study family 'prob'; did you mean 'probe'?"),
        ("probe:clipp", "synth-imagenet", "unknown probe encoder 'clipp'; did you mean 'clip'?"),
        ("align:clip->owlv2", "synth-imagenet", "unknown align pair 'clip->owlv2'"),
        ("probe:clip", "synth-imagenett", "unknown dataset 'synth-imagenett'; did you mean 'synth-imagenet'"),
        ("sae:clip", "synth-imagenet", "study sae:clip is not defined on dataset synth-imagenet (its datasets: coco, synth-coco, synth-voc, voc)"),
    ],
)
def test_unknown_names_are_one_line_errors(task: str, dataset: str, message: str) -> None:
    with pytest.raises(UserError) as info:
        StudyRegistry.from_dir(REPO_TASKS).get(task, dataset)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_study_file_errors_name_file_and_line(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    shutil.copytree(REPO_TASKS, tasks)
    path = tasks / "studies" / "probe.yaml"
    text = path.read_text()
    path.write_text(text.replace("  dropout: 0.2", "  dropuot: 0.2"))
    with pytest.raises(UserError, match=r"studies/probe.yaml:\d+: unknown field 'dropuot'; did you mean 'dropout'\?"):
        StudyRegistry.from_dir(tasks)
    path.write_text(text.replace("clip: {model: clip}", "clip: {model: clipp}"))
    with pytest.raises(UserError, match=r"probe.yaml:\d+: unknown model of tier mini 'clipp'; did you mean 'clip'"):
        StudyRegistry.from_dir(tasks)
    path.write_text(text.replace("family: probe", "family: probes"))
    with pytest.raises(UserError, match="unknown study family 'probes'; did you mean 'probe'"):
        StudyRegistry.from_dir(tasks)


def test_listing_studies_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from vwbench.registry.studies import StudyRegistry, list_studies_table\n"
        "rows = list_studies_table(StudyRegistry.from_dir())\n"
        "assert len(rows) >= 20, len(rows)\n"
        "bad = [m for m in ('torch', 'vwbench.models', 'transformers', 'open_clip') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "VWBENCH_TASKS_DIR"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr


def test_ls_lists_the_study_tasks(study_tasks) -> None:
    res = vw("ls", "--studies", "--json", "--tasks-dir", str(study_tasks))
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert sorted(r["task"] for r in rows) == ["align:judge->clip", "align:owlv2->clip", "probe:clip", "probe:owlv2", "sae:clip"]
    table = vw("ls", "--tasks-dir", str(study_tasks))
    assert table.exit_code == 0 and "5 study tasks" in table.output


# ---- running ---------------------------------------------------------------------------------


def test_each_family_runs_and_stores_a_schema_result(study_runs) -> None:
    files = sorted((study_runs / "results" / "synth-tiny" / "studies").rglob("*.json"))
    results = {(r.task, r.transfer): r for r in map(read_result, files)}
    assert set(results) == {("probe:clip", "probe"), ("probe:owlv2", "probe"), ("align:owlv2->clip", "lstsq"), ("align:owlv2->clip", "ridge"), ("sae:clip", "sae")}
    probe = results[("probe:clip", "probe")]
    assert probe.metric == "transform_acc_mlp" and 0 <= probe.ci95[0] <= probe.value <= probe.ci95[1] <= 1
    assert {"transform_acc_linear", "group_acc_mlp", "class_acc_multitask", "chance_transform"} <= set(probe.metrics)
    assert len(probe.study.tables["per_transform"]) == 31 and probe.study.settings["hidden"] == 16 and probe.steps == 2
    assert probe.provenance.checkpoints[0].role == "encoder" and probe.provenance.checkpoints[0].sha256
    assert probe.provenance.machine["cpu"] and probe.provenance.machine["torch_threads"] >= 1
    align = results[("align:owlv2->clip", "lstsq")]
    assert align.metric == "zero_shot_acc_mapped" and set(align.per_concept) == {"circle", "square", "triangle"}
    assert [c.role for c in align.provenance.checkpoints] == ["source", "target"] and align.study.pooling == {"source": "mean-regions", "target": "image-embedding"}
    assert align.transfer_params["name"] == "lstsq" and align.transfer_params["n_train"] == 36
    assert -1 <= align.metrics["map_cosine_heldout"] <= 1
    sae = results[("sae:clip", "sae")]
    assert sae.metric == "stability/seed/mean" and sae.n_trials == 2 and sae.steps == 20
    assert {"sweep", "stability", "modality", "bridges", "captions"} <= set(sae.study.tables) and len(sae.study.tables["sweep"]) == 3
    assert all(c["caption"].startswith("a photo of a") for c in sae.study.tables["captions"])
    for path in files:  # round trip: what is stored is what the schema reads back
        assert json.loads(path.read_text()) == read_result(path).model_dump(mode="json")


def test_a_stored_result_is_reused(study_runs, study_tasks) -> None:
    before = {p: p.stat().st_mtime_ns for p in (study_runs / "results").rglob("*.json")}
    res = vw("run", "--task", "align:owlv2->clip", "--dataset", "synth-tiny", "--tasks-dir", str(study_tasks), "--out", str(study_runs), "--device", "cpu")
    assert res.exit_code == 0 and "reusing the stored result" in res.output
    assert {p: p.stat().st_mtime_ns for p in (study_runs / "results").rglob("*.json")} == before
    # stdout is the result's path alone (as for word tasks); the times are said to be the stored run's
    path = Path(res.stdout.strip())
    assert res.stdout == f"{path}\n" and path in before and "align" in path.parts and path.name.startswith("owlv2-to-clip-lstsq-")
    assert "wall time of the stored run (created " in res.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "probe:clip", "--steps", "3"], "--steps sets word training steps; it does not apply to the study task probe:clip"),
        (["--task", "probe:clip", "--steps", "0"], "--steps sets word training steps"),  # 0 is a given value (0 == False)
        (["--task", "probe:clip", "--delta", "0"], "--delta"),
        (["--task", "probe:clip", "--transfer", "ridge"], "--transfer applies to word tasks and to align studies, not to probe:clip"),
        (["--task", "align:judge->clip", "--transfer", "anchor"], "--transfer anchor: it maps each word to its concept's init word, and align maps image features"),
        (["--task", "align:judge->clip", "--transfer", "no/such/method"], "--transfer no/such/method: no such file or folder"),
        (["--task", "align:owlv2->clip", "--transfer", "lstsqq"], "unknown transfer method 'lstsqq'; did you mean 'lstsq'?"),
        (["--task", "probe:clip", "--no-feature-cache"], "--no-feature-cache turns off the word tasks' image-feature cache (studies keep none); it does not apply"),
        (["--task", "probe:clip", "--device", "gpu"], "unknown device 'gpu'; use auto, cpu or cuda"),
    ],
)
def test_bad_run_options_are_user_errors_and_leave_no_out_folder(study_tasks, tmp_path, args, message) -> None:
    out = tmp_path / "out"
    res = vw("run", *args, "--dataset", "synth-tiny", "--tasks-dir", str(study_tasks), "--out", str(out), *([] if "--device" in args else ["--device", "cpu"]))
    assert isinstance(res.exception, UserError), res.output
    assert message in str(res.exception) and "\n" not in str(res.exception)
    assert not out.exists()


def test_align_takes_a_submitted_transfer_method_folder(study_tasks, tmp_path) -> None:
    """The committed studies board checks align with submissions/ref-lstsq: a folder submission
    is a transfer method align fits on image features (only the built-in anchor is refused)."""
    submission = Path(__file__).resolve().parents[2] / "submissions" / "ref-lstsq"
    out = tmp_path / "out"
    res = vw("run", "--task", "align:owlv2->clip", "--dataset", "synth-tiny", "--tasks-dir", str(study_tasks), "--out", str(out), "--device", "cpu", "--transfer", str(submission))
    assert res.exit_code == 0, res.output
    stored = json.loads(Path(res.stdout.strip()).read_text())
    assert stored["transfer"] == "ref-lstsq" and stored["task"] == "align:owlv2->clip"


def test_the_cli_exits_2_with_one_line(study_tasks, tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "vwbench.cli", "run", "--task", "probe:nope", "--dataset", "synth-tiny", "--tasks-dir", str(study_tasks), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == ["error: unknown probe encoder 'nope' (known: clip, owlv2); use probe:clip"]


# ---- leaderboard and check -------------------------------------------------------------------


def test_leaderboard_sections_and_check(study_runs, study_tasks, tmp_path) -> None:
    out = tmp_path / "board"
    specs = ["synth-tiny:probe:clip:probe", "synth-tiny:align:owlv2->clip:lstsq", "synth-tiny:sae:*:sae"]
    res = vw("leaderboard", "--results", str(study_runs / "results"), "--out", str(out), *sum((["--check", s] for s in specs), []), "--tolerance", "0.001")
    assert res.exit_code == 0, res.output
    board = json.loads((out / "leaderboard.json").read_text())
    assert board["datasets"] == {} and set(board["studies"]) == {"probe", "align", "sae"}
    assert f"leaderboard of {len(board['results'])} results over 1 dataset(s)" in res.stdout  # the studies' dataset, not the word tasks' none
    align = board["studies"]["align"]["datasets"]["synth-tiny"]
    assert [r["method"] for r in align["rows"]] == sorted((r["method"] for r in align["rows"]), key=lambda m: -next(x["value"] for x in align["rows"] if x["method"] == m))
    assert align["columns"][0] == "zero_shot_acc_mapped" and all(rid in board["results"] for rid in align["tables"])
    assert {e["study"] for e in board["check"]["entries"]} == {"probe", "align", "sae"}
    probe_tables = board["studies"]["probe"]["datasets"]["synth-tiny"]["tables"]
    for tables in probe_tables.values():  # stored key-sorted, shown in the order the study wrote them
        assert tables["per_transform"]["columns"][:3] == ["transform", "group", "held_out"] and len(tables["per_transform"]["rows"]) == 31
    assert "interval over the held-out images" in board["studies"]["align"]["interval"]
    readme = (out / "README.md").read_text()
    for heading in ("## Study: probe", "## Study: align", "## Study: sae", "### sae on synth-tiny", ": per\\_transform", ": bridges"):
        assert heading in readme
    page = (out / "index.html").read_text()
    assert 'id="study-probe"' in page and "probe:owlv2" in page and page.count("<script>") == 1

    check = vw("check", "--baseline", str(out / "leaderboard.json"), "--tasks-dir", str(study_tasks))
    assert check.exit_code == 0, check.output
    assert "ok: 3 value(s) within tolerance" in check.output
    # each study entry's stages show as they start (CI logs): a line "check i/3: ...: data ..." per entry
    assert sum(": data " in line and line.startswith("check ") for line in check.output.splitlines()) == 3, check.output
    doctored = json.loads((out / "leaderboard.json").read_text())
    doctored["check"]["entries"][0]["value"] += 0.5
    bad = tmp_path / "doctored.json"
    bad.write_text(json.dumps(doctored))
    failed = vw("check", "--baseline", str(bad), "--tasks-dir", str(study_tasks))
    assert failed.exit_code == 1 and "1 of 3 checked values moved beyond their tolerance" in failed.output


@pytest.mark.parametrize(("source", "target"), [("owlv2", "clip"), ("clip", "owlv2")])
def test_align_refuses_a_linear_map_for_its_kind_whatever_its_direction(study_tasks, tmp_path, source, target) -> None:
    """A linear map is refused by align for what it is (it maps vocabularies): a map of the other
    direction is not first sent off to be rebuilt for this one."""
    import torch

    from tests.submissions.helpers import linear_map

    path = linear_map(tmp_path / "map.safetensors", torch.zeros(3, 3), source=source, target=target)
    out = tmp_path / "out"
    res = vw("run", "--task", "align:owlv2->clip", "--dataset", "synth-tiny", "--tasks-dir", str(study_tasks), "--out", str(out), "--device", "cpu", "--transfer", str(path))
    assert isinstance(res.exception, UserError), res.output
    assert str(res.exception) == f"--transfer {path}: a linear-map submission maps one vocabulary to another; align fits its map on image features (give a method name or a transfer-method folder)"
    assert not out.exists()


def test_align_refuses_an_embeddings_file_without_sending_it_to_embeddings(study_tasks, tmp_path) -> None:
    import torch

    from tests.submissions.helpers import embeddings

    path = embeddings(tmp_path / "words.safetensors", {"circle": torch.zeros(1, 3)})
    res = vw("run", "--task", "align:owlv2->clip", "--dataset", "synth-tiny", "--tasks-dir", str(study_tasks), "--out", str(tmp_path / "out"), "--device", "cpu", "--transfer", str(path))
    assert isinstance(res.exception, UserError), res.output
    assert str(res.exception) == f"--transfer {path}: an embeddings file holds trained words, which align does not take; give a method name or a transfer-method folder"
