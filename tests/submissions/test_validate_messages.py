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
