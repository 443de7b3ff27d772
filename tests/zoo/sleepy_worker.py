"""A stand-in for the zoo's training worker that trains nothing and never finishes on its own
(importable by the pool's spawned interpreters)."""

import os
import time
from pathlib import Path


def sleep_forever(name: str, root: str, threads: int) -> dict:
    (Path(root) / f"{name}.pid").write_text(str(os.getpid()))
    time.sleep(600)
    return {}
