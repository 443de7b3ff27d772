"""What the probe study's transformations do, pixel by pixel where it is exact: rotation
direction, the translation's direction, the centred crop, the hue turn's direction, both kinds of
salt-and-pepper pixels, and the motion blur's odd, centred window."""

from __future__ import annotations

import numpy as np
from PIL import Image

from vwbench.studies.transforms import apply_transform


def image_of(array: np.ndarray) -> Image.Image:
    return Image.fromarray(array.astype(np.uint8), "RGB")


def test_rotate90_turns_counter_clockwise() -> None:
    a = np.zeros((20, 20, 3), np.uint8)
    a[2, 15] = (255, 0, 0)  # near the top-right corner
    a[10:14, 3] = (0, 200, 0)
    out = np.asarray(apply_transform("rotate90", image_of(a)))
    assert np.array_equal(out, np.rot90(a))  # numpy's rot90 is counter-clockwise: top-right goes top-left


def test_translate_moves_right_and_down_by_its_fractions() -> None:
    a = np.zeros((40, 40, 3), np.uint8)
    a[10, 10] = 255
    out = np.asarray(apply_transform("translate", image_of(a)))  # dx 0.2, dy 0.1 of 40 px
    assert tuple(np.argwhere(out[..., 0] == out[..., 0].max())[0]) == (14, 18)  # (row, column)


def test_crop_resize_keeps_the_centre() -> None:
    a = np.zeros((40, 40, 3), np.uint8)
    a[:, 30:] = 255  # a bright right-hand band: outside a centred 60% crop (columns 8..31), mostly
    out = np.asarray(apply_transform("crop_resize", image_of(a))).astype(int)
    left_of_centre = out[:, :15].mean()
    assert left_of_centre == 0 and out[:, -3:].mean() > 100  # an uncentred crop from 0 would show no band
    sym = np.zeros((40, 40, 3), np.uint8)
    sym[:, 12:28] = 200  # symmetric about the vertical centre line: so is a centred crop of it
    c = np.asarray(apply_transform("crop_resize", image_of(sym))).astype(int)
    assert np.abs(c - c[:, ::-1]).max() <= 1


def test_hue_shift_turns_red_towards_green() -> None:
    red = np.zeros((4, 4, 3), np.uint8)
    red[...] = (255, 0, 0)
    out = np.asarray(apply_transform("hue_shift", image_of(red))).astype(int)  # a quarter turn: 90 degrees
    r, g, b = out[0, 0]
    assert g == 255 and b == 0 and 100 < r < 160


def test_salt_pepper_sets_both_black_and_white_pixels() -> None:
    grey = np.full((100, 100, 3), 128, np.uint8)
    out = np.asarray(apply_transform("salt_pepper", image_of(grey), seed=3))
    black, white = (out == 0).all(-1).mean(), (out == 255).all(-1).mean()
    assert 0.015 < black < 0.045 and 0.015 < white < 0.045  # about amount / 2 = 3% each
    assert ((out == 128).all(-1) | (out == 0).all(-1) | (out == 255).all(-1)).all()


def test_motion_blur_window_is_odd_and_centred() -> None:
    a = np.zeros((100, 100, 3), np.uint8)
    a[:, 50] = 255  # 6% of 100 px: a 6-pixel length, made odd: 7
    out = np.asarray(apply_transform("motion_blur", image_of(a))).astype(int)
    assert out.shape == a.shape
    lit = np.flatnonzero(out[0, :, 0])
    assert lit.tolist() == list(range(47, 54)) and (out[0, 47:54, 0] == round(255 / 7)).all()
