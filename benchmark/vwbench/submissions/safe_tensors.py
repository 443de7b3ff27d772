"""Reading safetensors files from strangers: every check happens before a byte becomes a tensor.

A safetensors file is ``[8-byte little-endian header length N][N bytes of JSON header][data]``.
The header is parsed here, by this module, with limits on the file and header sizes; tensor
dtypes, shapes and byte ranges are checked against the file before ``safetensors`` itself reads
it, and values are checked for NaN/inf after. Pickle (``torch.save``) files are recognised and
refused by their first bytes; nothing here ever unpickles.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

import torch
from vwbench.jsonio import parse_json

MAX_FILE_BYTES = 2 * 2**30
MAX_HEADER_BYTES = 1 * 2**20
FLOAT_DTYPES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}
OTHER_DTYPES = {"F8_E4M3": 1, "F8_E5M2": 1, "I8": 1, "U8": 1, "BOOL": 1, "I16": 2, "U16": 2, "I32": 4, "U32": 4, "I64": 8, "U64": 8}


@dataclass
class TensorFile:
    """What a checked file holds: tensors (float32, finite) and its ``__metadata__`` strings."""

    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str]
    header: dict[str, dict] = field(default_factory=dict)


class TensorFileError(ValueError):
    """The file is not a safe, well-formed safetensors file; the message says why and what to do."""


def _sniff(head: bytes) -> str | None:
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle (torch.save / pickle.dump output)"
    if head[:2] == b"PK":
        return "a zip archive (torch.save's default format, which holds a pickle)"
    if head[:6] == b"\x93NUMPY":
        return "a NumPy .npy file"
    return None


def _looks_like_safetensors(head: bytes, size: int, max_header_bytes: int) -> bool:
    """A header length that fits the file, followed by the JSON header's opening brace."""
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 2 <= n <= max_header_bytes and 8 + n <= size and head[8:9] == b"{"


def read_header(path: Path, max_file_bytes: int = MAX_FILE_BYTES, max_header_bytes: int = MAX_HEADER_BYTES) -> tuple[dict[str, dict], dict[str, str]]:
    """Parse and check the header of ``path``; returns ``(tensor entries, metadata)``.

    Raises :class:`TensorFileError` naming the problem: pickles and other formats, a file or
    header over its limit, a header that is not a JSON object of tensor entries, unknown dtypes,
    byte ranges that do not match shapes or the file size.
    """
    path = Path(path)
    if path.exists() and not path.is_file():  # a FIFO or device would block the open, a folder fail it
        raise TensorFileError(f"{path.name}: not a regular file; give the path of a .safetensors file")
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            def read(offset: int, n: int) -> bytes:
                f.seek(offset)
                return f.read(n)

            return _parse_header(path.name, size, read, max_file_bytes, max_header_bytes)
    except OSError as exc:
        raise TensorFileError(f"cannot read {path}: {exc.strerror}") from exc


