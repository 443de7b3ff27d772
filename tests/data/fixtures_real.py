"""Writers of tiny datasets in the real on-disk formats (COCO JSON, VOC XML, ILSVRC XML,
DreamBooth folders + a COCO boxes file), with small generated images.

Every image of concept ``c`` holds a large box of ``c`` and a smaller box of another class, so the
largest-box rule labels it ``c``.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

W, H = 24, 16  # image size: not square, so swapped width/height would show


def image(path: Path, shade: int, size: tuple[int, int] = (W, H)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (shade % 256, (3 * shade) % 256, (7 * shade) % 256)).save(path)


def big_small(concept: str, other: str) -> list[tuple[str, tuple[float, float, float, float]]]:
    """(category, xyxy) boxes: the concept large, the other small."""
    return [(other, (1.0, 1.0, 5.0, 5.0)), (concept, (4.0, 3.0, 22.0, 15.0))]


def write_coco(folder: Path, concepts: list[str], train_n: int = 3, val_n: int = 2, year: str = "2017") -> Path:
    names = sorted(set(concepts) | {"person"})
    categories = [{"id": 10 + i, "name": n} for i, n in enumerate(names)]
    cat_id = {c["name"]: c["id"] for c in categories}
    for split, n in (("train", train_n), ("val", val_n)):
        images, anns = [], []
        for ci, concept in enumerate(concepts):
            for k in range(n):
                image_id = 1000 * (ci + 1) + k
                file_name = f"{image_id:012d}.jpg"
                image(folder / f"{split}{year}" / file_name, image_id)
                images.append({"id": image_id, "file_name": file_name, "width": W, "height": H})
                for cat, (x0, y0, x1, y1) in big_small(concept, "person"):
                    anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": cat_id[cat],
                                 "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 0})
        path = folder / "annotations" / f"instances_{split}{year}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"images": images, "annotations": anns, "categories": categories}))
    return folder


def voc_xml(filename: str, objects: list[tuple[str, tuple[float, float, float, float]]], width: int = W, height: int = H) -> str:
    objs = "".join(
        f"<object><name>{n}</name><difficult>0</difficult><bndbox><xmin>{b[0]:g}</xmin><ymin>{b[1]:g}</ymin>"
        f"<xmax>{b[2]:g}</xmax><ymax>{b[3]:g}</ymax></bndbox></object>"
        for n, b in objects
    )
    return f"<annotation><folder>X</folder><filename>{filename}</filename><size><width>{width}</width><height>{height}</height><depth>3</depth></size>{objs}</annotation>"


def write_voc(folder: Path, classes: list[str], train_n: int = 3, val_n: int = 2) -> Path:
    """``classes`` are VOC class names (``aeroplane``, ...)."""
    devkit = folder / "VOCdevkit" / "VOC2012"
    (devkit / "Annotations").mkdir(parents=True, exist_ok=True)
    (devkit / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    for split, n in (("train", train_n), ("val", val_n)):
        ids = []
        for ci, cls in enumerate(classes):
            for k in range(n):
                image_id = f"2012_{split}_{ci:02d}{k:02d}"
                ids.append(image_id)
                image(devkit / "JPEGImages" / f"{image_id}.jpg", ci * 10 + k)
                other = "person" if cls != "person" else "dog"
                boxes = [(c, (b[0] + 1, b[1] + 1, b[2], b[3])) for c, b in big_small(cls, other)]  # VOC is 1-based
                (devkit / "Annotations" / f"{image_id}.xml").write_text(voc_xml(f"{image_id}.jpg", boxes))
        (devkit / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return devkit


def write_imagenet(folder: Path, wnids: list[str], train_n: int = 3, val_n: int = 2) -> Path:
    base = folder / "ILSVRC"
    val = 0
    for wi, wnid in enumerate(wnids):
        for k in range(train_n):
            stem = f"{wnid}_{k}"
            image(base / "Data" / "CLS-LOC" / "train" / wnid / f"{stem}.JPEG", wi * 10 + k)
            path = base / "Annotations" / "CLS-LOC" / "train" / wnid / f"{stem}.xml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(voc_xml(stem, [(wnid, (4, 3, 22, 15))]))
        for k in range(val_n):
            val += 1
            stem = f"ILSVRC2012_val_{val:08d}"
            image(base / "Data" / "CLS-LOC" / "val" / f"{stem}.JPEG", 500 + val)
            path = base / "Annotations" / "CLS-LOC" / "val" / f"{stem}.xml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(voc_xml(stem, [("n99999999", (1, 1, 5, 5)), (wnid, (4, 3, 22, 15))]))
    return base


def write_dreambooth_photos(folder: Path, subjects: list[str], n: int = 4, size: tuple[int, int] = (W, H)) -> Path:
    for si, subject in enumerate(subjects):
        for k in range(n):
            image(folder / "dataset" / subject / f"{k:02d}.jpg", si * 10 + k, size)
    return folder


def write_dreambooth_boxes(folder: Path, subjects: list[str]) -> Path:
    photos = sorted((folder / "dataset").glob("*/*.jpg"))
    cats = {s: i + 1 for i, s in enumerate(subjects)}
    images, anns = [], []
    for i, p in enumerate(photos, start=1):
        subject = p.parent.name
        images.append({"id": i, "file_name": f"{subject}/{p.name}", "width": W, "height": H})
        anns.append({"id": i, "image_id": i, "category_id": cats[subject], "bbox": [4, 3, 18, 12], "area": 216, "iscrowd": 0})
    path = folder / "boxes.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": i, "name": s} for s, i in cats.items()]}))
    return path


def shipped_spec_with(name: str, concepts: list[str], **update):
    """The shipped dataset ``name``'s spec with ``concepts`` (each its own init word), one held-out
    image per concept and ``update``'s other fields: a dataset of one's own in that layout."""
    from vwbench.registry import TaskRegistry

    base = TaskRegistry.from_dir().dataset(name)
    concept = type(base.concepts[0])
    return base.model_copy(update={"concepts": [concept(name=c, init_word=c) for c in concepts], "heldout_per_concept": 1, **update})
