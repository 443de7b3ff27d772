"""Checkpoint manifests: ``manifest.json`` lists every file of a checkpoint folder with its
sha256, so a shipped mini checkpoint is hash-checked at load like a real one."""

from __future__ import annotations

from pathlib import Path

from vwbench.hashing import sha256_file
from vwbench.results.atomic import atomic_write_json

MANIFEST = "manifest.json"


def write_manifest(folder: Path, extra: dict | None = None) -> Path:
    """Hash every file under ``folder`` (except the manifest itself) into ``manifest.json``."""
    folder = Path(folder)
    files = {
        str(p.relative_to(folder)): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")
    }
    atomic_write_json(folder / MANIFEST, {"files": files, **(extra or {})})
    return folder / MANIFEST
