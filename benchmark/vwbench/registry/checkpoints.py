"""Find a pinned checkpoint on disk and say exactly which bytes it is.

:func:`resolve_checkpoint` turns a :class:`~vwbench.registry.schema.CheckpointPin` into a
:class:`ResolvedCheckpoint`: a local folder plus the sha256 of every file in it, which results
cite as provenance and word caches use as part of their key. Nothing is downloaded: vwbench runs
offline, and a checkpoint that is not on disk is a :class:`~vwbench.errors.CheckpointNotFound`
whose one-line message says how to fetch it.

Resolution order for a hub checkpoint (``hf_id`` + ``revision``):

1. the weights folder (the ``weights_dir`` argument, else ``$VWBENCH_WEIGHTS``), holding
   ``<org>/<name>/`` or ``<org>--<name>/`` (e.g. made by ``hf download --local-dir``), or an
   ``models--<org>--<name>`` hub-cache tree;
2. the Hugging Face cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
   ``~/.cache/huggingface/hub``), read with ``snapshot_download(..., local_files_only=True)``.

A package checkpoint (``path``) is a folder relative to the ``vwbench`` package directory (the
shipped mini zoo: ``zoo/mini-sd``, ...) or an absolute path.

How file hashes are obtained, cheapest first:

* a folder with a sha256 manifest (``manifest.json``: ``{"files": {relpath: sha256}}``) has every
  listed file hashed and compared; the first missing or mismatching file is a :class:`UserError`
  naming it, so a corrupted checkpoint never loads silently;
* in a hub-cache snapshot, files are symlinks to ``blobs/<id>``; for files stored with Git LFS
  (all weights) the blob id *is* the file's sha256 (64 hex digits), so it is read from the link
  target without reading the file; small non-LFS files have a 40-hex git blob id instead and are
  hashed;
* in a ``--local-dir`` download, ``.cache/huggingface/download/<file>.metadata`` records the
  commit and the file's etag, which for LFS files is again its sha256; it is used when the file
  has not been modified since (mtime), and the commit is checked against the pin;
* anything else is hashed (no hash cache yet: a full SD 2.1 folder takes tens of seconds).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from vwbench.errors import CheckpointNotFound, UserError
from vwbench.hashing import sha256_file
from vwbench.jsonio import read_json
from vwbench.registry.schema import CheckpointPin

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")
DEFAULT_MANIFEST = "manifest.json"
WEIGHTS_ENV = "VWBENCH_WEIGHTS"

Origin = Literal["package", "path", "weights_dir", "hf_cache"]


@dataclass(frozen=True)
class ResolvedCheckpoint:
    """A checkpoint found on disk.

    ``name`` is the hub id or the pin's path; ``revision`` the commit the files come from where
    known (the hub-cache snapshot, or a ``--local-dir`` download's metadata, else the pin's);
    ``files`` maps each file (relative, ``/``-separated) to its sha256."""

    path: Path
    name: str
    revision: str | None
    files: dict[str, str] = field(default_factory=dict)
    origin: Origin = "path"


def package_dir() -> Path:
    """The ``vwbench`` package directory, which relative checkpoint paths start from."""
    import vwbench

    return Path(vwbench.__file__).resolve().parent


class _DanglingLink(Exception):
    """A file of a checkpoint folder is a link to nothing (an interrupted download, a moved cache)."""

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.path = path


def _walk(root: Path) -> Iterator[Path]:
    """Files under ``root`` (following symlinks), skipping hidden files and folders (``.cache``,
    ``.git``, ...), sorted. A link to a missing file raises :class:`_DanglingLink`."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                path = Path(dirpath) / name
                if not path.exists():
                    raise _DanglingLink(path)
                yield path


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


# ---- manifests ---------------------------------------------------------------------------------


