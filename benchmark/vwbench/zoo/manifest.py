"""Checkpoint manifests: ``manifest.json`` lists every file of a checkpoint folder with its
sha256, so a shipped mini checkpoint is hash-checked at load like a real one."""

from __future__ import annotations

import hashlib
from pathlib import Path

from vwbench.results.atomic import atomic_write_json

MANIFEST = "manifest.json"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(folder: Path, extra: dict | None = None) -> Path:
    """Hash every file under ``folder`` (except the manifest itself) into ``manifest.json``."""
    folder = Path(folder)
    files = {
        str(p.relative_to(folder)): file_sha256(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")
    }
    atomic_write_json(folder / MANIFEST, {"files": files, **(extra or {})})
    return folder / MANIFEST
