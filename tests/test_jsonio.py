"""The shared JSON reader: every way a foreign file can fail to parse is an OSError or a ValueError."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from vwbench.jsonio import TOO_DEEP, parse_json, read_json
from vwbench.results.words_store import WORDS_FORMAT, load_wordset

DEEP = "[" * 200_000 + "]" * 200_000


def test_parse_json_reads_plain_json() -> None:
    assert parse_json('{"a": [1, 2.5, null]}') == {"a": [1, 2.5, None]}
    assert parse_json(b"[true]") == [True]


def test_nesting_past_the_recursion_limit_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=TOO_DEEP):
        parse_json(DEEP)


def test_read_json_errors(tmp_path) -> None:
    with pytest.raises(OSError):
        read_json(tmp_path / "missing.json")
    with pytest.raises(OSError):
        read_json(tmp_path)  # a folder
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes('{"name": "café"}'.encode("latin-1"))
    with pytest.raises(ValueError):
        read_json(latin1)
    broken = tmp_path / "broken.json"
    broken.write_text('{"a": ')
    with pytest.raises(ValueError):
        read_json(broken)
    deep = tmp_path / "deep.json"
    deep.write_text(DEEP)
    with pytest.raises(ValueError, match=TOO_DEEP):
        read_json(deep)
    good = tmp_path / "good.json"
    good.write_text('{"name": "café"}', encoding="utf-8")
    assert read_json(good) == {"name": "café"}


def test_a_words_file_with_deeply_nested_metadata_is_not_used(tmp_path) -> None:
    path = tmp_path / "words.safetensors"
    metadata = {"format": WORDS_FORMAT, "concepts": DEEP, "trials": "[0]", "init_words": '["a"]', "metadata": "{}"}
    save_file({"vectors": torch.zeros(1, 1, 4)}, str(path), metadata=metadata)
    assert load_wordset(path) is None  # retrained, not a traceback
