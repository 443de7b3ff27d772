"""Export examples as a COCO instances dict (for users' tools and for validating annotations)."""

from __future__ import annotations

from collections.abc import Sequence

from vwbench.data.base import Example


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
