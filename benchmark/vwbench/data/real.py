"""What the four real-dataset loaders share: finding the files, checking boxes, the seeded split.

Each format module (``coco``, ``voc``, ``imagenet``, ``dreambooth``) only reads its own on-disk
format into :class:`Record` pools; :func:`load_real_dataset` turns the pools into a
:class:`~vwbench.data.base.DatasetSplit`:

1. the dataset folder is ``DATA_ROOT/<options.subdir>`` with ``DATA_ROOT`` from ``--data-root``
   or ``$VWBENCH_DATA``;
2. if ``vwbench data prepare`` wrote a split file there for the same selection settings, its
   images and boxes are used as they are (no re-parsing of the annotation files); the split file
   records every annotation file it was built from (boxes.json, the COCO instances files, VOC's
   and ImageNet's XML files and lists; a folder of many as one entry), and a run refuses one
   changed, missing or added since (see :func:`check_sources`);
3. otherwise each image is labelled with the class of its largest box, and per concept
   ``images_per_concept`` training images and ``heldout_per_concept`` held-out images are drawn
   in a seeded order (``options.seed``, default 0), so the same files give the same split;
4. every selected image file is hashed into the split's manifest, whose hash results cite.

Every problem with the files is a one-line :class:`~vwbench.errors.DataError` naming the file and
what was expected.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat as stat_kind
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vwbench.data.base import Annotation, Concept, DatasetSplit, Example, Manifest, to_rgb
from vwbench.errors import DataError
from vwbench.hashing import sha256_file
from vwbench import jsonio

DATA_ENV = "VWBENCH_DATA"
SPLIT_FILE = "vwbench_split.json"
SPLIT_FORMAT = 2  # 2: a folder of many annotation files is one entry of "sources" (FOLDER_MIN)
READ_FORMATS = (1, 2)
BOX_TOLERANCE = 1.0  # pixels a box may reach past the image border (rounding in real annotations)
FOLDER_MIN = 16
"""A folder holding at least this many of the annotation files a split was selected from (VOC's
and ImageNet's XML files, one per image) is recorded as one entry; fewer are recorded file by file."""


@dataclass
class Record:
    """One annotated image on disk. ``name`` is its path relative to the dataset folder (what the
    manifest lists); boxes are COCO ``[x, y, w, h]`` in pixels."""

    name: str
    width: int
    height: int
    annotations: list[Annotation]

    @property
    def label(self) -> str:
        return max(self.annotations, key=lambda a: a.area).category

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "width": self.width, "height": self.height,
            "boxes": [{"bbox": list(a.bbox), "category": a.category} for a in self.annotations],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Record:
        boxes = [Annotation(tuple(float(v) for v in b["bbox"]), str(b["category"])) for b in data["boxes"]]
        return cls(str(data["name"]), int(data["width"]), int(data["height"]), boxes)


@dataclass
class Pools:
    """Candidate images of a dataset. With ``shared`` (DreamBooth: no official split) training and
    held-out images are both drawn from ``train``."""

    train: list[Record]
    heldout: list[Record] = field(default_factory=list)
    shared: bool = False
    extra: dict[str, str] = field(default_factory=dict)  # format facts for the manifest (year, layout)


Scanner = Callable[[Any, Path], Pools]
SourceLister = Callable[[Any, Path], list[Path]]
"""A format's annotation files (what its :data:`Scanner` reads besides the images), listed without
parsing them: what a prepared split records and a run compares with the disk."""


# ---- locating files ------------------------------------------------------------------------------


def dataset_folder(spec: Any, data_root: Path | str | None) -> Path:
    """``DATA_ROOT/<subdir>`` of a dataset spec; a one-line error when it is not there."""
    subdir = str((getattr(spec, "options", {}) or {}).get("subdir", spec.name))
    if data_root is None and os.environ.get(DATA_ENV):
        data_root = os.environ[DATA_ENV]
    if data_root is None:
        raise DataError(
            f"dataset {spec.name} is read from disk: pass --data-root DIR (or set ${DATA_ENV}) "
            f"where DIR/{subdir} holds the dataset"
        )
    root = Path(data_root).expanduser()
    if root.exists() and not root.is_dir():
        raise DataError(f"--data-root/${DATA_ENV} {root} is a file; give the folder that holds {subdir}/")
    folder = root / subdir
    if not folder.is_dir():
        raise DataError(f"dataset {spec.name}: folder {folder} not found; expected the dataset under DATA_ROOT/{subdir}")
    return folder


def require_file(path: Path, what: str) -> Path:
    if path.is_dir():
        raise DataError(f"{path} is a folder; expected {what}")
    if not path.is_file():
        raise DataError(f"{path} not found; expected {what}")
    return path


def read_json(path: Path, what: str) -> Any:
    require_file(path, what)
    try:
        return jsonio.read_json(path)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg}); expected {what}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is unreadable ({exc}); expected {what}") from exc
    except ValueError as exc:  # jsonio's "nested too deeply", or a limit such as int digits
        if str(exc) == jsonio.TOO_DEEP:
            raise DataError(f"{path} nests its JSON too deep to read; expected {what}") from None
        raise DataError(f"{path} is not readable JSON ({str(exc)[:200]}); expected {what}") from None


