"""``vwbench.data.real.read_json`` names the JSON problem it met: "nests its JSON too deep" only
for nesting, and the limit's own words for other ``ValueError``s of ``json.loads``, e.g. an
integer literal longer than Python's 4300-digit conversion limit (3.11+)."""

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
