"""DreamBooth subjects (google/dreambooth ``dataset/``: one folder of photos per subject).

DreamBooth has no boxes. ``vwbench data box`` boxes every photo with the detector prompted by the
subject's name and writes them as a COCO file (``boxes.json`` in the dataset folder, or
``options.boxes``) for the user to review; this loader reads that file. Layout under
``DATA_ROOT/<subdir>`` (``subdir: dreambooth``)::

    dataset/<subject>/<photo>.jpg    (or <subject>/<photo>.jpg directly)
    boxes.json                       file_name "<subject>/<photo>.jpg", category = subject name

DreamBooth has no official split and only 4 to 6 photos per subject: held-out and training photos
are drawn from the same folder (see :func:`vwbench.data.real.select`). A photo whose box the
user deleted from ``boxes.json`` is left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vwbench.data.base import DatasetSplit
from vwbench.data.coco import read_instances
from vwbench.data.real import Pools, load_real_dataset
from vwbench.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
DEFAULT_BOXES = "boxes.json"


def subjects_dir(folder: Path) -> Path:
    return folder / "dataset" if (folder / "dataset").is_dir() else folder


def subject_photos(folder: Path, subject: str) -> list[Path]:
    """The photos of one subject, sorted; a missing or empty subject folder is a DataError."""
    directory = subjects_dir(folder) / subject
    if not directory.is_dir():
        raise DataError(f"{directory} not found; expected the DreamBooth subject folder of {subject!r}")
    photos = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not photos:
        raise DataError(f"{directory} has no .jpg/.png photos; expected the photos of subject {subject!r}")
    return photos


def boxes_path(spec: Any, folder: Path) -> Path:
    return folder / str((getattr(spec, "options", {}) or {}).get("boxes", DEFAULT_BOXES))


def dreambooth_sources(spec: Any, folder: Path) -> list[Path]:
    """The boxes file :func:`scan_dreambooth` reads."""
    return [boxes_path(spec, folder)]


def scan_dreambooth(spec: Any, folder: Path) -> Pools:
    path = boxes_path(spec, folder)
    if path.is_dir():
        raise DataError(f"{path} is a folder; expected the COCO file of DreamBooth's boxes (move it away, then `vwbench data box --root {folder.parent}`)")
    if not path.is_file():
        raise DataError(f"{path} not found; DreamBooth has no boxes: create them with `vwbench data box --root {folder.parent}` and review them")
    prefix = subjects_dir(folder).relative_to(folder).as_posix()
    records = read_instances(path, prefix) if prefix != "." else read_instances(path, "")
    for record in records:
        record.name = record.name.lstrip("/")
    names = {c.name for c in spec.concepts}
    for record in records:
        subject = Path(record.name).parent.name
        if subject in names and any(a.category != subject for a in record.annotations):
            raise DataError(f"{path}: {record.name} has a box of another category than its subject {subject!r}")
        if not (folder / record.name).is_file():
            raise DataError(f"{path}: lists {record.name}, but {folder / record.name} does not exist")
    for name in sorted(names):
        subject_photos(folder, name)  # each concept's folder must exist
    return Pools(records, shared=True, extra={"format": "dreambooth", "boxes": path.name})


def load_dreambooth_dataset(spec: Any, *, images_per_concept: int = 8, data_root: Any = None) -> DatasetSplit:
    """The split of a DreamBooth dataset spec (see the module docstring for the layout)."""
    return load_real_dataset(spec, scan_dreambooth, images_per_concept=images_per_concept, data_root=data_root, sources=dreambooth_sources)
