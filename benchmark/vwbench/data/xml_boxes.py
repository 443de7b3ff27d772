"""PASCAL VOC-style XML annotations (VOC itself and ImageNet's localization boxes)."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from vwbench.errors import DataError

EXPECTED = "a PASCAL VOC-style annotation (<annotation> with <size> and <object><name>/<bndbox>)"


@dataclass(frozen=True)
class XmlObject:
    name: str
    xmin: float
    ymin: float
    xmax: float
    ymax: float


@dataclass(frozen=True)
class XmlAnnotation:
    filename: str | None
    width: int
    height: int
    objects: list[XmlObject]


def _number(node: ET.Element, tag: str, path: Path, where: str) -> float:
    text = node.findtext(tag)
    try:
        value = float(str(text).strip())
    except ValueError:
        raise DataError(f"{path}: {where} has <{tag}> {text!r}, expected a number; {EXPECTED}") from None
    if not math.isfinite(value):
        raise DataError(f"{path}: {where} has <{tag}> {text!r}, expected a finite number; {EXPECTED}")
    return value


def read_xml_annotation(path: Path) -> XmlAnnotation:
    """Parse one annotation file; a missing, unparsable or incomplete file is a :class:`DataError`."""
    if path.is_dir():
        raise DataError(f"{path} is a folder; expected {EXPECTED}")
    if not path.is_file():
        raise DataError(f"{path} not found; expected {EXPECTED}")
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, LookupError, UnicodeError) as exc:  # LookupError: an unknown declared encoding
        raise DataError(f"{path} is not valid XML ({exc}); expected {EXPECTED}") from exc
    size = root.find("size")
    if root.tag != "annotation" or size is None:
        raise DataError(f"{path} has no <annotation>/<size>; expected {EXPECTED}")
    width, height = int(_number(size, "width", path, "<size>")), int(_number(size, "height", path, "<size>"))
    if width <= 0 or height <= 0:
        raise DataError(f"{path}: <size> is {width}x{height}; expected a positive image size")
    objects = []
    for i, obj in enumerate(root.findall("object")):
        name, box = obj.findtext("name"), obj.find("bndbox")
        where = f"<object> {i + 1}"
        if not name or box is None:
            raise DataError(f"{path}: {where} lacks <name> or <bndbox>; expected {EXPECTED}")
        coords = [_number(box, t, path, where) for t in ("xmin", "ymin", "xmax", "ymax")]
        # checked on the raw corners: VOC's inclusive convention would turn xmin == xmax into 1 px
        if coords[2] <= coords[0] or coords[3] <= coords[1]:
            raise DataError(f"{path}: {where} ({name.strip()}) has a zero-area box {coords}; expected xmax > xmin and ymax > ymin")
        objects.append(XmlObject(name.strip(), *coords))
    return XmlAnnotation(root.findtext("filename"), width, height, objects)
