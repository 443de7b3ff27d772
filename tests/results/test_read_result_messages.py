"""A result path that names nothing, or a folder, says so and what to give (was the Python
exception's text)."""

from __future__ import annotations

import pytest

from vwbench.errors import UserError
from vwbench.results import read_result


def test_a_missing_result_file(tmp_path) -> None:
    with pytest.raises(UserError) as caught:
        read_result(tmp_path / "nope.json")
    assert str(caught.value) == f"{tmp_path / 'nope.json'}: no such result file; give a result JSON (`vwbench run` prints its path; they sit under OUT/results/)"


def test_a_folder_given_as_a_result(tmp_path) -> None:
    with pytest.raises(UserError, match=r": a folder, not a result file; give one result JSON from under it$"):
        read_result(tmp_path)


def test_an_unreadable_file_still_names_the_reason(tmp_path) -> None:
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UserError, match=r"bad.json: not a readable result file \(JSONDecodeError: "):
        read_result(tmp_path / "bad.json")


def test_a_key_holding_a_newline_is_quoted_on_one_line(tmp_path) -> None:
    """Found by the property test of tests/faults: ``per_concept: {"\\n": null}`` made the message
    two lines."""
    import json

    from tests.results.test_results import _result
    from vwbench.errors import UserError
    from vwbench.results.schema import read_result

    payload = _result().model_dump(mode="json")
    payload["per_concept"] = {"a\nb": None}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(payload))
    try:
        read_result(path)
    except UserError as exc:
        message = str(exc)
    assert "\n" not in message and "a\\nb" in message