def checked_box(file: Path | str, where: str, x0: float, y0: float, x1: float, y1: float, width: int, height: int) -> tuple[float, float, float, float]:
    """COCO ``[x, y, w, h]`` of a corner box, or a :class:`DataError` when it has no area or lies
    outside its ``width x height`` image."""
    if not all(np.isfinite([x0, y0, x1, y1])):
        raise DataError(f"{file}: {where} has a non-numeric box ({x0}, {y0}, {x1}, {y1})")
    if x1 <= x0 or y1 <= y0:
        raise DataError(f"{file}: {where} has a zero-area box (x {x0}..{x1}, y {y0}..{y1}); expected a box with positive width and height")
    tol = BOX_TOLERANCE
    if x0 < -tol or y0 < -tol or x1 > width + tol or y1 > height + tol:
        raise DataError(
            f"{file}: {where} has a box (x {x0}..{x1}, y {y0}..{y1}) outside its {width}x{height} image"
        )
    x0, y0 = max(0.0, x0), max(0.0, y0)
    x1, y1 = min(float(width), x1), min(float(height), y1)
    if x1 <= x0 or y1 <= y0:  # it lay wholly in the tolerance band past the border
        raise DataError(f"{file}: {where} has a box (x {x0}..{x1}, y {y0}..{y1} once cut to the image) with no area inside its {width}x{height} image")
    return (x0, y0, x1 - x0, y1 - y0)


# ---- selection -----------------------------------------------------------------------------------


def _rng(*parts: Any) -> np.random.Generator:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def seeded_order(records: Sequence[Record], *key: Any) -> list[Record]:
    """``records`` sorted by name, then permuted by a seed derived from ``key``: independent of
    the order files were listed in."""
    ordered = sorted(records, key=lambda r: r.name)
    return [ordered[i] for i in _rng(*key).permutation(len(ordered))]


def by_label(records: Sequence[Record], names: Sequence[str]) -> dict[str, list[Record]]:
    groups: dict[str, list[Record]] = {n: [] for n in names}
    for record in records:
        if record.annotations and record.label in groups:
            groups[record.label].append(record)
    return groups


def _labels_present(records: Sequence[Record], name: str, count: int) -> str:
    """Where a concept labels no image at all, the labels the annotations do use (a concept
    spelt unlike its category, ``circles`` for ``circle``, is the usual cause)."""
    if count:
        return ""
    labels = sorted({r.label for r in records if r.annotations})
    shown = ", ".join(labels[:30]) + (f" and {len(labels) - 30} more" if len(labels) > 30 else "")
    return f"; no image's largest box is labelled {name!r} (labels there: {shown or 'none'}): name the concept as its category is named"


