"""Submitted files that are not what they claim: every malformed safetensors header, a file of
the wrong submission kind given to --transfer, and transfer-method folders with a broken
manifest are explained (one problem each, naming the file and what was expected), never a
traceback. Nothing here runs submitted code."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from tests.submissions.helpers import LSTSQ_BODY, embeddings, linear_map, raw_safetensors, transfer_folder
from vwbench.cli import app
from vwbench.errors import UserError
from vwbench.submissions import validate
from vwbench.submissions.safe_tensors import TensorFileError, read_header
from vwbench.submissions.transfers import resolve_transfer

FIX = "save tensors with safetensors.torch.save_file (or safetensors.numpy.save_file)"


def _only_problem(path: Path) -> str:
    report = validate(path, run_code=False)
    assert not report.ok and len(report.problems) == 1, report.problems
    return report.problems[0]


def test_a_numpy_file_renamed_safetensors_is_named_as_numpy(tmp_path: Path) -> None:
    path = tmp_path / "words.safetensors"
    with path.open("wb") as f:
        np.save(f, np.zeros((4, 8), dtype=np.float32))
    assert _only_problem(path) == f"words.safetensors is a NumPy .npy file, not safetensors; vwbench never loads pickles: {FIX}"


def test_a_file_too_short_to_hold_a_header_length(tmp_path: Path) -> None:
    path = tmp_path / "tiny.safetensors"
    path.write_bytes(b"\x05\x00\x00")
    assert _only_problem(path) == f"tiny.safetensors is 3 bytes, too short to be safetensors: {FIX}"


def test_a_truncated_file_says_how_much_its_header_claims(tmp_path: Path) -> None:
    path = tmp_path / "cut.safetensors"
    path.write_bytes(struct.pack("<Q", 100) + b'{"a": 1}')
    assert _only_problem(path) == "cut.safetensors declares a 100-byte header but holds 8 bytes after the length: truncated or not safetensors"


def test_a_file_over_the_size_limit_is_refused_before_its_header_is_read(tmp_path: Path) -> None:
    path = raw_safetensors(tmp_path / "big.safetensors", {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 16)
    size = path.stat().st_size
    with pytest.raises(TensorFileError) as info:
        read_header(path, max_file_bytes=size - 1)
    assert str(info.value) == f"big.safetensors is {size} bytes, over the {size - 1}-byte limit"


@pytest.mark.parametrize(
    ("header", "data", "expected"),
    [
        ({"__metadata__": {"format": 1}}, b"", "x.safetensors: __metadata__ must map strings to strings"),
        ({"w": {"dtype": "F32", "shape": [1]}}, b"\0" * 4, "x.safetensors: tensor 'w' needs exactly dtype, shape and data_offsets"),
        ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0]}}, b"\0" * 4, "x.safetensors: tensor 'w' has data_offsets [0], not [begin, end]"),
        ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, True]}}, b"\0" * 4, "x.safetensors: tensor 'w' has data_offsets [0, True], not [begin, end]"),
        ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 12, "x.safetensors: 8 bytes after the last tensor; not a valid safetensors file"),
    ],
)
def test_malformed_header_entries_are_named(tmp_path: Path, header, data, expected) -> None:
    assert _only_problem(raw_safetensors(tmp_path / "x.safetensors", header, data)) == expected


def test_a_header_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "x.safetensors"
    blob = b"{nope"
    path.write_bytes(struct.pack("<Q", len(blob)) + blob)
    problem = _only_problem(path)
    assert problem.startswith("x.safetensors: the header is not UTF-8 JSON (") and problem.endswith(f"): not safetensors: {FIX}")


def test_embeddings_without_tensors_say_what_they_should_hold(tmp_path: Path) -> None:
    meta = {"format": "vwbench.embeddings/1", "name": "w", "model": "clip", "vocab_hash": "a" * 64, "dataset": "synth-tiny"}
    path = raw_safetensors(tmp_path / "e.safetensors", {"__metadata__": meta})
    report = validate(path)
    assert report.kind == "embeddings"
    assert report.problems == ["no tensors: embeddings hold one tensor per concept, [n_vectors, d]"]


def test_an_unreadable_embeddings_file_stops_at_the_file_problem(tmp_path: Path) -> None:
    """A header whose metadata names the embeddings format but whose data is cut: the one problem
    is the file's (its kind stays unknown: a header that cannot be read names no format); no
    tensor-shape problems are invented from a file that could not be read."""
    meta = {"format": "vwbench.embeddings/1", "name": "w", "model": "clip", "vocab_hash": "a" * 64, "dataset": "synth-tiny"}
    path = raw_safetensors(tmp_path / "e.safetensors", {"__metadata__": meta, "circle": {"dtype": "F32", "shape": [4, 8], "data_offsets": [0, 128]}}, b"\0" * 64)
    report = validate(path)
    assert report.kind == "unknown" and len(report.problems) == 1
    assert "claims bytes 0..128 of a 64-byte data section" in report.problems[0]


def test_transfer_given_an_embeddings_file_says_to_use_embeddings(tmp_path: Path) -> None:
    path = embeddings(tmp_path / "words.safetensors", {"circle": torch.randn(4, 8)})
    with pytest.raises(UserError) as info:
        resolve_transfer(str(path), "clip", "owlv2")
    assert str(info.value) == f"--transfer {path}: this is an embeddings file; pass it with --embeddings"


def test_transfer_given_a_file_that_is_no_submission(tmp_path: Path) -> None:
    path = tmp_path / "notes.safetensors"
    path.write_bytes(struct.pack("<Q", 2) + b"{}")  # a valid, empty safetensors file without a format
    with pytest.raises(UserError) as info:
        resolve_transfer(str(path), "clip", "owlv2")
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: invalid unknown submission: metadata 'format' is missing")


def test_transfer_given_a_linear_map_for_another_pair(tmp_path: Path) -> None:
    path = linear_map(tmp_path / "map.safetensors", torch.randn(6, 8))
    assert resolve_transfer(str(path), "clip", "owlv2").name == "my-map"
    with pytest.raises(UserError) as info:
        resolve_transfer(str(path), "sd", "owlv2")
    assert str(info.value) == f"{path}: this linear map is for clip->owlv2, the task is sd->owlv2"


def test_transfer_path_that_does_not_exist_lists_the_builtins(tmp_path: Path) -> None:
    with pytest.raises(UserError) as info:
        resolve_transfer(str(tmp_path / "gone" / "method"), "clip", "owlv2")
    assert str(info.value) == (f"--transfer {tmp_path / 'gone' / 'method'}: no such file or folder "
                               "(give a built-in name: anchor, identity, knn, lstsq, procrustes, random, ridge, or a submission path)")


def test_a_linear_map_made_for_other_checkpoints_is_refused_at_fit(tmp_path: Path) -> None:
    from vwbench.models.base import Vocabulary

    path = linear_map(tmp_path / "map.safetensors", torch.randn(3, 4))
    method = resolve_transfer(str(path), "clip", "owlv2")
    tokens = [f"w{i}</w>" for i in range(10)]
    source, target = Vocabulary(tokens, torch.randn(10, 4)), Vocabulary(tokens, torch.randn(10, 3))
    with pytest.raises(UserError) as info:
        method.fit(source, target)
    message = str(info.value)
    assert message.startswith(f"{path}: source_vocab_hash aaaaaaaaaaaa… does not match the source model's vocabulary (")
    assert message.endswith("the map was made for other checkpoints")
    with pytest.raises(UserError, match=r"weight is \[3, 4\], the models need \[5, 4\] \(d_target, d_source\)"):
        method.check_spaces(4, 5)


# transfer-method folders ---------------------------------------------------------------------


def test_a_folder_without_manifest(tmp_path: Path) -> None:
    folder = tmp_path / "method"
    folder.mkdir()
    (folder / "transfer.py").write_text(LSTSQ_BODY)
    assert _only_problem(folder) == f"no submission.yaml in {folder} (a transfer-method submission is a folder with submission.yaml and a .py file)"


def test_a_symbolic_link_in_a_submission_is_refused(tmp_path: Path) -> None:
    folder = transfer_folder(tmp_path, LSTSQ_BODY)
    (folder / "data.npy").symlink_to(tmp_path / "elsewhere.npy")
    problems = validate(folder, run_code=False).problems
    assert "symbolic links are not allowed in a submission: data.npy" in problems


@pytest.mark.parametrize(
    ("manifest_text", "expected"),
    [
        ("name: [unclosed", "submission.yaml is not valid YAML (line 1, column 16): "),
        ("- just\n- a list\n", "submission.yaml must be a mapping of name, authors, description, url, license, entry, class"),
    ],
)
def test_a_manifest_that_is_no_mapping(tmp_path: Path, manifest_text: str, expected: str) -> None:
    folder = transfer_folder(tmp_path, LSTSQ_BODY)
    (folder / "submission.yaml").write_text(manifest_text)
    assert _only_problem(folder).startswith(expected)


def test_a_manifest_over_its_size_limit(tmp_path: Path) -> None:
    from vwbench.submissions.validate import MAX_MANIFEST_BYTES

    folder = transfer_folder(tmp_path, LSTSQ_BODY)
    doc = yaml.safe_load((folder / "submission.yaml").read_text())
    doc["description"] = "x" * (MAX_MANIFEST_BYTES + 1)
    (folder / "submission.yaml").write_text(yaml.safe_dump(doc))
    assert _only_problem(folder) == f"submission.yaml is over {MAX_MANIFEST_BYTES} bytes"


def test_an_entry_file_that_is_missing_or_not_utf8(tmp_path: Path) -> None:
    folder = transfer_folder(tmp_path, LSTSQ_BODY, entry="method.py")
    assert _only_problem(folder) == f"entry file method.py is not in {folder}"
    (folder / "method.py").write_bytes(b"\xff\xfe class Transfer: pass\n")
    assert _only_problem(folder) == "method.py is not UTF-8 text"


def test_validate_cli_lists_every_problem_on_stderr_and_exits_1(tmp_path: Path) -> None:
    folder = transfer_folder(tmp_path, "class Other:\n    pass\n")
    res = CliRunner().invoke(app, ["validate", str(folder), "--no-run", "--json"])
    assert res.exit_code == 1
    payload = json.loads(res.stdout)
    assert payload["kind"] == "transfer-method" and payload["ok"] is False
    assert payload["problems"] == ["transfer.py defines no top-level class 'Transfer' (set 'class' in submission.yaml)"]


# embeddings against the task they are run on -------------------------------------------------------


def _words_file(tmp_path: Path, **meta) -> Path:
    g = torch.Generator().manual_seed(0)
    return embeddings(tmp_path / "words.safetensors", {"circle": torch.randn(2, 3, 8, generator=g), "square": torch.randn(2, 3, 8, generator=g)}, **meta)


def test_embeddings_that_fit_the_task_load_concept_major_with_their_trials(tmp_path: Path) -> None:
    from vwbench.submissions.embeddings import load_embedding_words

    path = _words_file(tmp_path)
    words = load_embedding_words(path, family="clip", vocab_hash="a" * 64, dim=8, dataset="synth-tiny", concepts=["square", "circle"],
                                 init_words={"square": "box", "circle": "ring"})
    assert words.concepts == ["square", "square", "circle", "circle"] and words.trials == [0, 1, 0, 1]
    assert words.init_words == ["box", "box", "ring", "ring"] and tuple(words.vectors.shape) == (4, 3, 8)
    assert words.metadata["embeddings"]["file"] == "words.safetensors" and words.metadata["key"].startswith("embeddings-")


def test_embeddings_for_another_model_dataset_or_checkpoint_name_every_mismatch(tmp_path: Path) -> None:
    from vwbench.submissions.embeddings import load_embedding_words

    path = _words_file(tmp_path)
    with pytest.raises(UserError) as info:
        load_embedding_words(path, family="owlv2", vocab_hash="b" * 64, dim=16, dataset="synth-coco", concepts=["circle", "star"],
                             init_words={"circle": "ring", "star": "star"})
    assert str(info.value) == (
        f"{path}: the words are in clip's space, the task's source model is owlv2; "
        "the words are for dataset synth-tiny, the task's is synth-coco; "
        "vocab_hash aaaaaaaaaaaa… is not the source model's (bbbbbbbbbbbb…): the words were trained on another checkpoint; "
        "no words for concepts ['star']; words for concepts the dataset does not have: ['square']; "
        "the words are 8-dim, the source model's embeddings are 16-dim"
    )
