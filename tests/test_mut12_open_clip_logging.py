"""Mutation-testing round 12: while open_clip builds a model and the root logger has no handler,
only its warnings print (as logging's last resort would), even where the caller lowered the
root logger's level to INFO without adding a handler of their own."""

from __future__ import annotations

import logging


def test_open_clip_info_lines_stay_quiet_at_a_lowered_root_level(capsys) -> None:
    from vwbench.models.clip import _quiet_open_clip

    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    for handler in saved:
        root.removeHandler(handler)
    root.setLevel(logging.INFO)
    try:
        with _quiet_open_clip():
            logging.info("an info line open_clip logs")
            logging.warning("a warning open_clip logs")
        assert root.handlers == []
    finally:
        root.setLevel(level)
        for handler in saved:
            root.addHandler(handler)
    err = capsys.readouterr().err
    assert "a warning open_clip logs" in err and "an info line" not in err