def _parse_header(file_name: str, size: int, read, max_file_bytes: int, max_header_bytes: int) -> tuple[dict[str, dict], dict[str, str]]:
    """:func:`read_header`'s checks on a file called ``file_name`` of ``size`` bytes, whose bytes
    ``read(offset, n)`` returns."""
    fix = "save tensors with safetensors.torch.save_file (or safetensors.numpy.save_file)"
    head = read(0, 9)
    # a pickle's or zip's first bytes can also read as a header length (0x80 0x03 ... is
    # 896): only a file that does not start like safetensors is named by its magic bytes
    kind = None if _looks_like_safetensors(head, size, max_header_bytes) else _sniff(head)
    head = head[:8]
    if kind is not None:
        raise TensorFileError(f"{file_name} is {kind}, not safetensors; vwbench never loads pickles: {fix}")
    if size > max_file_bytes:
        raise TensorFileError(f"{file_name} is {size} bytes, over the {max_file_bytes}-byte limit")
    if len(head) < 8:
        raise TensorFileError(f"{file_name} is {size} bytes, too short to be safetensors: {fix}")
    (n,) = struct.unpack("<Q", head)
    if n > max_header_bytes:
        raise TensorFileError(f"{file_name} declares a {n}-byte header, over the {max_header_bytes}-byte limit")
    if 8 + n > size:
        raise TensorFileError(f"{file_name} declares a {n}-byte header but holds {size - 8} bytes after the length: truncated or not safetensors")
    raw = read(8, n)
    try:
        header = parse_json(raw.decode("utf-8"))
    except ValueError as exc:  # not UTF-8, not JSON, or nested too deeply
        raise TensorFileError(f"{file_name}: the header is not UTF-8 JSON ({exc}): not safetensors: {fix}") from exc
    if not isinstance(header, dict):
        raise TensorFileError(f"{file_name}: the header is not a JSON object: not safetensors")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise TensorFileError(f"{file_name}: __metadata__ must map strings to strings")
    data_size = size - 8 - n
    spans = []
    for name, entry in header.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise TensorFileError(f"{file_name}: tensor {name!r} needs exactly dtype, shape and data_offsets")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        width = FLOAT_DTYPES.get(dtype) or OTHER_DTYPES.get(dtype)
        if width is None:
            raise TensorFileError(f"{file_name}: tensor {name!r} has unknown dtype {dtype!r}")
        if not (isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
            raise TensorFileError(f"{file_name}: tensor {name!r} has shape {shape!r}, not a list of sizes")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise TensorFileError(f"{file_name}: tensor {name!r} has data_offsets {offsets!r}, not [begin, end]")
        begin, end = offsets
        if not 0 <= begin <= end <= data_size or end - begin != math.prod(shape) * width:
            raise TensorFileError(
                f"{file_name}: tensor {name!r} ({dtype} {shape}) claims bytes {begin}..{end} of a {data_size}-byte data section"
            )
        spans.append((begin, end))
    spans.sort()
    position = 0
    for begin, end in spans:
        if begin != position:
            raise TensorFileError(f"{file_name}: tensor data overlaps or leaves gaps (at byte {begin}); not a valid safetensors file")
        position = end
    if position != data_size:
        raise TensorFileError(f"{file_name}: {data_size - position} bytes after the last tensor; not a valid safetensors file")
    return header, dict(metadata)


def read_tensors(path: Path, max_file_bytes: int = MAX_FILE_BYTES, max_header_bytes: int = MAX_HEADER_BYTES) -> TensorFile:
    """Check ``path`` (:func:`read_header`), then load it: only float tensors are accepted, they
    are returned as float32 and must hold finite values."""
    header, metadata = read_header(path, max_file_bytes, max_header_bytes)
    from safetensors.torch import load_file

    return _load_checked(Path(path).name, header, metadata, lambda: load_file(str(path)))


def read_tensors_from_bytes(data: bytes, name: str, max_file_bytes: int = MAX_FILE_BYTES, max_header_bytes: int = MAX_HEADER_BYTES) -> TensorFile:
    """:func:`read_tensors` for a file already read into memory (``name`` is used in messages):
    the sandbox reads a child's output once, through a descriptor it checked, and parses those
    bytes, so the file cannot change (or be truncated under an mmap) between the checks and the load."""
    header, metadata = _parse_header(name, len(data), lambda offset, n: data[offset:offset + n], max_file_bytes, max_header_bytes)
    from safetensors.torch import load

    return _load_checked(name, header, metadata, lambda: load(bytes(data)))


def _load_checked(name: str, header: dict[str, dict], metadata: dict[str, str], load) -> TensorFile:
    for tensor_name, entry in header.items():
        if entry["dtype"] not in FLOAT_DTYPES:
            raise TensorFileError(f"{name}: tensor {tensor_name!r} is {entry['dtype']}; vwbench reads float tensors (F16, BF16, F32, F64)")
    from safetensors import SafetensorError

    try:
        raw = load()
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise TensorFileError(f"{name}: safetensors refused the file ({exc})") from exc
    tensors = {}
    for tensor_name, tensor in raw.items():
        tensor = tensor.to(torch.float32)  # an F64 value beyond float32's range becomes inf: caught below
        finite = torch.isfinite(tensor)
        if not finite.all():
            bad = int((~finite).sum())
            raise TensorFileError(f"{name}: tensor {tensor_name!r} holds {bad} NaN or infinite value(s) (as float32); every value must be finite")
        tensors[tensor_name] = tensor
    return TensorFile(tensors=tensors, metadata=metadata, header=header)
