"""Reading JSON that vwbench did not necessarily write (result files, manifests, configs, logs).

The standard library fails in three ways on such text: ``OSError`` (unreadable),
``ValueError`` (not UTF-8, not JSON: ``UnicodeDecodeError`` and ``JSONDecodeError`` are both
``ValueError``) and ``RecursionError`` (arrays or objects nested deeper than the interpreter's
recursion limit, e.g. a file of 200,000 ``[``). The last is easy to forget at a call site and then
becomes a traceback, so the helpers here turn it into a ``ValueError``: callers catch
``(OSError, ValueError)`` and nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TOO_DEEP = "JSON nested too deeply to read"


def parse_json(text: str | bytes) -> Any:
    """``json.loads(text)``, raising ``ValueError`` (never ``RecursionError``) on bad text."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(TOO_DEEP) from None


def read_json(path: str | Path) -> Any:
    """The JSON value in the UTF-8 file at ``path``; ``OSError`` if it cannot be read,
    ``ValueError`` if it is not UTF-8 JSON (nested too deeply included)."""
    return parse_json(Path(path).read_bytes().decode("utf-8"))