WEIGHT_SUFFIXES = {".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".msgpack", ".h5", ".onnx"}
# what the loaders also read besides weights (configs, preprocessing, tokenizers: a changed image
# mean or vocabulary changes every number as surely as changed weights), so a manifest must list them
LOADED_SUFFIXES = WEIGHT_SUFFIXES | {".json", ".txt", ".gz", ".model", ".yaml", ".yml"}


def _unlisted_loaded_files(folder: Path, manifest: Path, expected: dict[str, str]) -> list[str]:
    """Files under ``folder`` a loader may read that ``expected`` does not list (the manifest
    itself and dot-folders, e.g. a hub download's ``.cache/``, aside), found as the loaders find
    them: through symlinked folders too (:func:`_walk`)."""
    found, manifest = [], manifest.resolve()
    for p in _walk(Path(folder)):
        rel = p.relative_to(folder).as_posix()
        if p.suffix.lower() in LOADED_SUFFIXES and rel not in expected and p.resolve() != manifest:
            found.append(rel)
    return sorted(found)


def read_manifest(path: Path) -> dict[str, str]:
    """The ``{relpath: sha256}`` table of a manifest file (``{"files": {...}}``)."""
    try:
        data = read_json(path)
        files = data["files"]
        if not isinstance(files, dict):
            raise TypeError("'files' is not a mapping")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"checkpoint manifest {path} is unreadable ({exc}); expected {{\"files\": {{relpath: sha256}}}}") from exc
    table: dict[str, str] = {}
    for rel, digest in files.items():
        parts = Path(rel).parts
        if not rel or Path(rel).is_absolute() or ".." in parts:
            raise UserError(f"checkpoint manifest {path}: file name {rel!r} must be relative, inside the folder")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest.lower()):
            raise UserError(f"checkpoint manifest {path}: {rel!r} has no valid sha256 ({digest!r})")
        table[Path(rel).as_posix()] = digest.lower()
    return table


def verify_manifest(folder: Path, manifest: Path) -> dict[str, str]:
    """Hash every file a manifest lists and compare. Raises :class:`UserError` naming the first
    missing or mismatching file; returns the verified table."""
    expected = read_manifest(manifest)
    unlisted = _unlisted_loaded_files(Path(folder), Path(manifest), expected)
    if unlisted:  # the model would load bytes no hash covers
        kind = "weights file" if Path(unlisted[0]).suffix.lower() in WEIGHT_SUFFIXES else "file"
        more = f" (and {len(unlisted) - 1} more)" if len(unlisted) > 1 else ""
        raise UserError(f"checkpoint {folder}: {kind} {unlisted[0]}{more} is not listed in {manifest.name}, so it cannot be checked; "
                        "restore the manifest, or re-fetch the checkpoint")
    for rel, digest in expected.items():
        file = folder / rel
        if file.is_symlink() and not file.exists():
            raise _DanglingLink(file)
        if not file.is_file():
            raise UserError(f"checkpoint {folder}: file {rel} listed in {manifest.name} is missing; the checkpoint is incomplete")
        actual = sha256_file(file)
        if actual != digest:
            raise UserError(
                f"checkpoint {folder}: file {rel} has sha256 {actual[:12]}..., {manifest.name} says {digest[:12]}...; "
                f"the checkpoint is corrupted or was modified: restore or re-fetch it"
            )
    return expected


# ---- hashing folders ---------------------------------------------------------------------------


def _hub_cache_hashes(snapshot: Path) -> dict[str, str]:
    """Hashes of a hub-cache snapshot: LFS blob names are sha256s; other files are hashed."""
    files: dict[str, str] = {}
    for file in _walk(snapshot):
        blob = Path(os.readlink(file)).name if file.is_symlink() else ""
        files[_rel(file, snapshot)] = blob if _SHA256.fullmatch(blob) else sha256_file(file)
    return files


def _local_dir_metadata(folder: Path, rel: str) -> tuple[str, str, float] | None:
    """``(commit, etag, timestamp)`` of a file downloaded with ``hf download --local-dir``."""
    meta = folder / ".cache" / "huggingface" / "download" / f"{rel}.metadata"
    try:
        commit, etag, timestamp = meta.read_text().splitlines()[:3]
        return commit.strip(), etag.strip().strip('"'), float(timestamp)
    except (OSError, ValueError):
        return None


def _local_dir_hashes(folder: Path, pin: CheckpointPin, source: tuple[str, str]) -> tuple[dict[str, str], str | None, str]:
    """Hashes of a weights-folder checkpoint, the commit it was downloaded at (if recorded) and the
    repository that commit is of: the pin's, or its mirror's when a mirror download sits in the
    pin's folder. Where no commit is recorded, the folder stands for ``source`` (the ``(hf_id,
    revision)`` whose folder name it has).

    A recorded commit that is neither a 40-hex pinned revision nor the mirror's is a :class:`UserError`."""
    files: dict[str, str] = {}
    commits: set[str] = set()
    for file in _walk(folder):
        rel = _rel(file, folder)
        meta = _local_dir_metadata(folder, rel)
        if meta is not None:
            commits.add(meta[0])
        stat = file.stat()
        # the recorded etag stands for the bytes only if nothing touched the file after the download:
        # the ctime too, which `cp -p`, `rsync -a` or `tar` cannot set back as they do the mtime
        if meta is not None and _SHA256.fullmatch(meta[1]) and max(stat.st_mtime, stat.st_ctime) <= meta[2] + 1:
            files[rel] = meta[1]
        else:
            files[rel] = sha256_file(file)
    hf_id, revision = source
    stated = pin.revision if hf_id == pin.hf_id else revision
    if not commits:
        return files, stated, hf_id
    if not (pin.revision and _HEX40.fullmatch(pin.revision)):
        return files, (commits.pop() if len(commits) == 1 else stated), hf_id
    for candidate, candidate_revision in pin.hub_sources:  # the pinned commit, or the mirror's
        if commits == {candidate_revision}:
            return files, candidate_revision, candidate
    found = ", ".join(sorted(commits))
    raise UserError(
        f"checkpoint {pin.hf_id} in {folder} was downloaded at revision {found}, the task pins {pin.revision}; "
        f"re-fetch it with: {_fetch_commands(pin.hub_sources, lambda _: f'--local-dir {folder}')}"
    )


