"""MS COCO 2014/2017 instances files, as the COCO site ships them.

Layout under ``DATA_ROOT/<subdir>`` (``subdir: coco``)::

    annotations/instances_train2017.json   (or ..._train2014.json)
    annotations/instances_val2017.json
    train2017/<file_name>   val2017/<file_name>

Training images come from the train split, held-out images from the val split. ``options.year``
(``2017`` or ``2014``) picks the release; without it 2017 is used when its files are there.
Crowd annotations (``iscrowd: 1``) are regions of many objects, not boxes of one, and are skipped.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from vwbench.data.base import Annotation, DatasetSplit
from vwbench.data.coco_format import check_instances
from vwbench.data.real import Pools, Record, checked_box, load_real_dataset, read_json
from vwbench.errors import DataError

EXPECTED = "a COCO instances file with 'images', 'annotations' and 'categories' lists"
YEARS = ("2017", "2014")


def _year(spec: Any, folder: Path) -> str:
    year = (getattr(spec, "options", {}) or {}).get("year")
    if year is not None:
        if str(year) not in YEARS:
            raise DataError(f"dataset {spec.name}: options.year is {year!r}; choose one of {', '.join(YEARS)}")
        return str(year)
    for candidate in YEARS:
        if (folder / "annotations" / f"instances_train{candidate}.json").exists():  # a folder there is reported as one
            return candidate
    raise DataError(f"{folder / 'annotations' / 'instances_train2017.json'} not found (nor the 2014 file); expected {EXPECTED}")


def _integer(value: object) -> int:
    """A COCO id: an int (or a string of digits), never a float that ``int()`` would truncate."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{value!r} is not an integer id")
    return int(value)


MAX_IMAGE_SIDE = 1_000_000  # pixels; far above any photo, and small enough for float arithmetic


def _side(value: object) -> int:
    """An image's width or height: a positive integer (not a float that ``int()`` would truncate)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_IMAGE_SIDE:
        raise ValueError(f"width/height {value!r:.40} is not an integer from 1 to {MAX_IMAGE_SIDE}")
    return value


def _file_name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"file_name {value!r:.40} is not a file name")
    return value


def _finite(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    return float(value)


def read_instances(path: Path, image_dir: str) -> list[Record]:
    """Every image of one instances file that has at least one (non-crowd) box."""
    data = read_json(path, EXPECTED)
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "annotations", "categories")):
        raise DataError(f"{path} is not {EXPECTED}")
    check_instances(data, path)  # unique ids: a duplicate image id would merge two images' boxes
    try:
        categories = {int(c["id"]): str(c["name"]) for c in data["categories"]}
        images = {int(i["id"]): (_file_name(i["file_name"]), _side(i["width"]), _side(i["height"])) for i in data["images"]}
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        what = f"lacks {exc}" if isinstance(exc, KeyError) else f"is malformed ({exc})"
        raise DataError(f"{path}: an image or category entry {what}; expected {EXPECTED}") from exc
    boxes: dict[int, list[Annotation]] = {}
    for ann in data["annotations"]:
        try:
            ann_id, image_id, category_id = ann.get("id"), _integer(ann["image_id"]), _integer(ann["category_id"])
            if not isinstance(ann["bbox"], list) or len(ann["bbox"]) != 4:
                raise ValueError(f"bbox {ann['bbox']!r:.40} is not a list of 4 numbers")
            x, y, w, h = (_finite(v) for v in ann["bbox"])
            crowd = ann.get("iscrowd", 0)
            if crowd not in (0, 1):  # True/False compare equal to 1/0; "0" (a string) would read as crowd
                raise ValueError(f"iscrowd {crowd!r} is not 0 or 1")
            crowd = bool(crowd)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"{path}: annotation {ann!r:.80} is malformed ({exc!r}); expected image_id, category_id and bbox [x, y, w, h]") from exc
        where = f"annotation {ann_id}"
        if category_id not in categories:
            raise DataError(f"{path}: {where} has category_id {category_id}, which is not in 'categories' (unknown category)")
        if image_id not in images:
            raise DataError(f"{path}: {where} refers to image_id {image_id}, which is not in 'images'")
        if crowd:
            continue
        _, width, height = images[image_id]
        bbox = checked_box(path, where, x, y, x + w, y + h, width, height)
        boxes.setdefault(image_id, []).append(Annotation(bbox, categories[category_id]))
    return [
        Record(f"{image_dir}/{images[i][0]}", images[i][1], images[i][2], anns) for i, anns in sorted(boxes.items())
    ]


def coco_sources(spec: Any, folder: Path) -> list[Path]:
    """The two instances files :func:`scan_coco` reads (train, val)."""
    year = _year(spec, folder)
    return [folder / "annotations" / f"instances_{split}{year}.json" for split in ("train", "val")]


def scan_coco(spec: Any, folder: Path) -> Pools:
    year = _year(spec, folder)
    pools = {}
    for split, path in zip(("train", "val"), coco_sources(spec, folder)):
        pools[split] = read_instances(path, f"{split}{year}")
    return Pools(pools["train"], pools["val"], extra={"format": f"coco{year}"})


def load_coco_dataset(spec: Any, *, images_per_concept: int = 8, data_root: Any = None) -> DatasetSplit:
    """The split of a COCO dataset spec (see the module docstring for the layout)."""
    return load_real_dataset(spec, scan_coco, images_per_concept=images_per_concept, data_root=data_root, sources=coco_sources)
