"""Export examples as a COCO instances dict (for users' tools and for validating annotations), and
the structural checks every COCO-format reader shares."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vwbench.data.base import Example
from vwbench.errors import DataError


def to_coco(examples: Sequence[Example]) -> dict:
    categories = sorted({a.category for e in examples for a in e.annotations})
    cat_ids = {name: i + 1 for i, name in enumerate(categories)}
    images, annotations = [], []
    for image_index, example in enumerate(examples, start=1):
        images.append({"id": image_index, "file_name": f"{example.image_id}.png", "width": example.width, "height": example.height})
        for a in example.annotations:
            x, y, w, h = a.bbox
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_index, "category_id": cat_ids[a.category],
                "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0,
            })
    return {
        "info": {"description": "vwbench export"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": n} for n, i in cat_ids.items()],
    }


def _id_value(ident: int | str) -> int | str:
    """An id as a reader takes it: a string of digits is its integer."""
    try:
        return int(ident)
    except ValueError:
        return ident


def check_instances(data: object, path: Path | str) -> None:
    """Structural checks of a COCO instances dict that a reader's per-entry checks do not catch:
    the three lists exist, and image, category and annotation ids are unique (a duplicate image id
    would silently merge two images' boxes). A :class:`DataError` names the file and the id."""
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "annotations", "categories")):
        raise DataError(f"{path}: not a COCO instances file (expected 'images', 'annotations' and 'categories' lists)")
    for key, what in (("images", "image"), ("categories", "category"), ("annotations", "annotation")):
        seen: set = set()
        for i, entry in enumerate(data[key]):
            if not isinstance(entry, dict) or "id" not in entry:
                raise DataError(f"{path}: {key}[{i}] has no 'id'")
            ident = entry["id"]
            if not isinstance(ident, (int, str)) or isinstance(ident, bool):
                raise DataError(f"{path}: {key}[{i}] has id {ident!r}; expected an integer")
            same = _id_value(ident)  # readers take "1000" as 1000: the two are one id
            if same in seen:
                raise DataError(f"{path}: duplicate {what} id {ident!r} ({key}[{i}]); ids must be unique")
            seen.add(same)
    names: set = set()
    for i, entry in enumerate(data["images"]):
        name = entry.get("file_name")
        if not isinstance(name, str):
            continue  # a missing or non-text file_name is the reader's error to report
        if name in names:  # two entries of one photo could put it in training and held out at once
            raise DataError(f"{path}: images[{i}] repeats file_name {name!r}; list each image once, with all its boxes")
        names.add(name)
