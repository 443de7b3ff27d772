"""``vwbench data box``: box DreamBooth's photos with the detector, as the paper's authors did.

Each photo of a subject is scored against the prompt "a photo of <subject>" (the subject's folder
name with underscores as spaces and a trailing instance number dropped: ``cat2`` -> "cat",
``duck_toy`` -> "duck toy") and its highest-scoring box is kept. The boxes are written as a COCO
instances file whose annotations also carry the detector's ``score`` and ``prompt``, so the user
can review them (and delete or fix bad ones) before the dataset is used. A photo on which no
predicted box keeps at least 1 x 1 pixels inside the photo is listed without a box (the loader
leaves it out until one is added).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from vwbench.data.base import Example, to_rgb
from vwbench.errors import DataError
from vwbench.data.dreambooth import subject_photos, subjects_dir
from vwbench.models.base import PROMPT_TEMPLATE
from vwbench.results.atomic import atomic_write_json


def subject_prompt(subject: str) -> str:
    return re.sub(r"\d+$", "", subject).replace("_", " ").strip() or subject


def _example(path: Path, name: str) -> Example:
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: not a readable image ({exc}); replace the photo or remove it from the subject's folder") from exc

    def load() -> Image.Image:
        with Image.open(path) as im:
            return to_rgb(im)

    return Example(name, width, height, [], loader=load, path=path)


@torch.no_grad()
def box_subjects(detector: Any, folder: Path, subjects: list[str], out: Path) -> dict[str, Any]:
    """Box every photo of ``subjects`` under ``folder`` with ``detector`` (an OWLv2 adapter) and
    write the COCO file ``out``; returns its content."""
    from vwbench.models.owlv2 import cxcywh_to_xyxy, padded_to_pixels

    base = subjects_dir(folder)
    images, annotations = [], []
    categories = [{"id": i + 1, "name": s} for i, s in enumerate(subjects)]
    for category_id, subject in enumerate(subjects, start=1):
        photos = subject_photos(folder, subject)
        examples = [_example(p, p.relative_to(base).as_posix()) for p in photos]
        prompt = PROMPT_TEMPLATE.format(subject_prompt(subject))
        query = detector.encode_texts([prompt])
        query = query / (query.norm(dim=-1, keepdim=True) + 1e-6)
        regions = detector.image_features(examples)
        # the adapter's own scoring (class head's shift and scale), as its predict() uses it
        scores = detector._score_chunk(regions, query).cpu()[:, 0]  # [images, regions]
        for example, region, image_scores in zip(examples, regions, scores):
            boxes = padded_to_pixels(cxcywh_to_xyxy(region.boxes), region.width, region.height)
            # the best box that keeps an area once clipped to the photo (boxes in OWLv2's padding do not)
            usable = ((boxes[:, 2] - boxes[:, 0]) >= 1.0) & ((boxes[:, 3] - boxes[:, 1]) >= 1.0)
            image_id = len(images) + 1
            images.append({"id": image_id, "file_name": example.image_id, "width": example.width, "height": example.height})
            if not bool(usable.any()):
                continue  # listed without a box: the loader leaves it out until the user boxes it
            best = int(torch.where(usable, image_scores, torch.full_like(image_scores, -1.0)).argmax())
            x0, y0, x1, y1 = boxes[best].tolist()
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": category_id,
                "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                "area": round((x1 - x0) * (y1 - y0), 2), "iscrowd": 0,
                "score": round(float(image_scores[best]), 4), "prompt": prompt,
            })
    payload = {
        "info": {"description": "DreamBooth subject boxes by vwbench data box (review before use)"},
        "images": images, "annotations": annotations, "categories": categories,
    }
    atomic_write_json(out, payload)
    return payload
