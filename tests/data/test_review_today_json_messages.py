"""Review of today's jsonio change in ``vwbench.data.real.read_json``: every ``ValueError`` that is
not a JSONDecodeError or UnicodeDecodeError is now reported as "nests its JSON too deep", but
``json.loads`` raises other ValueErrors too, e.g. for an integer literal longer than Python's
4300-digit conversion limit (3.11+). The message then names the wrong problem."""

from __future__ import annotations

import sys

import pytest

from vwbench.data.real import read_json
from vwbench.errors import DataError


@pytest.mark.skipif(not hasattr(sys, "get_int_max_str_digits"), reason="no integer digit limit before Python 3.11")
def test_a_huge_integer_is_not_called_nesting_too_deep(tmp_path):
    path = tmp_path / "instances.json"
    path.write_text('{"images": [' + "1" * (sys.get_int_max_str_digits() + 10) + "]}")
    with pytest.raises(DataError) as exc:
        read_json(path, "COCO instances")
    assert "too deep" not in str(exc.value)


def test_nesting_too_deep_is_still_named_so(tmp_path):
    path = tmp_path / "instances.json"
    path.write_text("[" * 5000 + "]" * 5000)
    with pytest.raises(DataError, match="nests its JSON too deep to read"):
        read_json(path, "COCO instances")
