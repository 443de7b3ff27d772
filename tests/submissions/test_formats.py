"""The file formats: schemas, validation messages, and refusal of unsafe or malformed files."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from vwbench.cli import app
from vwbench.submissions import validate
from vwbench.submissions.safe_tensors import MAX_HEADER_BYTES, TensorFileError, read_tensors
from vwbench.submissions.schema import json_schemas

from .helpers import HASH_A, embeddings, linear_map, raw_safetensors, transfer_folder, LSTSQ_BODY

REPO = Path(__file__).resolve().parents[2]


def test_committed_json_schemas_match_the_code() -> None:
    for key, schema in json_schemas().items():
        committed = json.loads((REPO / "submissions" / "schemas" / f"{key}.schema.json").read_text())
        assert committed == json.loads(json.dumps(schema)), f"regenerate submissions/schemas/{key}.schema.json"


def test_valid_linear_map_and_embeddings(tmp_path: Path) -> None:
    lm = validate(linear_map(tmp_path / "m.safetensors", torch.randn(6, 8), torch.randn(6)))
    assert lm.ok and lm.kind == "linear-map" and (lm.info["d_target"], lm.info["d_source"]) == (6, 8)
    emb = validate(embeddings(tmp_path / "e.safetensors", {"circle": torch.randn(4, 8), "square": torch.randn(1, 4, 8)}))
    assert emb.ok and emb.kind == "embeddings"
    assert emb.info["words"]["circle"].shape == (1, 4, 8) and emb.info["words"]["square"].shape == (1, 4, 8)
    trials = validate(embeddings(tmp_path / "t.safetensors", {"circle": torch.randn(2, 4, 8), "square": torch.randn(2, 4, 8)}))
    assert trials.ok and trials.info["words"]["square"].shape == (2, 4, 8)


@pytest.mark.parametrize("header_bytes", [640, 896, 19280])  # lengths whose bytes begin like a pickle (80 02/03) or a zip (PK)
def test_a_header_length_that_reads_like_a_magic_number_is_still_safetensors(tmp_path: Path, header_bytes: int) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "m.safetensors"
    metadata = {"description": ""}
    save_file({"weight": torch.randn(6, 8)}, str(path), metadata=metadata)
    pad = header_bytes - int.from_bytes(path.read_bytes()[:8], "little")
    save_file({"weight": torch.randn(6, 8)}, str(path), metadata={"description": "x" * pad})
    assert int.from_bytes(path.read_bytes()[:8], "little") == header_bytes  # safetensors pads the header to 8 bytes
    assert read_tensors(path).tensors["weight"].shape == (6, 8)


def test_pickle_renamed_safetensors_is_refused_without_unpickling(tmp_path: Path) -> None:
    zipped = tmp_path / "torch_save.safetensors"
    torch.save({"weight": torch.randn(3, 3)}, zipped)
    plain = tmp_path / "pickle.safetensors"

    class Boom:
        def __reduce__(self):  # would run on unpickling
            return (Path(tmp_path / "pwned").touch, ())

    plain.write_bytes(pickle.dumps(Boom(), protocol=4))
    for path, what in ((zipped, "zip archive"), (plain, "pickle")):
        report = validate(path)
        assert not report.ok and what in report.problems[0] and "never loads pickles" in report.problems[0]
    assert not (tmp_path / "pwned").exists()


def test_every_problem_is_explained(tmp_path: Path) -> None:
    bad = linear_map(tmp_path / "m.safetensors", torch.randn(6, 8), torch.randn(5), source="dalle", source_vocab_hash="xyz", name="<script>alert(1)</script>")
    problems = validate(bad).problems
    text = "\n".join(problems)
    assert len(problems) == 4, problems
    assert "source" in text and "source_vocab_hash" in text and "name" in text and "'bias' has shape [5], expected [6]" in text


@pytest.mark.parametrize(
    "tensors, message",
    [
        ({"weight": torch.randn(2, 3, 4)}, "'weight' has shape [2, 3, 4]"),
        ({"bias": torch.randn(3)}, "no 'weight' tensor"),
        ({"weight": torch.randn(3, 4), "extra": torch.randn(2)}, "unexpected tensors ['extra']"),
        ({"weight": torch.tensor([[1.0, float("nan")], [0.0, 1.0]])}, "1 NaN or infinite"),
        ({"weight": torch.tensor([[1.0, float("inf")]])}, "NaN or infinite"),
        ({"weight": torch.tensor([[1e300]], dtype=torch.float64)}, "as float32"),
        ({"weight": torch.ones(2, 2, dtype=torch.int64)}, "is I64"),
    ],
)
def test_bad_linear_maps(tmp_path: Path, tensors, message) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "m.safetensors"
    meta = {"format": "vwbench.linear/1", "name": "m", "source": "clip", "target": "sd", "source_vocab_hash": HASH_A, "target_vocab_hash": HASH_A}
    save_file(tensors, str(path), metadata=meta)
    report = validate(path)
    assert any(message in p for p in report.problems), report.problems


def test_bad_embeddings(tmp_path: Path) -> None:
    path = embeddings(tmp_path / "e.safetensors", {"circle": torch.randn(8), "square": torch.randn(4, 8), "ring": torch.randn(3, 8)}, dataset="")
    text = "\n".join(validate(path).problems)
    assert "concept 'circle' has shape [8]" in text and "concepts differ" in text and "dataset" in text


def test_huge_header_is_refused_before_reading_it(tmp_path: Path) -> None:
    declared = tmp_path / "declared.safetensors"
    declared.write_bytes((2**40).to_bytes(8, "little") + b"{}")
    with pytest.raises(TensorFileError, match="header, over the"):
        read_tensors(declared)
    real = raw_safetensors(tmp_path / "real.safetensors", {"__metadata__": {"pad": "x" * (MAX_HEADER_BYTES + 10)}})
    assert "over the" in validate(real).problems[0]


@pytest.mark.parametrize(
    "header, data, message",
    [
        ({"w": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 4000000]}}, b"\0" * 16, "claims bytes"),
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "v": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12, "overlaps"),
        ({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, "not a list of sizes"),
        ({"w": {"dtype": "PY_OBJECT", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, "unknown dtype"),
        ([1, 2], b"", "not a JSON object"),
    ],
)
def test_malformed_headers(tmp_path: Path, header, data, message) -> None:
    path = raw_safetensors(tmp_path / "x.safetensors", header, data)
    assert any(message in p for p in validate(path).problems)


def test_manifest_problems_are_listed(tmp_path: Path) -> None:
    folder = transfer_folder(tmp_path, "class Other:\n    pass\n", name="ok-name")
    (folder / "submission.yaml").write_text("name: '<script>alert(1)</script>'\nauthors: []\nlicense: MIT\nbogus: 1\n")
    problems = validate(folder).problems
    text = "\n".join(problems)
    assert "name" in text and "authors" in text and "description" in text and "bogus" in text
    (folder / "submission.yaml").write_text("name: fine\nauthors: [me]\ndescription: d\nlicense: MIT\n")
    assert validate(folder, run_code=False).problems == ["transfer.py defines no top-level class 'Transfer' (set 'class' in submission.yaml)"]
    (folder / "transfer.py").write_text("class Transfer:\n    def fit(self, a, b, c):\n        return (\n")
    assert "syntax error" in validate(folder, run_code=False).problems[0]
    (folder / "transfer.py").write_text("class Transfer:\n    def fit(self, a, b, c):\n        pass\n")
    assert validate(folder, run_code=False).problems == ["class Transfer has no map() method"]
    (folder / "submission.yaml").write_text("name: " + "[" * 5000)  # the pure-Python YAML parser recurses
    assert "nests too deeply" in validate(folder, run_code=False).problems[0]


def test_builtin_names_are_reserved(tmp_path: Path) -> None:
    folder = transfer_folder(tmp_path, LSTSQ_BODY, name="lstsq")
    assert any("built-in transfer method" in p for p in validate(folder, run_code=False).problems)


def test_validate_cli_exit_codes(tmp_path: Path) -> None:
    good = linear_map(tmp_path / "m.safetensors", torch.randn(6, 8))
    ok = CliRunner().invoke(app, ["validate", str(good)])
    assert ok.exit_code == 0 and "valid linear-map submission" in ok.output
    bad = tmp_path / "bad.safetensors"
    torch.save({"w": 1}, bad)
    res = CliRunner().invoke(app, ["validate", str(bad), "--json"])
    assert res.exit_code == 1
    payload = json.loads(res.output)
    assert payload["ok"] is False and "zip archive" in payload["problems"][0]


def test_unreadable_files_and_fifos_are_problems_not_tracebacks_or_hangs(tmp_path: Path, monkeypatch) -> None:
    """A file the user may not read (as a non-root user) is a listed problem; a FIFO named as a
    safetensors file is refused before it is opened (opening it would block for ever)."""
    import os

    folder = transfer_folder(tmp_path, LSTSQ_BODY, name="mine")
    (folder / "helper.py").write_text("X = 1\n")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p).name == "helper.py" else real_access(p, mode))
    assert validate(folder, run_code=False).problems == ["cannot read helper.py (check the files' permissions)"]
    monkeypatch.setattr(os, "access", real_access)
    real_read = Path.read_text

    def deny(self, *args, **kwargs):
        if self.name in denied:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", deny)
    denied = {"submission.yaml"}
    assert validate(folder, run_code=False).problems == ["cannot read submission.yaml: Permission denied (check the file's permissions)"]
    denied = {"transfer.py"}
    assert validate(folder, run_code=False).problems == ["cannot read transfer.py: Permission denied (check the file's permissions)"]
    monkeypatch.undo()

    os.mkfifo(folder / "pipe")  # inside a transfer-method folder: the copy into the sandbox would fail
    assert validate(folder, run_code=False).problems == ["only files and folders may be in a submission: pipe is not"]
    (folder / "pipe").unlink()
    fifo = tmp_path / "words.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(TensorFileError, match="not a regular file"):
        read_tensors(fifo)
    assert validate(fifo).problems == ["words.safetensors: not a regular file; give the path of a .safetensors file"]
