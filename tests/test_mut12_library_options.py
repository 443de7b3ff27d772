"""Mutation-testing round 12: library use. `--anchors` given with submitted embeddings is refused
like the other training options, and a validation report with no info says so in its repr."""

from __future__ import annotations

from pathlib import Path

import pytest

from vwbench.errors import UserError
from vwbench.runner import RunOptions, check_embedding_options


def test_anchors_with_submitted_embeddings_are_refused(tmp_path: Path) -> None:
    options = RunOptions(embeddings=tmp_path / "words.safetensors", anchors=["circle=ring"], out_dir=tmp_path / "o")
    with pytest.raises(UserError, match=r"^--anchors applies to word training; submitted --embeddings are not trained .*: drop it$"):
        check_embedding_options(options)
    both = RunOptions(embeddings=tmp_path / "words.safetensors", anchors=["ring"], trials=2, out_dir=tmp_path / "o")
    with pytest.raises(UserError, match=r"^--trials/--anchors apply to word training; .*: drop them$"):
        check_embedding_options(both)
    check_embedding_options(RunOptions(embeddings=tmp_path / "words.safetensors", anchors=[], out_dir=tmp_path / "o"))  # an empty list is none given


def test_a_report_without_info_says_none() -> None:
    from vwbench.submissions.validate import Report

    report = Report(Path("map.safetensors"), "linear_map", ["not a matrix"], {})
    assert repr(report) == "Report(path='map.safetensors', kind='linear_map', ok=False, problems=['not a matrix'], info keys: none)"


def test_library_messages_reach_the_vwbench_logger_at_their_level(caplog) -> None:
    import logging

    from vwbench.progress import NullReporter

    with caplog.at_level(logging.INFO, logger="vwbench"):
        for message in ("Warning: clip uses a checkpoint that is not pinned", "could not remove the lock file x", "Could not read y", "reusing trained words"):
            NullReporter().log(message)
    levels = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "vwbench"]
    assert [level for level, _ in levels] == [logging.WARNING, logging.WARNING, logging.WARNING, logging.INFO], levels


def test_a_transfer_path_starting_with_a_user_name_tilde_is_expanded() -> None:
    import getpass

    user = getpass.getuser()
    expected = str(Path(f"~{user}/sub/map.safetensors").expanduser())
    assert not expected.startswith("~")  # the user is known to this machine
    assert RunOptions(transfer=f"~{user}/sub/map.safetensors").transfer == expected
