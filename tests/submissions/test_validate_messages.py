"""`vwbench validate`'s messages for inputs that are not a submission: a missing path is a bad
invocation (one line, exit 2), a file without a format tag says what to put there (exit 1)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from vwbench.cli import app, main
from vwbench.errors import UserError
from vwbench.submissions import load_model, validate


def test_a_path_that_does_not_exist_is_a_one_line_error_with_exit_2(tmp_path: Path, monkeypatch, capsys) -> None:
    missing = tmp_path / "nonexistent"
    for args in (["validate", str(missing)], ["validate", str(missing), "--json"], ["validate", str(missing), "--tier", "mini"]):
        monkeypatch.setattr("sys.argv", ["vwbench", *args])
        with pytest.raises(SystemExit) as exit_:
            main()
        out, err = capsys.readouterr()
        assert exit_.value.code == 2 and out == ""
        assert err == f"error: {missing}: no such file or folder (give a transfer-method folder, or a linear-map or embeddings .safetensors file)\n"
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_a_dangling_link_is_a_path_that_does_not_exist(tmp_path: Path) -> None:
    (tmp_path / "link.safetensors").symlink_to(tmp_path / "gone.safetensors")
    with pytest.raises(UserError, match="link.safetensors: no such file or folder"):
        validate(tmp_path / "link.safetensors")


def test_a_file_without_a_format_tag_says_it_is_missing_and_what_to_put(tmp_path: Path) -> None:
    path = tmp_path / "plain.safetensors"
    save_file({"weight": torch.zeros(2, 2)}, str(path))
    res = CliRunner().invoke(app, ["validate", str(path)])
    assert res.exit_code == 1
    assert "None" not in res.output
    assert """metadata 'format' is missing: save the file with metadata={"format": "vwbench.linear/1", ...} for a linear map or "vwbench.embeddings/1" for embeddings""" in res.output


def test_a_wrong_format_tag_is_named(tmp_path: Path) -> None:
    path = tmp_path / "v2.safetensors"
    save_file({"weight": torch.zeros(2, 2)}, str(path), metadata={"format": "vwbench.linear/2"})
    (problem,) = validate(path).problems
    assert problem.startswith("metadata 'format' is 'vwbench.linear/2'; a submission file says 'vwbench.linear/1'")


def test_load_model_names_the_roles_of_the_tier() -> None:
    with pytest.raises(UserError, match=r"tier mini has no model 'clipp' \(its roles: sd, owlv2, clip, judge\)"):
        load_model("clipp", tier="mini")


def _method_folder(tmp_path: Path, manifest: str) -> Path:
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "submission.yaml").write_text(manifest)
    return folder


def test_a_manifest_with_schema_problems_also_names_a_missing_entry_file(tmp_path: Path) -> None:
    """Every problem at once: the missing entry file is not held back until the schema is fixed."""
    folder = _method_folder(tmp_path, "name: Bad Name\nentry: nothere.py\nclass: Method\n")
    problems = validate(folder, run_code=False).problems
    assert any(p.startswith("submission.yaml name:") for p in problems)
    assert problems[-1] == f"entry file nothere.py is not in {folder}"


def test_a_bad_entry_name_is_one_problem_not_two(tmp_path: Path) -> None:
    folder = _method_folder(tmp_path, "name: ok\nentry: ../x.py\n")
    problems = validate(folder, run_code=False).problems
    assert [p for p in problems if "entry" in p] == ["submission.yaml entry: String should match pattern '^[A-Za-z0-9_][A-Za-z0-9_.-]*\\.py$'"]


def test_schema_messages_carry_no_pydantic_prefix(tmp_path: Path) -> None:
    folder = _method_folder(tmp_path, "name: lstsq\n")  # refused by a validator of ours (pydantic says "Value error, ...")
    problems = validate(folder, run_code=False).problems
    assert "submission.yaml name: 'lstsq' is the name of a built-in transfer method; pick another name" in problems


def test_invalid_yaml_names_its_line_and_column(tmp_path: Path) -> None:
    folder = _method_folder(tmp_path, "name: ok\nentry: [unclosed\n")
    problems = validate(folder, run_code=False).problems
    assert len(problems) == 1 and problems[0].startswith("submission.yaml is not valid YAML (line 3, column 1): ")


def test_a_manifest_with_schema_problems_also_names_a_missing_class(tmp_path: Path) -> None:
    folder = _method_folder(tmp_path, "name: Bad Name\n")
    (folder / "transfer.py").write_text("x = 1\n")
    problems = validate(folder, run_code=False).problems
    assert problems[-1] == "transfer.py defines no top-level class 'Transfer' (set 'class' in submission.yaml)"


def test_invalid_yaml_says_what_is_wrong_at_that_line_not_the_context(tmp_path: Path) -> None:
    folder = _method_folder(tmp_path, "name: ok\nauthors: [a]\n license: MIT\n")
    assert validate(folder, run_code=False).problems == [
        "submission.yaml is not valid YAML (line 3, column 2): expected <block end>, but found '<block mapping start>'"
    ]
