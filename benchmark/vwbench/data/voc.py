"""PASCAL VOC (2007 or 2012), as the VOC devkit unpacks.

Layout under ``DATA_ROOT/<subdir>`` (``subdir: voc``), the devkit folder itself or any of
``VOCdevkit/VOC2012``, ``VOC2012``, ``VOCdevkit/VOC2007``, ``VOC2007``::

    Annotations/<id>.xml   JPEGImages/<id>.jpg   ImageSets/Main/train.txt, val.txt

Training images come from ``train.txt``, held-out images from ``val.txt``. Boxes are VOC's
1-based inclusive pixel corners, converted to COCO boxes as ``x = xmin - 1, w = xmax - xmin + 1``.
Class names are VOC's 20; ``options.names`` renames them to the dataset's concept names
(``aeroplane: airplane``). A dataset of one's own in VOC's layout may also use its concepts'
names (and ``names``' keys) as classes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vwbench.data.base import Annotation, DatasetSplit
from vwbench.data.real import Pools, Record, checked_box, load_real_dataset, require_file
from vwbench.data.xml_boxes import read_xml_annotation
from vwbench.errors import DataError

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
CANDIDATES = ("", "VOCdevkit/VOC2012", "VOC2012", "VOCdevkit/VOC2007", "VOC2007")


def find_devkit(folder: Path) -> Path:
    for sub in CANDIDATES:
        if (folder / sub / "Annotations").is_dir():
            return folder / sub
    raise DataError(f"{folder}: no VOC folder found; expected Annotations/, JPEGImages/ and ImageSets/Main/ in it or in one of {', '.join(c for c in CANDIDATES if c)}")


def _listing(devkit: Path, split: str) -> Path:
    return devkit / "ImageSets" / "Main" / f"{split}.txt"


def _image_ids(listing: Path) -> list[str]:
    require_file(listing, f"the VOC image-set list of the {listing.stem} split (one image id per line)")
    try:
        return listing.read_text(encoding="utf-8").split()
    except UnicodeDecodeError as exc:
        raise DataError(f"{listing}: not UTF-8 text ({exc.reason} at byte {exc.start}); expected one image id per line") from exc


def voc_sources(spec: Any, folder: Path) -> list[Path]:
    """What :func:`scan_voc` reads: the train and val lists and the XML file of each image they list."""
    devkit = find_devkit(folder)
    paths = []
    for split in ("train", "val"):
        listing = _listing(devkit, split)
        paths += [listing] + [devkit / "Annotations" / f"{image_id}.xml" for image_id in _image_ids(listing)]
    return list(dict.fromkeys(paths))


def read_voc_split(devkit: Path, split: str, names: dict[str, str], concepts: tuple[str, ...] = ()) -> list[Record]:
    """The records of one split. Object names must be VOC's 20 classes, or (a dataset of one's own
    in VOC's layout) a concept's name or a key of ``names``."""
    known = set(VOC_CLASSES) | set(concepts) | set(names)
    records = []
    for image_id in _image_ids(_listing(devkit, split)):
        path = devkit / "Annotations" / f"{image_id}.xml"
        ann = read_xml_annotation(path)
        boxes = []
        for i, obj in enumerate(ann.objects):
            if obj.name not in known:
                raise DataError(f"{path}: <object> {i + 1} is {obj.name!r}, not a PASCAL VOC class (unknown category); expected one of {', '.join(VOC_CLASSES)}, "
                                "or, for a dataset of your own in VOC's layout, one of its concepts or a key of its options.names")
            bbox = checked_box(path, f"<object> {i + 1} ({obj.name})", obj.xmin - 1, obj.ymin - 1, obj.xmax, obj.ymax, ann.width, ann.height)
            boxes.append(Annotation(bbox, names.get(obj.name, obj.name)))
        if boxes:
            filename = ann.filename or f"{image_id}.jpg"
            records.append(Record(f"JPEGImages/{filename}", ann.width, ann.height, boxes))
    return records


def scan_voc(spec: Any, folder: Path) -> Pools:
    devkit = find_devkit(folder)
    names = {str(k): str(v) for k, v in ((getattr(spec, "options", {}) or {}).get("names") or {}).items()}
    prefix = devkit.relative_to(folder).as_posix()
    pools = {}
    for split in ("train", "val"):
        records = read_voc_split(devkit, split, names, tuple(c.name for c in getattr(spec, "concepts", ())))
        for r in records:
            r.name = f"{prefix}/{r.name}" if prefix != "." else r.name
        pools[split] = records
    return Pools(pools["train"], pools["val"], extra={"format": f"voc:{prefix}"})


def load_voc_dataset(spec: Any, *, images_per_concept: int = 8, data_root: Any = None) -> DatasetSplit:
    """The split of a PASCAL VOC dataset spec (see the module docstring for the layout)."""
    return load_real_dataset(spec, scan_voc, images_per_concept=images_per_concept, data_root=data_root, sources=voc_sources)
