"""Pins on the small I/O helpers every manifest, checkpoint check and result file goes through:
``sha256_file`` over files larger than its read chunk, ``read_json``'s strict UTF-8, and the field
order of the prediction records (metrics and tests build them positionally)."""

from __future__ import annotations

import hashlib
from dataclasses import fields

import pytest

from vwbench.hashing import sha256_file
from vwbench.jsonio import read_json
from vwbench.predictions import BoxPredictions, LabelPredictions


def test_sha256_file_hashes_every_chunk_of_a_large_file(tmp_path) -> None:
    """A checkpoint is many MiB: the digest covers all of it, not the first 1 MiB read."""
    data = bytes(range(256)) * (4096 * 3) + b"tail"  # 3 MiB and 4 bytes: four reads
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    path.write_bytes(data[:-1] + b"X")  # a change past the first chunk changes the digest
    assert sha256_file(path) != hashlib.sha256(data).hexdigest()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert sha256_file(empty) == hashlib.sha256(b"").hexdigest()


def test_read_json_refuses_bytes_that_are_not_utf8_even_inside_a_string(tmp_path) -> None:
    """An invalid byte inside a JSON string is refused (a ValueError), never read as U+FFFD."""
    path = tmp_path / "result.json"
    path.write_bytes(b'{"task": "clip->owlv2", "name": "caf\xe9"}')
    with pytest.raises(ValueError):
        read_json(path)
    path.write_bytes(b'{"name": "caf\xc3\xa9"}')
    assert read_json(path) == {"name": "café"}


def test_read_json_refuses_a_byte_order_mark(tmp_path) -> None:
    """Strict UTF-8 JSON (RFC 8259: no BOM): a file with one is a ValueError, as json.loads has it."""
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"a": 1}')
    with pytest.raises(ValueError):
        read_json(path)


def test_prediction_records_keep_their_positional_field_order() -> None:
    assert [f.name for f in fields(LabelPredictions)] == ["target", "predicted", "actual"]
    assert [f.name for f in fields(BoxPredictions)] == ["target", "boxes", "scores", "gt_boxes"]
    p = LabelPredictions("dog", ["cat"], ["dog"])
    assert (p.predicted, p.actual) == (["cat"], ["dog"])