def _fetch_commands(sources: list[tuple[str, str]], where: Callable[[str], str]) -> str:
    """``hf download`` of each ``(hf_id, revision)`` of ``sources`` (a pin's, then its mirror's),
    into ``where(hf_id)`` (``--local-dir ...`` or ``--cache-dir ...``); the mirror's as the alternative."""
    commands = [f"hf download {hf_id} --revision {revision} {where(hf_id)}".rstrip() for hf_id, revision in sources]
    if len(commands) == 1:
        return commands[0]
    return f"{commands[0]} (or, where that repository is no longer served, its mirror: {commands[1]})"


def _folder_hashes(folder: Path, manifest: str | None) -> dict[str, str]:
    """Verify ``folder``'s manifest (required when ``manifest`` is named, else used if
    ``manifest.json`` is there) or hash every file."""
    name = manifest or DEFAULT_MANIFEST
    path = folder / name
    if path.is_file():
        return verify_manifest(folder, path)
    if manifest is not None:
        raise UserError(f"checkpoint {folder} has no {name}; its files cannot be verified (the task requires that manifest)")
    return {_rel(f, folder): sha256_file(f) for f in _walk(folder)}


# ---- resolution --------------------------------------------------------------------------------


def _hf_cache_dir() -> Path:
    """The hub cache folder, read from the environment at call time (``huggingface_hub`` reads it
    once, at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(os.environ["HUGGINGFACE_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"


def _snapshot(repo_id: str, revision: str, cache_dir: Path) -> Path | None:
    """The local snapshot folder of ``repo_id@revision`` in a hub cache, or None. Offline."""
    if not (cache_dir / f"models--{repo_id.replace('/', '--')}").is_dir():
        return None  # skip importing huggingface_hub when the cache cannot hold it
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, local_files_only=True))
    except Exception:  # noqa: BLE001 - any failure of an offline cache lookup means "not there"
        return None


def _not_found(pin: CheckpointPin, weights_dir: Path | None) -> CheckpointNotFound:
    root = str(weights_dir) if weights_dir is not None else "DIR"
    mirror = f" (nor its mirror {pin.mirror})" if pin.mirror else ""
    return CheckpointNotFound(
        f"checkpoint {pin.display} not found in --weights/{WEIGHTS_ENV} or the Hugging Face cache{mirror}; "
        f"fetch it with: {_fetch_commands(pin.hub_sources, lambda hf_id: f'--local-dir {root}/{hf_id}')}, then pass --weights {root}"
    )


def _resolve_hub(pin: CheckpointPin, weights_dir: Path | None) -> ResolvedCheckpoint:
    """The pin's repository, else its mirror, in the weights folder, then in the hub cache."""
    assert pin.hf_id is not None
    if weights_dir is not None:
        for hf_id, revision in pin.hub_sources:
            org, name = hf_id.split("/", 1)
            for folder in (weights_dir / org / name, weights_dir / f"{org}--{name}"):
                if folder.is_dir():
                    manifest = folder / DEFAULT_MANIFEST
                    if manifest.is_file():
                        stated = pin.revision if hf_id == pin.hf_id else revision
                        return ResolvedCheckpoint(folder, hf_id, stated, verify_manifest(folder, manifest), "weights_dir")
                    files, commit, found = _local_dir_hashes(folder, pin, (hf_id, revision))
                    return ResolvedCheckpoint(folder, found, commit, files, "weights_dir")
        for hf_id, revision in pin.hub_sources:
            snapshot = _snapshot(hf_id, revision, weights_dir)
            if snapshot is not None:
                return ResolvedCheckpoint(snapshot, hf_id, snapshot.name, _hub_cache_hashes(snapshot), "weights_dir")
    for hf_id, revision in pin.hub_sources:
        snapshot = _snapshot(hf_id, revision, _hf_cache_dir())
        if snapshot is not None:
            return ResolvedCheckpoint(snapshot, hf_id, snapshot.name, _hub_cache_hashes(snapshot), "hf_cache")
    raise _not_found(pin, weights_dir)


