"""The 31 image transformations of the `probe` study ("Substance or Style", arXiv 2307.05610).

`TRANSFORMS` is the single source of truth: one row per transformation with its group, its
parameters and whether the grouped task (b) holds it out. Every function maps an RGB image to an
RGB image of the same size; sizes in the parameters are fractions of the image's shorter side, so
the table means the same thing at 32 px and at 224 px. Only `gaussian_noise` and `salt_pepper`
draw random numbers, from a generator seeded by `apply_transform`'s ``seed``.

Held-out rule for task (b): every group with at least two members holds out exactly one, so the
probe is trained on the others and tested on a transformation it never saw. `identity` is alone in
its group and is never held out: the grouped task trains and tests on identity views (of disjoint
images), which keeps "no transformation" one of the ten answers and makes the test set balanced
(one view per group per test image).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from vwbench.errors import UserError

Fn = Callable[..., Image.Image]


@dataclass(frozen=True)
class Transform:
    """One row of the table: ``fn(image, rng, **params)`` is the transformed image."""

    name: str
    group: str
    params: Mapping[str, Any]
    fn: Fn = field(repr=False)
    held_out: bool = False


def _side(image: Image.Image, fraction: float, minimum: float = 1.0) -> float:
    return max(minimum, fraction * min(image.size))


def _from_array(array: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8), "RGB")


# --- geometric ---------------------------------------------------------------------------------

def _identity(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return image.copy()


def _hflip(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return ImageOps.mirror(image)


def _vflip(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return ImageOps.flip(image)


def _rotate(image: Image.Image, rng: np.random.Generator, *, degrees: float) -> Image.Image:
    # Counter-clockwise about the centre, canvas size kept, uncovered corners black.
    resample = Image.Resampling.NEAREST if degrees % 90 == 0 else Image.Resampling.BILINEAR
    return image.rotate(degrees, resample=resample, fillcolor=(0, 0, 0))


def _crop_resize(image: Image.Image, rng: np.random.Generator, *, keep: float) -> Image.Image:
    w, h = image.size
    cw, ch = max(1, round(w * keep)), max(1, round(h * keep))
    left, top = (w - cw) // 2, (h - ch) // 2
    return image.crop((left, top, left + cw, top + ch)).resize((w, h), Image.Resampling.BILINEAR)


def _affine(image: Image.Image, coefficients: tuple[float, ...]) -> Image.Image:
    return image.transform(image.size, Image.Transform.AFFINE, coefficients, Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))


def _translate(image: Image.Image, rng: np.random.Generator, *, dx: float, dy: float) -> Image.Image:
    w, h = image.size
    return _affine(image, (1, 0, -dx * w, 0, 1, -dy * h))


def _shear(image: Image.Image, rng: np.random.Generator, *, shear: float) -> Image.Image:
    h = image.size[1]
    return _affine(image, (1, shear, -shear * h / 2, 0, 1, 0))


def _perspective(image: Image.Image, rng: np.random.Generator, *, pull: float) -> Image.Image:
    # Keystone: the output's top edge shows a wider strip of the input, so the top looks squeezed.
    w, h = image.size
    out = [(0, 0), (w, 0), (w, h), (0, h)]
    src = [(-pull * w, 0), (w + pull * w, 0), (w, h), (0, h)]
    rows, rhs = [], []
    for (x, y), (u, v) in zip(out, src):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    coefficients = np.linalg.solve(np.array(rows, dtype=np.float64), np.array(rhs, dtype=np.float64))
    return image.transform(image.size, Image.Transform.PERSPECTIVE, tuple(coefficients), Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))


# --- colour and intensity -------------------------------------------------------------------------

def _grayscale(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return ImageOps.grayscale(image).convert("RGB")


def _hue_shift(image: Image.Image, rng: np.random.Generator, *, turn: float) -> Image.Image:
    hsv = np.asarray(image.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int32) + round(turn * 256)) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


def _saturate(image: Image.Image, rng: np.random.Generator, *, factor: float) -> Image.Image:
    return ImageEnhance.Color(image).enhance(factor)


def _channel_swap(image: Image.Image, rng: np.random.Generator, *, order: str) -> Image.Image:
    bands = dict(zip("RGB", image.split()))
    return Image.merge("RGB", [bands[c] for c in order])


def _invert(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return ImageOps.invert(image)


def _brightness(image: Image.Image, rng: np.random.Generator, *, factor: float) -> Image.Image:
    return ImageEnhance.Brightness(image).enhance(factor)


def _contrast(image: Image.Image, rng: np.random.Generator, *, factor: float) -> Image.Image:
    return ImageEnhance.Contrast(image).enhance(factor)


def _solarize(image: Image.Image, rng: np.random.Generator, *, threshold: int) -> Image.Image:
    return ImageOps.solarize(image, threshold)


# --- blur and noise --------------------------------------------------------------------------------

def _gaussian_blur(image: Image.Image, rng: np.random.Generator, *, radius: float) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(_side(image, radius)))


def _box_blur(image: Image.Image, rng: np.random.Generator, *, radius: float) -> Image.Image:
    return image.filter(ImageFilter.BoxBlur(_side(image, radius)))


def _motion_blur(image: Image.Image, rng: np.random.Generator, *, length: float) -> Image.Image:
    # Horizontal streak: the mean of a k-pixel window along x (edges padded by repetition).
    k = int(_side(image, length, minimum=3.0)) | 1
    array = np.asarray(image, dtype=np.float64)
    padded = np.pad(array, ((0, 0), (k // 2, k // 2), (0, 0)), mode="edge")
    csum = np.cumsum(np.pad(padded, ((0, 0), (1, 0), (0, 0))), axis=1)
    return _from_array((csum[:, k:] - csum[:, :-k]) / k)


def _gaussian_noise(image: Image.Image, rng: np.random.Generator, *, sigma: float) -> Image.Image:
    array = np.asarray(image, dtype=np.float64)
    return _from_array(array + rng.normal(0.0, sigma * 255.0, size=array.shape))


def _salt_pepper(image: Image.Image, rng: np.random.Generator, *, amount: float) -> Image.Image:
    array = np.asarray(image).copy()
    hit = rng.random(array.shape[:2])
    array[hit < amount / 2] = 0
    array[(hit >= amount / 2) & (hit < amount)] = 255
    return Image.fromarray(array, "RGB")


# --- quality and style ----------------------------------------------------------------------------

def _jpeg(image: Image.Image, rng: np.random.Generator, *, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def _pixelate(image: Image.Image, rng: np.random.Generator, *, block: float) -> Image.Image:
    b = _side(image, block, minimum=2.0)
    w, h = image.size
    small = image.resize((max(1, round(w / b)), max(1, round(h / b))), Image.Resampling.BOX)
    return small.resize((w, h), Image.Resampling.NEAREST)


def _posterize(image: Image.Image, rng: np.random.Generator, *, bits: int) -> Image.Image:
    return ImageOps.posterize(image, bits)


def _sharpen(image: Image.Image, rng: np.random.Generator, *, radius: float, percent: int) -> Image.Image:
    return image.filter(ImageFilter.UnsharpMask(_side(image, radius), percent, 0))


def _contour(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return image.filter(ImageFilter.CONTOUR)


def _emboss(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return image.filter(ImageFilter.EMBOSS)


def _cartoon(image: Image.Image, rng: np.random.Generator, *, bits: int, edge_threshold: int) -> Image.Image:
    # Flat colour regions (median filter, then posterize) with strong edges drawn in black.
    smooth = image.filter(ImageFilter.MedianFilter(3))
    flat = np.asarray(ImageOps.posterize(smooth, bits)).copy()
    edges = np.asarray(ImageOps.grayscale(smooth).filter(ImageFilter.FIND_EDGES))
    flat[edges > edge_threshold] = 0
    return Image.fromarray(flat, "RGB")


def _row(name: str, group: str, fn: Fn, held_out: bool = False, **params: Any) -> Transform:
    return Transform(name, group, MappingProxyType(params), fn, held_out)


TRANSFORMS: tuple[Transform, ...] = (
    _row("identity", "identity", _identity),
    _row("hflip", "flip", _hflip),
    _row("vflip", "flip", _vflip, held_out=True),
    _row("rotate90", "rotate", _rotate, degrees=90),
    _row("rotate180", "rotate", _rotate, held_out=True, degrees=180),
    _row("rotate15", "rotate", _rotate, degrees=15),
    _row("crop_resize", "warp", _crop_resize, keep=0.6),
    _row("translate", "warp", _translate, dx=0.2, dy=0.1),
    _row("shear", "warp", _shear, shear=0.3),
    _row("perspective", "warp", _perspective, held_out=True, pull=0.25),
    _row("grayscale", "colour", _grayscale),
    _row("hue_shift", "colour", _hue_shift, held_out=True, turn=0.25),
    _row("saturate", "colour", _saturate, factor=2.5),
    _row("channel_swap", "colour", _channel_swap, order="BGR"),
    _row("invert", "colour", _invert),
    _row("brightness_up", "intensity", _brightness, factor=1.6),
    _row("brightness_down", "intensity", _brightness, held_out=True, factor=0.5),
    _row("contrast_up", "intensity", _contrast, factor=2.0),
    _row("solarize", "intensity", _solarize, threshold=128),
    _row("gaussian_blur", "blur", _gaussian_blur, radius=0.02),
    _row("box_blur", "blur", _box_blur, radius=0.02),
    _row("motion_blur", "blur", _motion_blur, held_out=True, length=0.06),
    _row("gaussian_noise", "noise", _gaussian_noise, sigma=0.1),
    _row("salt_pepper", "noise", _salt_pepper, held_out=True, amount=0.06),
    _row("jpeg", "quality", _jpeg, quality=8),
    _row("pixelate", "quality", _pixelate, block=0.08),
    _row("posterize", "quality", _posterize, held_out=True, bits=2),
    _row("sharpen", "style", _sharpen, radius=0.02, percent=250),
    _row("contour", "style", _contour),
    _row("emboss", "style", _emboss),
    _row("cartoon", "style", _cartoon, held_out=True, bits=3, edge_threshold=40),
)

GROUPS: tuple[str, ...] = tuple(dict.fromkeys(t.group for t in TRANSFORMS))
TRANSFORM_NAMES: tuple[str, ...] = tuple(t.name for t in TRANSFORMS)
HELD_OUT: frozenset[str] = frozenset(t.name for t in TRANSFORMS if t.held_out)
_BY_NAME = {t.name: t for t in TRANSFORMS}


def get_transform(name: str) -> Transform:
    """The table row called ``name``; an unknown name is a `UserError` listing the known ones."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UserError(f"unknown transformation {name!r}; known: {', '.join(TRANSFORM_NAMES)}") from None


def run_transform(transform: Transform, image: Image.Image, seed: int = 0) -> Image.Image:
    """``transform`` applied to ``image`` (converted to RGB); random ones draw from ``seed``."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    return transform.fn(rgb, np.random.default_rng(seed), **transform.params)


def apply_transform(name: str, image: Image.Image, seed: int = 0) -> Image.Image:
    """The transformation called ``name`` applied to ``image``: an RGB image of the same size."""
    return run_transform(get_transform(name), image, seed)


def check_table(transforms: tuple[Transform, ...] | list[Transform]) -> None:
    """A `UserError` unless names are unique and every group keeps at least one training member
    (the grouped task cannot learn a group whose every member is held out)."""
    names = [t.name for t in transforms]
    if not names:
        raise UserError("the transformation table is empty; use vwbench.studies.transforms.TRANSFORMS")
    if len(set(names)) != len(names):
        raise UserError(f"transformation names repeat: {', '.join(sorted({n for n in names if names.count(n) > 1}))}")
    for group in dict.fromkeys(t.group for t in transforms):
        if all(t.held_out for t in transforms if t.group == group):
            raise UserError(f"every transformation of group {group!r} is held out; keep at least one for training")
