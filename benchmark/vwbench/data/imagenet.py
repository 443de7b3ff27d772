"""ImageNet (ILSVRC 2012-2014) localization boxes, as the ILSVRC archives unpack.

The paper's ten ImageNet concepts (strawberry, harp, sturgeon, ...) are classes of ILSVRC's
classification-with-localization task, whose training and validation images come with VOC-style
XML boxes named by WordNet synset id. Layout under ``DATA_ROOT/<subdir>`` (``subdir: imagenet``),
optionally inside an ``ILSVRC/`` folder::

    Annotations/CLS-LOC/train/<wnid>/<wnid>_<n>.xml   Data/CLS-LOC/train/<wnid>/<wnid>_<n>.JPEG
    Annotations/CLS-LOC/val/<name>.xml                Data/CLS-LOC/val/<name>.JPEG

``options.synsets`` maps each concept name to its synset id; boxes of other synsets keep the id
as their category. Training images come from the concepts' train folders, held-out images from
the validation set. Box corners are used as given (``w = xmax - xmin``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from vwbench.data.base import Annotation, DatasetSplit
from vwbench.data.real import Pools, Record, checked_box, load_real_dataset
from vwbench.data.xml_boxes import read_xml_annotation
from vwbench.errors import DataError

WNID = re.compile(r"^n\d{8}$")


def find_base(folder: Path) -> Path:
    for base in (folder, folder / "ILSVRC"):
        if (base / "Annotations" / "CLS-LOC").is_dir():
            return base
    raise DataError(f"{folder}: no Annotations/CLS-LOC folder (nor ILSVRC/Annotations/CLS-LOC); expected the ILSVRC localization annotations")


def synsets(spec: Any) -> dict[str, str]:
    """``{wnid: concept name}`` from ``options.synsets`` (``{concept name: wnid}``)."""
    given = (getattr(spec, "options", {}) or {}).get("synsets") or {}
    missing = [c.name for c in spec.concepts if c.name not in given]
    if missing:
        raise DataError(f"dataset {spec.name}: options.synsets has no synset id for {', '.join(missing)}; add 'name: nXXXXXXXX' entries")
    bad = [f"{k}: {v}" for k, v in given.items() if not WNID.match(str(v))]
    if bad:
        raise DataError(f"dataset {spec.name}: options.synsets entries {bad} are not WordNet ids like n07745940")
    return {str(v): str(k) for k, v in given.items()}


def read_record(path: Path, image_name: str, names: dict[str, str]) -> Record | None:
    ann = read_xml_annotation(path)
    boxes = []
    for i, obj in enumerate(ann.objects):
        if not WNID.match(obj.name):
            raise DataError(f"{path}: <object> {i + 1} is {obj.name!r}, not a WordNet synset id like n07745940 (unknown category)")
        bbox = checked_box(path, f"<object> {i + 1} ({obj.name})", obj.xmin, obj.ymin, obj.xmax, obj.ymax, ann.width, ann.height)
        boxes.append(Annotation(bbox, names.get(obj.name, obj.name)))
    return Record(image_name, ann.width, ann.height, boxes) if boxes else None


def _train_dir(base: Path, wnid: str, names: dict[str, str]) -> Path:
    ann_dir = base / "Annotations" / "CLS-LOC" / "train" / wnid
    if not ann_dir.is_dir():
        raise DataError(f"{ann_dir} not found; expected the training boxes of {names[wnid]} ({wnid})")
    return ann_dir


def _val_dir(base: Path) -> Path:
    val_dir = base / "Annotations" / "CLS-LOC" / "val"
    if not val_dir.is_dir():
        raise DataError(f"{val_dir} not found; expected the validation boxes (held-out images)")
    return val_dir


def _xml_files(directory: Path) -> list[Path]:
    # sorted by name: ordering 50,000 Paths as Paths takes most of a second (the same order in one folder)
    return sorted(directory.glob("*.xml"), key=lambda path: path.name)


def imagenet_sources(spec: Any, folder: Path) -> list[Path]:
    """The XML files :func:`scan_imagenet` reads: each concept's training boxes and every validation file."""
    base = find_base(folder)
    names = synsets(spec)
    paths = [path for wnid in sorted(names) for path in _xml_files(_train_dir(base, wnid, names))]
    return paths + _xml_files(_val_dir(base))


def scan_imagenet(spec: Any, folder: Path) -> Pools:
    base = find_base(folder)
    prefix = "" if base == folder else "ILSVRC/"
    names = synsets(spec)
    train: list[Record] = []
    for wnid in sorted(names):
        for path in _xml_files(_train_dir(base, wnid, names)):
            record = read_record(path, f"{prefix}Data/CLS-LOC/train/{wnid}/{path.stem}.JPEG", names)
            if record is not None:
                train.append(record)
    val_dir = _val_dir(base)
    heldout = [
        r for path in _xml_files(val_dir)
        if (r := read_record(path, f"{prefix}Data/CLS-LOC/val/{path.stem}.JPEG", names)) is not None
    ]
    return Pools(train, heldout, extra={"format": "ilsvrc-cls-loc"})


def load_imagenet_dataset(spec: Any, *, images_per_concept: int = 8, data_root: Any = None) -> DatasetSplit:
    """The split of an ImageNet dataset spec (see the module docstring for the layout)."""
    return load_real_dataset(spec, scan_imagenet, images_per_concept=images_per_concept, data_root=data_root, sources=imagenet_sources)