def _resolve_path(pin: CheckpointPin) -> ResolvedCheckpoint:
    assert pin.path is not None
    given = Path(pin.path).expanduser()
    folder = given if given.is_absolute() else package_dir() / given
    if not folder.is_dir():
        where = "" if given.is_absolute() else f" (inside the vwbench package: {folder})"
        fix = ""
        if folder.parent.name == "zoo" and folder.name.startswith("mini-"):
            fix = f"; rebuild it with: vwbench zoo train --only {folder.name}"
        raise CheckpointNotFound(f"checkpoint folder {pin.path} not found{where}{fix}")
    origin: Origin = "path" if given.is_absolute() else "package"
    return ResolvedCheckpoint(folder, pin.path, None, _folder_hashes(folder, pin.manifest), origin)


def _dangling(pin: CheckpointPin, link: Path, weights_dir: Path | None) -> CheckpointNotFound:
    """The one-line error for a checkpoint file that links to nothing, with the way to restore it:
    the download of the repository (the pin's or its mirror's) whose folder or hub-cache entry holds
    the link, into that place; where the pinned repository's files are broken, the mirror's
    download follows as the alternative."""
    if pin.hf_id is None:
        folder = Path(pin.path or "")
        fix = f"rebuild it with: vwbench zoo train --only {folder.name}" if folder.name.startswith("mini-") else "restore the folder"
    else:
        sources, where = pin.hub_sources, ""
        for hf_id, revision in pin.hub_sources:
            org, name = hf_id.split("/", 1)
            folders = [weights_dir / org / name, weights_dir / f"{org}--{name}"] if weights_dir is not None else []
            local = next((folder for folder in folders if link.is_relative_to(folder)), None)
            cached = f"models--{org}--{name}" in link.parts
            if local is not None or cached:
                sources = [(hf_id, revision)] + ([pin.mirror_source] if pin.mirror is not None and hf_id == pin.hf_id else [])
                if local is not None:
                    where = f"--local-dir {local}"
                elif weights_dir is not None and link.is_relative_to(weights_dir):
                    where = f"--cache-dir {weights_dir}"  # --weights is a hub cache
                break
        fix = f"fetch it again with: {_fetch_commands(sources, lambda _: where)}"
    return CheckpointNotFound(f"checkpoint {pin.hf_id or pin.path}: {link} is a link to a file that is missing (an interrupted download?); {fix}")


def refetch_command(resolved: ResolvedCheckpoint, pin: CheckpointPin | None = None) -> str | None:
    """The ``hf download`` that fetches a hub checkpoint found on disk again, into the place it
    was found: its ``--local-dir`` folder, or the hub cache holding its snapshot (with
    ``--force-download``: a cached file is otherwise kept as it is). Where ``pin`` names a mirror
    and the pinned repository was found, the mirror's command follows as the alternative. None
    for a package or path checkpoint."""
    if resolved.origin not in ("weights_dir", "hf_cache"):
        return None
    parts = resolved.path.parts
    if len(parts) >= 4 and parts[-2] == "snapshots" and parts[-3].startswith("models--"):
        where = f"--cache-dir {resolved.path.parents[2]} --force-download"
    else:
        where = f"--local-dir {resolved.path}"  # a mirror's files there resolve too (see _local_dir_hashes)
    sources = [(resolved.name, resolved.revision or "main")]
    if pin is not None and pin.mirror is not None and resolved.name == pin.hf_id:
        sources.append(pin.mirror_source)
    return _fetch_commands(sources, lambda _: where)


def resolve_checkpoint(pin: CheckpointPin, weights_dir: Path | None = None) -> ResolvedCheckpoint:
    """Find ``pin`` on disk (see the module docstring for the order) and hash its files.

    ``weights_dir`` defaults to ``$VWBENCH_WEIGHTS``. Raises :class:`CheckpointNotFound` (one line,
    with the command that fetches it) when it is nowhere, and :class:`UserError` when its files
    do not match its manifest or its recorded revision differs from the pin."""
    if weights_dir is None and os.environ.get(WEIGHTS_ENV):
        weights_dir = Path(os.environ[WEIGHTS_ENV])
    if weights_dir is not None:
        weights_dir = Path(weights_dir).expanduser()
        if weights_dir.exists() and not weights_dir.is_dir():
            raise UserError(f"--weights/${WEIGHTS_ENV} {weights_dir} is a file; give the folder of checkpoints (DIR/<org>/<name>, or a hub cache)")
    try:
        return _resolve_path(pin) if pin.path is not None else _resolve_hub(pin, weights_dir)
    except _DanglingLink as exc:
        raise _dangling(pin, exc.path, weights_dir) from None
