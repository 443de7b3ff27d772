"""`vwbench data box` with a stub detector whose boxes and scores are chosen by hand: the best
*usable* box is kept (at least 1 x 1 pixels once clipped to the photo, in both directions), its
COCO bbox is [x, y, width, height] in photo pixels, a photo with no usable box is listed unboxed,
and the prompt drops only a trailing instance number."""

from __future__ import annotations

import json
from types import SimpleNamespace as NS

import pytest
import torch
from PIL import Image

from vwbench.data.boxing import box_subjects, subject_prompt

# padded-square coordinates (cx, cy, w, h) of a 100 x 50 photo: the square's side is 100 px
IN_PADDING = [0.5, 0.7, 0.4, 0.2]  # y 60..80 px: below the photo, clipped to nothing
FLAT = [0.6, 0.2, 0.2, 0.004]  # 20 px wide, 0.4 px high
GOOD = [0.3, 0.2, 0.2, 0.2]  # x 20..40, y 10..30


class StubDetector:
    def __init__(self, per_image: list[list[tuple[list[float], float]]]) -> None:
        self.per_image = per_image  # per photo, in order: [(box, score), ...]
        self.prompts: list[str] = []

    def encode_texts(self, prompts: list[str]) -> torch.Tensor:
        self.prompts += prompts
        return torch.ones(1, 4)

    def image_features(self, examples):
        self.batch = [self.per_image.pop(0) for _ in examples]
        return [NS(boxes=torch.tensor([b for b, _ in regions]), width=e.width, height=e.height) for e, regions in zip(examples, self.batch)]

    def _score_chunk(self, regions, query) -> torch.Tensor:
        return torch.tensor([[[s for _, s in regions]] for regions in self.batch])  # [images, queries, regions]


def photos(root, subject: str, n: int) -> None:
    (root / subject).mkdir(parents=True)
    for i in range(n):
        Image.new("RGB", (100, 50), (90, 90, 90)).save(root / subject / f"{i:02d}.png")


def test_best_usable_box_in_pixels(tmp_path) -> None:
    photos(tmp_path, "cat2", 2)
    photos(tmp_path, "duck_toy", 1)
    detector = StubDetector([
        [(IN_PADDING, 0.9), (FLAT, 0.7), (GOOD, 0.5)],  # the two better-scored boxes have no area
        [(IN_PADDING, 0.8), (FLAT, 0.6), (IN_PADDING, 0.1)],  # nothing usable: listed without a box
        [(GOOD, 0.123456)],
    ])
    out = tmp_path / "boxes.json"
    payload = box_subjects(detector, tmp_path, ["cat2", "duck_toy"], out)
    assert json.loads(out.read_text()) == payload
    assert detector.prompts == ["a photo of cat", "a photo of duck toy"]
    assert [(i["id"], i["file_name"], i["width"], i["height"]) for i in payload["images"]] == [
        (1, "cat2/00.png", 100, 50), (2, "cat2/01.png", 100, 50), (3, "duck_toy/00.png", 100, 50),
    ]
    anns = payload["annotations"]
    assert [(a["id"], a["image_id"], a["category_id"]) for a in anns] == [(1, 1, 1), (2, 3, 2)]
    assert anns[0]["bbox"] == pytest.approx([20.0, 10.0, 20.0, 20.0]) and anns[0]["area"] == pytest.approx(400.0)
    assert anns[0]["score"] == 0.5 and anns[1]["score"] == 0.1235
    assert payload["categories"] == [{"id": 1, "name": "cat2"}, {"id": 2, "name": "duck_toy"}]


@pytest.mark.parametrize(("subject", "prompt"), [("cat2", "cat"), ("duck_toy", "duck toy"), ("r2d2", "r2d"), ("dog", "dog"), ("42", "42")])
def test_subject_prompt_drops_only_a_trailing_number(subject, prompt) -> None:
    assert subject_prompt(subject) == prompt