def select(spec: Any, pools: Pools, images_per_concept: int, seed: int) -> tuple[list[Record], list[Record]]:
    """The seeded training and held-out images of every concept (concept order, then draw order).

    With a shared pool (no official split) the first ``k`` images of a concept's seeded order are
    held out, ``k = min(heldout_per_concept, n // 3)`` but at least 1, and the rest train; when
    fewer than ``images_per_concept`` remain they are repeated in the same order (DreamBooth has
    4 to 6 images per subject, the protocol trains on 8)."""
    names = [c.name for c in spec.concepts]
    heldout_n = int(spec.heldout_per_concept)
    train_groups = by_label(pools.train, names)
    heldout_groups = train_groups if pools.shared else by_label(pools.heldout, names)
    train: list[Record] = []
    heldout: list[Record] = []
    for name in names:
        order = seeded_order(train_groups[name], spec.name, seed, name, "train")
        if pools.shared:
            k = max(1, min(heldout_n, len(order) // 3))
            held, rest = order[:k], order[k:]
            if not rest:
                raise DataError(f"dataset {spec.name}: concept {name!r} has {len(order)} image(s) with boxes; at least 2 are needed (1 held out)")
            chosen = [rest[i % len(rest)] for i in range(images_per_concept)]
        else:
            if len(order) < images_per_concept:
                raise DataError(
                    f"dataset {spec.name}: concept {name!r} labels {len(order)} training image(s) "
                    f"(class of the largest box), {images_per_concept} are required" + _labels_present(pools.train, name, len(order))
                )
            chosen = order[:images_per_concept]
            held = seeded_order(heldout_groups[name], spec.name, seed, name, "heldout")[:heldout_n]
            if not held:
                raise DataError(f"dataset {spec.name}: concept {name!r} labels no held-out image (class of the largest box)")
        train.extend(chosen)
        heldout.extend(held)
    return train, heldout


# ---- building the split --------------------------------------------------------------------------


def selection_settings(spec: Any, images_per_concept: int) -> dict[str, Any]:
    """Everything the selection depends on besides the files; a prepared split is reused only for
    the same settings."""
    options = dict(getattr(spec, "options", {}) or {})
    return {
        "dataset": spec.name,
        "concepts": [[c.name, c.init_word, c.anchor_word] for c in spec.concepts],
        "images_per_concept": int(images_per_concept),
        "heldout_per_concept": int(spec.heldout_per_concept),
        "options": json.loads(json.dumps(options, sort_keys=True, default=str)),
    }


def _image_loader(path: Path, name: str) -> Callable[[], Image.Image]:
    def load() -> Image.Image:
        try:
            with Image.open(path) as image:
                return to_rgb(image)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not a readable image ({exc}); expected the image file of {name}") from exc

    return load


# ---- the annotation files a split was built from ----------------------------------------------------


def source_name(folder: Path, path: Path) -> str:
    """How the split file names an annotation file: relative to the dataset folder (``/``-separated),
    or absolute where it lies outside (DreamBooth's ``options.boxes`` may point anywhere)."""
    try:
        return path.relative_to(folder).as_posix()
    except ValueError:
        return path.as_posix()


def fingerprint_sources(folder: Path, paths: Sequence[Path]) -> dict[str, dict[str, Any]]:
    """What a split records of the existing files of ``paths`` (a missing one is left to the
    scanner, whose error says what was expected there), by the name :func:`source_name` gives:

    - a file: ``{sha256, size, mtime_ns, checked_ns}``, ``checked_ns`` being when its hash was
      taken (see :func:`check_sources`);
    - a folder holding at least :data:`FOLDER_MIN` of them: ``{files, listing_sha256, sha256,
      checked_ns}``, ``files`` being ``{name: first 12 hex digits of its sha256}`` (to name a
      changed file), ``listing_sha256`` the digest of its files' names, sizes and mtimes,
      ``sha256`` that of their names and full hashes, and ``checked_ns`` when the hashing began."""
    groups: dict[Path, list[Path]] = {}
    for path in paths:
        groups.setdefault(path.parent, []).append(path)
    table: dict[str, dict[str, Any]] = {}
    for directory, members in groups.items():
        if len(dict.fromkeys(members)) >= FOLDER_MIN:
            entry = _fingerprint_folder(directory, sorted({p.name for p in members}))
            if entry is not None:
                table[source_name(folder, directory)] = entry
            continue
        for path in members:
            try:
                stat = path.stat()
                if not path.is_file():
                    continue
                checked = time.time_ns()
                table[source_name(folder, path)] = {"sha256": sha256_file(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "checked_ns": checked}
            except OSError:
                continue
    return table


def _listing_digest(stats: dict[str, os.stat_result]) -> str:
    return hashlib.sha256("".join(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\0" for name, st in sorted(stats.items())).encode()).hexdigest()


def _content_digest(hashes: dict[str, str]) -> str:
    return hashlib.sha256("".join(f"{name}\0{digest}\0" for name, digest in sorted(hashes.items())).encode()).hexdigest()


def _fingerprint_folder(directory: Path, names: list[str]) -> dict[str, Any] | None:
    """The folder entry of ``directory``'s files ``names`` (see :func:`fingerprint_sources`)."""
    checked = time.time_ns()  # before any hash: a file changed after its hash has a later ctime
    stats: dict[str, os.stat_result] = {}
    hashes: dict[str, str] = {}
    for name in names:
        path = directory / name
        try:
            stat = os.stat(path)
            if stat_kind.S_ISREG(stat.st_mode):
                hashes[name] = sha256_file(path)
                stats[name] = stat
        except OSError:
            continue
    if not hashes:
        return None
    return {"files": {name: digest[:12] for name, digest in hashes.items()}, "listing_sha256": _listing_digest(stats),
            "sha256": _content_digest(hashes), "checked_ns": checked}


def _member(folder_name: str, name: str) -> str:
    """The source name of file ``name`` of a recorded folder."""
    return name if folder_name == "." else f"{folder_name}/{name}"


def _unchanged_without_reading(stat: os.stat_result, facts: dict[str, Any]) -> bool:
    """Whether a file can be taken as the recorded one without hashing it: the same size and
    mtime, and no change to its inode since its hash was taken (the ctime, which `cp -p`, `rsync
    -a` or `tar` cannot set back as they do the mtime)."""
    return (stat.st_size == facts.get("size") and stat.st_mtime_ns == facts.get("mtime_ns")
            and stat.st_ctime_ns <= int(facts.get("checked_ns", 0)))


def _refresh_sources(split_file: Path, refreshed: dict[str, dict[str, Any]]) -> None:
    """Record the new mtime (or a folder's listing digest) and check time of annotation files whose
    hash was taken again and matched (a touched or copied file), so the next run need not hash
    them; best effort: a read-only dataset folder is hashed again next time."""
    from vwbench.results.atomic import atomic_write_json

    try:
        data = jsonio.read_json(split_file)
        for name, facts in refreshed.items():
            data["sources"][name].update(facts)
        atomic_write_json(split_file, data)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass


def _missing(path: Path | str, split_file: Path) -> DataError:
    return DataError(f"{path} is missing (the split in {split_file} was selected from it); restore it or run `vwbench data prepare` again")


def _changed(path: Path | str, now: str, split_file: Path) -> DataError:
    return DataError(f"{path} changed since `vwbench data prepare` ({now}); the split in {split_file} was selected from the old file: "
                     "run `vwbench data prepare` again (or restore the file)")


def _check_folder(folder: Path, name: str, facts: dict[str, Any], split_file: Path) -> dict[str, Any] | None:
    """Refuse a recorded folder (see :func:`fingerprint_sources`) whose files went missing or
    changed; the facts to record where they were hashed again and matched, else None.

    The same rule as a recorded file's (:func:`_unchanged_without_reading`), for the files
    together: they are not read when their names, sizes and mtimes are the recorded ones and no
    ctime is after the hashing began; otherwise every one is hashed (a touch of one of ImageNet's
    50,000 validation files re-reads them all, once)."""
    directory = folder / name
    stats: dict[str, os.stat_result] = {}
    for member in facts["files"]:
        path = os.path.join(directory, member)
        try:
            stat = os.stat(path)
        except OSError:
            stat = None
        if stat is None or not stat_kind.S_ISREG(stat.st_mode):
            raise _missing(path, split_file)
        stats[member] = stat
    if _listing_digest(stats) == facts["listing_sha256"] and max((st.st_ctime_ns for st in stats.values()), default=0) <= facts["checked_ns"]:
        return None
    checked = time.time_ns()
    hashes: dict[str, str] = {}
    for member, tag in sorted(facts["files"].items()):
        path = os.path.join(directory, member)
        hashes[member] = digest = sha256_file(path)
        if digest[:12] != tag:
            raise _changed(path, f"sha256 {digest[:12]}..., {SPLIT_FILE} says {tag}...", split_file)
    if _content_digest(hashes) != facts["sha256"]:  # only where a file's first 12 hex digits matched by chance
        raise DataError(f"{directory}: a file of the {len(hashes)} recorded there changed since `vwbench data prepare` (their sha256 differs from "
                        f"{SPLIT_FILE}'s); the split in {split_file} was selected from the old files: run `vwbench data prepare` again")
    return {"listing_sha256": _listing_digest(stats), "checked_ns": checked}


def check_sources(spec: Any, folder: Path, recorded: dict[str, dict[str, Any]] | None, lister: SourceLister | None) -> None:
    """Refuse (one line naming the file) a prepared split whose annotation files changed, went
    missing, or were added (a file the format's scan would now read too) since ``vwbench data
    prepare``: its boxes and labels were read from the old ones.

    ``recorded`` is None for a split file written before the files were recorded: it is refused
    too (it cannot be checked), with the same advice.

    Cheap on large datasets: a file whose size and mtime (in ns) are the recorded ones, and whose
    ctime is not after its hash was taken, is taken as unchanged without reading it (COCO's train
    instances file is ~450 MB; hashing it takes seconds on every run); at the same size with
    another mtime or a later ctime (a copy, a touch, `cp -p`) it is hashed, once: a match is
    recorded in the split file. A recorded folder of many files is checked the same way as a
    whole (:func:`_check_folder`)."""
    split_file = folder / SPLIT_FILE
    if recorded is None:
        raise DataError(f"{split_file} does not record the annotation files it was selected from (a split file of an older vwbench), "
                        "so later edits to them cannot be noticed; run `vwbench data prepare` again")
    refreshed: dict[str, dict[str, Any]] = {}
    known: set[str] = set()
    for name, facts in sorted(recorded.items()):
        if "files" in facts:
            known.update(_member(name, member) for member in facts["files"])
            if (update := _check_folder(folder, name, facts, split_file)) is not None:
                refreshed[name] = update
            continue
        known.add(name)
        path = folder / name
        try:
            stat = path.stat()
        except OSError:
            stat = None
        if stat is None or not path.is_file():
            raise _missing(path, split_file)
        if _unchanged_without_reading(stat, facts):
            continue
        checked = time.time_ns()
        digest = sha256_file(path) if stat.st_size == facts.get("size") else None
        if digest != facts.get("sha256"):
            now = f"sha256 {digest[:12]}..., {SPLIT_FILE} says {str(facts.get('sha256'))[:12]}..." if digest else f"{stat.st_size} bytes, {SPLIT_FILE} says {facts.get('size')}"
            raise _changed(path, now, split_file)
        refreshed[name] = {"mtime_ns": stat.st_mtime_ns, "checked_ns": checked}
    if refreshed:
        _refresh_sources(split_file, refreshed)
    if lister is not None:
        prefix = str(folder) + os.sep
        for path in lister(spec, folder):
            text = str(path)  # not source_name: Path.relative_to on 55,000 files takes most of a second
            name = text[len(prefix):].replace(os.sep, "/") if text.startswith(prefix) else source_name(folder, path)
            if name not in known and path.is_file():
                raise DataError(f"{path} is new since `vwbench data prepare` (the split in {split_file} was selected without it); "
                                "run `vwbench data prepare` again")


def to_split(spec: Any, folder: Path, train: list[Record], heldout: list[Record], extra: dict[str, str]) -> DatasetSplit:
    """Examples backed by the files, and the manifest of every distinct selected file's sha256."""
    hashes: dict[str, str] = {}
    for record in train + heldout:
        if record.name not in hashes:
            path = folder / record.name
            require_file(path, f"the image file of {spec.name} listed in its annotations")
            hashes[record.name] = sha256_file(path)
    seen: dict[str, int] = {}

    def example(record: Record, split: str) -> Example:
        n = seen.get(f"{split}/{record.name}", 0)
        seen[f"{split}/{record.name}"] = n + 1
        image_id = f"{split}/{record.name}" + (f"#{n}" if n else "")  # repeats (shared pools) stay distinct
        path = folder / record.name
        return Example(image_id, record.width, record.height, list(record.annotations), loader=_image_loader(path, record.name), path=path)

    concepts = [Concept(c.name, c.init_word, getattr(c, "anchor_word", None)) for c in spec.concepts]
    entries = [(f"train/{r.name}", hashes[r.name]) for r in train] + [(f"heldout/{r.name}", hashes[r.name]) for r in heldout]
    # the boxes and labels too: reviewed or edited boxes change what detection trains and scores on
    annotations = json.dumps({"train": [r.to_json() for r in train], "heldout": [r.to_json() for r in heldout]}, sort_keys=True)
    manifest = Manifest(
        dataset=spec.name,
        entries=tuple(dict.fromkeys(entries)),
        extra=tuple(sorted({"split_rule": "largest_box/seeded", **extra, "annotations_sha256": hashlib.sha256(annotations.encode()).hexdigest()}.items())),
    )
    return DatasetSplit(
        spec.name, concepts, [example(r, "train") for r in train], [example(r, "heldout") for r in heldout], manifest
    )


def _read_source(facts: dict[str, Any]) -> dict[str, Any]:
    if "files" in facts:
        return {"files": {str(n): str(t) for n, t in facts["files"].items()}, "listing_sha256": str(facts["listing_sha256"]),
                "sha256": str(facts["sha256"]), "checked_ns": int(facts["checked_ns"])}
    return {"sha256": str(facts["sha256"]), "size": int(facts["size"]), "mtime_ns": int(facts["mtime_ns"]), "checked_ns": int(facts.get("checked_ns", 0))}


def read_prepared(folder: Path, settings: dict[str, Any]) -> tuple[list[Record], list[Record], dict[str, str], dict[str, str], dict[str, dict[str, Any]] | None] | None:
    """The selection stored by ``vwbench data prepare`` for these settings, if there is one:
    training and held-out records, the manifest's extra facts, its ``{name: sha256}`` and the
    annotation files it was selected from (None in a split file written before they were recorded)."""
    path = folder / SPLIT_FILE
    if not path.is_file():
        return None
    data = read_json(path, f"a split file written by `vwbench data prepare` (format {SPLIT_FORMAT})")
    try:
        if data.get("format") not in READ_FORMATS or data.get("settings") != settings:
            return None
        train = [Record.from_json(r) for r in data["train"]]
        heldout = [Record.from_json(r) for r in data["heldout"]]
        extra = {str(k): str(v) for k, v in data["manifest"]["extra"].items()}
        expected = {e["name"]: e["sha256"] for e in data["manifest"]["entries"]}
        sources = data.get("sources")
        if sources is not None:
            sources = {str(name): _read_source(f) for name, f in sources.items()}
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path} is malformed ({exc!r}); delete it and run `vwbench data prepare` again") from exc
    return train, heldout, extra, expected, sources


def load_real_dataset(spec: Any, scan: Scanner, *, images_per_concept: int, data_root: Path | str | None, use_prepared: bool = True,
                      sources: SourceLister | None = None) -> DatasetSplit:
    """The split of a real dataset (see the module docstring). ``sources`` lists the annotation
    files ``scan`` reads: a prepared split is checked against them, and ``vwbench data prepare``
    (``use_prepared=False``) records them in the split (only then: hashing COCO's instances file
    on every run of an unprepared dataset would cost seconds for nothing)."""
    folder = dataset_folder(spec, data_root)
    seed = int((getattr(spec, "options", {}) or {}).get("seed", 0))
    settings = selection_settings(spec, images_per_concept)
    prepared = read_prepared(folder, settings) if use_prepared else None
    if prepared is not None:
        train, heldout, extra, expected, recorded = prepared
        check_sources(spec, folder, recorded, sources)
        split = to_split(spec, folder, train, heldout, extra)
        split.sources = recorded
        for name, digest in split.manifest.entries:
            if expected.get(name) != digest:
                raise DataError(
                    f"{folder / name.split('/', 1)[1]} changed since `vwbench data prepare` (sha256 {digest[:12]}..., "
                    f"{SPLIT_FILE} says {str(expected.get(name))[:12]}...); restore the file or prepare again"
                )
        return split
    # hashed before the scan: a file edited while it is parsed then differs from its record
    recorded = fingerprint_sources(folder, sources(spec, folder)) if sources is not None and not use_prepared else None
    pools = scan(spec, folder)
    train, heldout = select(spec, pools, images_per_concept, seed)
    split = to_split(spec, folder, train, heldout, {**pools.extra, "seed": str(seed)})
    split.sources = recorded
    return split


def split_payload(spec: Any, split: DatasetSplit, images_per_concept: int) -> dict[str, Any]:
    """The split file's content: settings, manifest, the selected images with their boxes, and
    the annotation files they were read from (``sources``, see :func:`fingerprint_sources`; left
    out where the split did not record them, and such a file is refused by runs)."""

    def record(example: Example) -> dict[str, Any]:
        name = example.image_id.split("/", 1)[1]
        if example.path is not None and not example.path.as_posix().endswith(name):
            name = name.rsplit("#", 1)[0]  # a repeat's marker (to_split), not a '#' of the file's own name
        return Record(name, example.width, example.height, list(example.annotations)).to_json()

    payload = {
        "format": SPLIT_FORMAT,
        "settings": selection_settings(spec, images_per_concept),
        "manifest": split.manifest.to_json(),
        "train": [record(e) for e in split.train],
        "heldout": [record(e) for e in split.heldout],
    }
    if split.sources is not None:
        payload["sources"] = dict(split.sources)
    return payload
