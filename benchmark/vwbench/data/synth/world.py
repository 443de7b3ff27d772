"""Drawing the procedural world: shapes, colours, textures, backgrounds and scenes.

Everything is a pure function of a ``numpy.random.Generator``, so a scene is fully determined by
its seed. Objects are drawn at 4x resolution and downsampled (anti-aliasing), pasted through a
mask so that textures and occlusion work, and their boxes are the tight boxes of the visible mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SUPERSAMPLE = 4

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 210, 40),
    "orange": (240, 140, 30),
    "purple": (140, 60, 190),
    "pink": (240, 120, 180),
    "brown": (130, 80, 40),
    "black": (25, 25, 25),
    "white": (240, 240, 240),
    "grey": (128, 128, 128),
    "cyan": (40, 200, 210),
}


def _regular(n: int, inner: float | None = None, phase: float = -math.pi / 2) -> list[tuple[float, float]]:
    """Unit polygon (radius 1): regular n-gon, or a star when ``inner`` radius is given."""
    pts = []
    steps = n * 2 if inner else n
    for i in range(steps):
        r = (inner if (inner and i % 2) else 1.0)
        a = phase + 2 * math.pi * i / steps
        pts.append((r * math.cos(a), r * math.sin(a)))
    return pts


SHAPES: dict[str, list[tuple[float, float]] | str] = {
    "circle": "ellipse",
    "ring": "ring",
    "square": [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)],
    "triangle": _regular(3),
    "diamond": [(0, -1), (0.65, 0), (0, 1), (-0.65, 0)],
    "pentagon": _regular(5),
    "hexagon": _regular(6),
    "star": _regular(5, inner=0.45),
    "cross": [(-0.3, -1), (0.3, -1), (0.3, -0.3), (1, -0.3), (1, 0.3), (0.3, 0.3), (0.3, 1),
              (-0.3, 1), (-0.3, 0.3), (-1, 0.3), (-1, -0.3), (-0.3, -0.3)],
    "arrow": [(-1, -0.3), (0.2, -0.3), (0.2, -0.75), (1, 0), (0.2, 0.75), (0.2, 0.3), (-1, 0.3)],
    "heart": "heart",
    "moon": "moon",
    "bar": [(-1, -0.35), (1, -0.35), (1, 0.35), (-1, 0.35)],
    "kite": [(0, -1), (0.6, -0.2), (0, 1), (-0.6, -0.2)],
}

TEXTURES = ("solid", "stripes", "dots", "checker", "gradient")


@dataclass(frozen=True)
class ObjectStyle:
    """What makes an object of a category: its shape, and optionally a fixed colour, texture and
    second colour (instances in the dreambooth-like variant fix all of them)."""

    shape: str
    colour: str | None = None
    texture: str | None = None
    colour2: str | None = None
    aspect: float | None = None  # fixed width/height ratio for instances

    def sample(self, rng: np.random.Generator) -> ObjectStyle:
        """Fill the free attributes at random."""
        names = list(COLOURS)
        colour = self.colour or names[rng.integers(len(names))]
        colour2 = self.colour2 or names[rng.integers(len(names))]
        texture = self.texture or ("solid" if rng.random() < 0.6 else TEXTURES[rng.integers(len(TEXTURES))])
        return ObjectStyle(self.shape, colour, texture, colour2, self.aspect)


# The categories the world knows. Dataset files name their concepts from this catalog.
CATALOG: dict[str, ObjectStyle] = {name: ObjectStyle(name) for name in SHAPES}
CATALOG.update(
    {
        # dreambooth-like instances: one particular object with its own colours and pattern
        "bluestar": ObjectStyle("star", "blue", "dots", "white", 1.0),
        "redring": ObjectStyle("ring", "red", "stripes", "yellow", 1.0),
        "greenkite": ObjectStyle("kite", "green", "checker", "black", 0.8),
        "pinkheart": ObjectStyle("heart", "pink", "solid", "pink", 1.0),
        "orangemoon": ObjectStyle("moon", "orange", "gradient", "red", 1.0),
        "purplecross": ObjectStyle("cross", "purple", "stripes", "white", 1.0),
        "yellowarrow": ObjectStyle("arrow", "yellow", "dots", "blue", 1.4),
        "cyanhexagon": ObjectStyle("hexagon", "cyan", "checker", "white", 1.0),
        "browndiamond": ObjectStyle("diamond", "brown", "stripes", "orange", 0.9),
        "blacksquare": ObjectStyle("square", "black", "dots", "red", 1.0),
    }
)


@dataclass(frozen=True)
class PlacedObject:
    category: str
    style: ObjectStyle
    cx: float
    cy: float
    size: float  # radius in pixels
    aspect: float
    rotation: float


def _texture(style: ObjectStyle, size: int, rng: np.random.Generator) -> Image.Image:
    c1 = COLOURS[style.colour or "grey"]
    c2 = COLOURS[style.colour2 or "white"]
    img = Image.new("RGB", (size, size), c1)
    draw = ImageDraw.Draw(img)
    period = max(4, size // int(rng.integers(4, 8)))
    if style.texture == "stripes":
        for x in range(-size, size * 2, period):
            draw.polygon([(x, 0), (x + period // 2, 0), (x + period // 2 + size, size), (x + size, size)], fill=c2)
    elif style.texture == "dots":
        r = period // 4
        for y in range(period // 2, size, period):
            for x in range(period // 2, size, period):
                draw.ellipse([x - r, y - r, x + r, y + r], fill=c2)
    elif style.texture == "checker":
        for y in range(0, size, period):
            for x in range(0, size, period):
                if (x // period + y // period) % 2:
                    draw.rectangle([x, y, x + period - 1, y + period - 1], fill=c2)
    elif style.texture == "gradient":
        t = np.linspace(0, 1, size)[None, :, None]
        arr = (np.array(c1)[None, None] * (1 - t) + np.array(c2)[None, None] * t).repeat(size, axis=0)
        img = Image.fromarray(arr.astype(np.uint8))
    return img


def _mask(obj: PlacedObject, width: int, height: int) -> Image.Image:
    s = SUPERSAMPLE
    mask = Image.new("L", (width * s, height * s), 0)
    draw = ImageDraw.Draw(mask)
    rx, ry = obj.size * s * obj.aspect ** 0.5, obj.size * s / obj.aspect ** 0.5
    cx, cy = obj.cx * s, obj.cy * s
    geometry = SHAPES[obj.style.shape]
    cos, sin = math.cos(obj.rotation), math.sin(obj.rotation)

    def place(points):
        return [(cx + rx * (x * cos - y * sin), cy + ry * (x * sin + y * cos)) for x, y in points]

    if geometry == "ellipse":
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
    elif geometry == "ring":
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
        draw.ellipse([cx - rx * 0.55, cy - ry * 0.55, cx + rx * 0.55, cy + ry * 0.55], fill=0)
    elif geometry == "moon":
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
        off = place([(0.5, -0.2)])[0]
        draw.ellipse([off[0] - rx * 0.85, off[1] - ry * 0.85, off[0] + rx * 0.85, off[1] + ry * 0.85], fill=0)
    elif geometry == "heart":
        pts = [(16 * math.sin(t) ** 3 / 17, -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)) / 17)
               for t in np.linspace(0, 2 * math.pi, 48)]
        draw.polygon(place(pts), fill=255)
    else:
        draw.polygon(place(geometry), fill=255)
    return _downsample(mask, width, height)


# Output pixels of margin around an object's drawn pixels when only its window is downsampled:
# PIL's Lanczos window reaches 3 output pixels each way, so a pixel of the window is either
# computed from the same input as on the whole canvas, or far enough from the object that its
# (clipped) input is all zeros either way.
_WINDOW_MARGIN = 8


def _downsample(mask: Image.Image, width: int, height: int) -> Image.Image:
    """``mask.resize((width, height), LANCZOS)``, byte for byte, computed on the object's window
    only (aligned to whole output pixels): an object covers a small part of the canvas, and the
    resize was most of the time spent drawing a scene (2x faster scenes)."""
    if width != height:  # the pass order PIL would pick for the whole canvas is not pinned down here
        return mask.resize((width, height), Image.Resampling.LANCZOS)
    s = SUPERSAMPLE
    drawn = mask.getbbox()
    out = Image.new("L", (width, height), 0)
    if drawn is None:
        return out
    x0 = max(0, drawn[0] // s - _WINDOW_MARGIN)
    y0 = max(0, drawn[1] // s - _WINDOW_MARGIN)
    x1 = min(width, -(-drawn[2] // s) + _WINDOW_MARGIN)
    y1 = min(height, -(-drawn[3] // s) + _WINDOW_MARGIN)
    window = mask.crop((x0 * s, y0 * s, x1 * s, y1 * s))
    # Two explicit passes, horizontal then vertical: PIL resizes a square canvas in that order
    # but picks the order of a two-axis resize from its shape, and each pass rounds to bytes.
    window = window.resize((x1 - x0, window.height), Image.Resampling.LANCZOS)
    window = window.resize((x1 - x0, y1 - y0), Image.Resampling.LANCZOS)
    out.paste(window, (x0, y0))
    return out


def background(width: int, height: int, rng: np.random.Generator, clutter: int = 0) -> Image.Image:
    """A smooth two-colour gradient with mild noise and ``clutter`` thin random strokes."""
    c1 = rng.integers(60, 230, size=3)
    c2 = rng.integers(60, 230, size=3)
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:height, 0:width] / max(width, height)
    t = (np.cos(angle) * xx + np.sin(angle) * yy)
    t = (t - t.min()) / max(1e-6, t.max() - t.min())
    arr = c1[None, None] * (1 - t[..., None]) + c2[None, None] * t[..., None]
    arr = arr + rng.normal(0, 6, size=arr.shape)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(clutter):
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        x1, y1 = x0 + rng.normal(0, width / 6), y0 + rng.normal(0, height / 6)
        colour = tuple(int(v) for v in rng.integers(0, 255, size=3))
        draw.line([(x0, y0), (x1, y1)], fill=colour, width=1)
    return img


def render_scene(
    objects: list[PlacedObject], width: int, height: int, rng: np.random.Generator, clutter: int = 0
) -> tuple[Image.Image, list[tuple[str, tuple[float, float, float, float]]]]:
    """Draw ``objects`` in order (later ones occlude earlier ones) and return the image with the
    visible tight box ``[x, y, w, h]`` of every object that is still at least 25% visible."""
    img = background(width, height, rng, clutter)
    visible_masks: list[np.ndarray] = []
    full_masks: list[np.ndarray] = []
    for obj in objects:
        mask = _mask(obj, width, height)
        tex = _texture(obj.style, max(width, height), rng).crop((0, 0, width, height))
        img.paste(tex, (0, 0), mask)
        m = np.asarray(mask) > 127
        visible_masks = [v & ~m for v in visible_masks]
        visible_masks.append(m)
        full_masks.append(m)
    img = img.filter(ImageFilter.GaussianBlur(radius=0.3))
    boxes = []
    for obj, m, full in zip(objects, visible_masks, full_masks):
        if m.sum() < 0.25 * max(1, full.sum()) or m.sum() < 4:
            continue
        ys, xs = np.nonzero(m)
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        boxes.append((obj.category, (float(x0), float(y0), float(x1 - x0), float(y1 - y0))))
    return img, boxes
