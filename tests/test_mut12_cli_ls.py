"""Mutation-testing round 12: `vwbench ls --studies --dataset D` for a dataset no study uses
names the datasets with study tasks, without the hint about suites (which list tasks, not studies)."""

from __future__ import annotations

from tests.test_cli_pins import _main


def test_ls_studies_of_a_dataset_no_study_uses_has_no_suite_hint(monkeypatch, capsys) -> None:
    code, out, err = _main(monkeypatch, capsys, "ls", "--studies", "--dataset", "synth-dreambooth")
    assert code == 2 and out == ""
    assert err.startswith("error: --dataset 'synth-dreambooth': no study task has it (datasets with study tasks: "), err
    assert "suite" not in err
