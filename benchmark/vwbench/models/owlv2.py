"""OWLv2 (transformers ``Owlv2ForObjectDetection``) behind the :class:`ConceptModel` interface.

Text side: "a photo of <word>" is tokenized with reserved word slots, the word's vectors are
spliced into the frozen token embeddings, and the text tower is run by hand (embeddings + positions
-> causal encoder -> final layer norm -> pooling at the known end-of-text position -> text
projection). transformers' text model takes no ``inputs_embeds`` and pools at ``argmax(input_ids)``,
which is why it is not called directly.

Image side: each image is padded to a square at the bottom/right with gray 0.5, resized to the
vision tower's size and normalized; the vision tower then gives, per patch ("region"), the class
embedding that queries are compared with (``class_head.dense0``), a box (normalized cxcywh in the
padded square), an objectness logit and the class head's logit shift and scale. None of this depends
on the word, so it is computed once per image and cached.

Detection loss (Table 1): ``w * cos(region, query)`` with ``w = -1`` for the region matching the
ground-truth box and ``+1`` for every other region, as ``-cos(target) + mean(cos(others))`` per image.
The mean keeps the target's term as heavy as all others together: with the plain sum over mini-owlv2's
16 regions, the best unit query (the loss is linear in it) points away from the average region and
scores mAP .011 on synth-coco and .009 on synth-voc, against .292 and .523 with the mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from vwbench.compat.torchvision_ops import ensure_torchvision_importable

ensure_torchvision_importable()

from transformers import CLIPTokenizer, Owlv2ForObjectDetection, Owlv2ImageProcessor  # noqa: E402
from vwbench.compat.causal_mask import run_causal_text_tower  # noqa: E402
from vwbench.compat.quiet_loading import no_weight_loading_bar  # noqa: E402

from vwbench.data.base import Example  # noqa: E402
from vwbench.errors import CheckpointNotFound, DataError  # noqa: E402
from vwbench.cache.features import image_key  # noqa: E402
from vwbench.models.base import (  # noqa: E402
    ConceptModel, EvalContext, Generators, TrainingData, Vocabulary, per_word_generators, sample_from_pool,
)
from vwbench.models.words import (  # noqa: E402
    SpecialIds,
    WordPrompt,
    build_text_prompts,
    build_word_prompt,
    pool_at,
    splice,
)
from vwbench.predictions import BoxPredictions, Predictions  # noqa: E402

# OWLv2 pads images to a square with gray (in [0, 1] pixel units), as the original scenic OWL-ViT /
# OWLv2 inference code does; transformers 5's Owlv2ImageProcessor pads with 0.0 (black), so on
# non-square images the stock processor's logits differ from these (by up to 3.8 on a 64x48 image)
PAD_VALUE = 0.5
DEFAULT_MAX_DETECTIONS = 100
IMAGE_BATCH_SIZE = 8


# --- boxes -------------------------------------------------------------------------------------


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """``[..., 4]`` center/size boxes -> corner boxes."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), dim=-1)


def pixels_to_padded(boxes: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Pixel ``xyxy`` boxes of a ``width x height`` image -> coordinates normalized by the side of
    its padded square, ``max(width, height)`` (padding is at the bottom/right, so no offset)."""
    return boxes / float(max(width, height))


def padded_to_pixels(boxes: torch.Tensor, width: int, height: int, clip: bool = True) -> torch.Tensor:
    """Inverse of :func:`pixels_to_padded`; ``clip`` keeps boxes inside the original image (a box
    may reach into the padding)."""
    out = boxes * float(max(width, height))
    if clip:
        limits = torch.tensor([width, height, width, height], dtype=out.dtype, device=out.device)
        out = torch.minimum(out.clamp(min=0), limits)
    return out


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU matrix ``[n, m]`` of ``xyxy`` boxes ``a [n, 4]`` and ``b [m, 4]``."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return inter / union.clamp(min=torch.finfo(union.dtype).tiny)


def select_target_region(pred_boxes: torch.Tensor, gt_box: torch.Tensor) -> int:
    """Index of the predicted box (normalized cxcywh ``[P, 4]``) with the highest IoU with one
    ground-truth box (``xyxy [4]`` in the same frame)."""
    iou = box_iou(cxcywh_to_xyxy(pred_boxes.float()), gt_box.float().reshape(1, 4))[:, 0]
    return int(iou.argmax())


def concept_box(example: Example) -> torch.Tensor:
    """Pixel ``xyxy`` of the largest box of the image's own concept (the object its label names)."""
    concept = example.concept
    best = max((a for a in example.annotations if a.category == concept), key=lambda a: a.area)
    return torch.tensor(best.xyxy(), dtype=torch.float32)


def gt_boxes_of(example: Example, category: str) -> torch.Tensor:
    """Pixel ``xyxy`` boxes ``[m, 4]`` of one category (``m`` may be 0)."""
    return torch.tensor(example.boxes_of(category), dtype=torch.float32).reshape(-1, 4)


# --- images ------------------------------------------------------------------------------------


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float ``[3, H, W]`` in ``[0, 1]``."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def pad_to_square(image: torch.Tensor, value: float = PAD_VALUE) -> torch.Tensor:
    """Pad ``[C, H, W]`` at the bottom and right to ``max(H, W)`` on both sides."""
    _, height, width = image.shape
    side = max(height, width)
    return F.pad(image, (0, side - width, 0, side - height), value=value)


@dataclass
class RegionFeatures:
    """The word-independent outputs of the vision side for one image with ``P`` regions."""

    class_embeds: torch.Tensor  # [P, Dq] class_head.dense0 of the image features (model dtype)
    boxes: torch.Tensor  # [P, 4] normalized cxcywh in the padded square, float32
    objectness: torch.Tensor  # [P] objectness logits, float32
    logit_shift: torch.Tensor  # [P] class head's logit shift, float32
    logit_scale: torch.Tensor  # [P] class head's logit scale (elu + 1 applied), float32
    width: int  # original image size (before padding)
    height: int

    @property
    def num_regions(self) -> int:
        return int(self.boxes.shape[0])

    def to_tensors(self) -> dict[str, torch.Tensor]:
        """The fields as named tensors (what the feature cache stores)."""
        fields = ("class_embeds", "boxes", "objectness", "logit_shift", "logit_scale")
        return {**{f: getattr(self, f) for f in fields}, "size": torch.tensor([self.width, self.height])}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> RegionFeatures:
        width, height = (int(v) for v in tensors["size"].tolist())
        fields = ("class_embeds", "boxes", "objectness", "logit_shift", "logit_scale")
        return cls(**{f: tensors[f].cpu() for f in fields}, width=width, height=height)


@dataclass
class Owlv2Prepared:
    """What :meth:`Owlv2Adapter.loss` needs from the training images, computed once.

    ``directions[i] = mean_{p != t} r_p - r_t`` over the unit region features ``r`` of image ``i``
    with target region ``t``: the per-image loss ``-cos(r_t, q) + mean_{p != t} cos(r_p, q)`` is
    linear in the unit query ``q``, so it equals ``directions[i] . q / |q|``.
    """

    concepts: list[str]
    image_indices: list[torch.Tensor]  # per concept: indices of its images (long, cpu)
    regions: list[RegionFeatures]  # per training image
    targets: torch.Tensor  # [N] index of the target region of each image (long, cpu)
    directions: torch.Tensor  # [N, Dq] float32, on the model's device


def loss_direction(class_embeds: torch.Tensor, target: int) -> torch.Tensor:
    """``mean_{p != target} r_p - r_target`` of the unit region features ``r`` (float32 ``[Dq]``)."""
    unit = F.normalize(class_embeds.float(), dim=-1)
    target_row = unit[target]
    n_others = unit.shape[0] - 1
    if n_others == 0:
        return -target_row
    return (unit.sum(0) - target_row) / n_others - target_row


# --- the adapter -------------------------------------------------------------------------------


class Owlv2Adapter(ConceptModel):
    """Open-vocabulary detection with OWLv2; words are text queries."""

    family = "owlv2"
    kind = "detection"

    def __init__(
        self,
        model: Owlv2ForObjectDetection,
        tokenizer: CLIPTokenizer,
        image_processor: Owlv2ImageProcessor,
    ) -> None:
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        parameter = next(model.parameters())
        self.device = parameter.device
        self.dtype = parameter.dtype
        self.image_batch_size = IMAGE_BATCH_SIZE
        text_config = model.config.text_config
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.special = SpecialIds(
            bos=tokenizer.bos_token_id,
            eos=tokenizer.eos_token_id,
            pad=pad,
            context_length=text_config.max_position_embeddings,
        )
        self._prompts: dict[int, WordPrompt] = {}
        self._region_cache: dict[str, RegionFeatures] = {}

    # --- loading and vocabulary ---

    @classmethod
    def from_pretrained(
        cls, path: Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> Owlv2Adapter:
        path = Path(path)
        if not (path / "config.json").is_file():
            raise CheckpointNotFound(
                f"no OWLv2 checkpoint at {path} (expected a transformers folder with config.json, "
                "weights, tokenizer and preprocessor_config.json)"
            )
        with no_weight_loading_bar():
            model = Owlv2ForObjectDetection.from_pretrained(path, dtype=dtype).to(device)
        tokenizer = CLIPTokenizer.from_pretrained(path)
        image_processor = Owlv2ImageProcessor.from_pretrained(path)
        return cls(model, tokenizer, image_processor)

    @property
    def text_model(self) -> torch.nn.Module:
        return self.model.owlv2.text_model

    @property
    def token_embedding(self) -> torch.nn.Embedding:
        return self.text_model.embeddings.token_embedding

    @property
    def embedding_dim(self) -> int:
        return int(self.model.config.text_config.hidden_size)

    @property
    def image_size(self) -> int:
        return int(self.model.config.vision_config.image_size)

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def vocabulary(self) -> Vocabulary:
        # Only the CLIP specials (start/end of text) are left out; OWLv2's pad token "!" is an
        # ordinary BPE entry that the other CLIP-vocabulary models keep.
        excluded = {self.tokenizer.bos_token_id, self.tokenizer.eos_token_id, self.tokenizer.unk_token_id}
        rows = self.token_embedding.num_embeddings
        pairs = sorted(
            (i, t) for t, i in self.tokenizer.get_vocab().items() if i not in excluded and i < rows
        )
        ids = torch.tensor([i for i, _ in pairs], dtype=torch.long)
        matrix = self.token_embedding.weight.detach()[ids.to(self.device)].to("cpu", torch.float32)
        return Vocabulary(tokens=[t for _, t in pairs], matrix=matrix)

    def token_vectors(self, words: Sequence[str]) -> torch.Tensor:
        """Float32 cpu rows ``[len(words), dim]`` of the input-embedding table."""
        ids = []
        for word in words:
            encoded = self._encode(word)
            if len(encoded) != 1:
                pieces = self.tokenizer.convert_ids_to_tokens(encoded)
                raise ValueError(f"{word!r} is not a single OWLv2 token (it tokenizes to {pieces})")
            ids.append(encoded[0])
        index = torch.tensor(ids, dtype=torch.long, device=self.device)
        return self.token_embedding.weight.detach()[index].to("cpu", torch.float32)

    # --- text side ---

    def word_prompt(self, n_vectors: int) -> WordPrompt:
        if n_vectors not in self._prompts:
            self._prompts[n_vectors] = build_word_prompt(self._encode, self.special, n_vectors)
        return self._prompts[n_vectors]

    def _text_queries(self, token_embeds: torch.Tensor, eos_positions: torch.Tensor | int) -> torch.Tensor:
        """Run the text tower on token embeddings ``[B, L, d]``; query embeddings ``[B, Dq]``.

        Mirrors ``Owlv2TextTransformer.forward`` except for the pooling position. Its attention
        is causal, so the positions after the last end-of-text position, which the pooled state
        never sees, are not computed."""
        length = int(eos_positions if isinstance(eos_positions, int) else eos_positions.max()) + 1
        hidden = run_causal_text_tower(self.text_model, token_embeds[:, :length])
        return self.model.owlv2.text_projection(pool_at(hidden, eos_positions))

    def encode_words(self, vectors: torch.Tensor) -> torch.Tensor:
        """Query embeddings ``[W, Dq]`` (float32) of "a photo of <word>" for ``vectors[W, n, d]``;
        differentiable in ``vectors``. These are what OWLv2 compares with region features."""
        if vectors.ndim != 3 or vectors.shape[-1] != self.embedding_dim:
            raise ValueError(
                f"word vectors must be [W, n, {self.embedding_dim}], got {tuple(vectors.shape)}"
            )
        prompt = self.word_prompt(int(vectors.shape[1]))
        ids = prompt.input_ids.to(self.device).expand(vectors.shape[0], -1)
        embeds = splice(self.token_embedding(ids), prompt.word_positions.to(self.device), vectors.to(self.device))
        return self._text_queries(embeds, prompt.eos_position).float()

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Query embeddings ``[N, Dq]`` (float32) of ordinary text prompts."""
        ids, eos_positions = build_text_prompts(self._encode, self.special, texts)
        ids = ids.to(self.device)
        return self._text_queries(self.token_embedding(ids), eos_positions).float()

    # --- image side ---

    def pixel_values(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """OWLv2 input ``[B, 3, S, S]``: gray square padding, then the processor's resize and
        normalization (its own padding, with black, is turned off)."""
        squares = [pad_to_square(image_to_tensor(image)) for image in images]
        size = {"height": self.image_size, "width": self.image_size}
        out = self.image_processor(
            images=squares, do_rescale=False, do_pad=False, size=size, return_tensors="pt"
        )
        return out["pixel_values"].to(self.device, self.dtype)

    @torch.no_grad()
    def _run_vision(self, images: Sequence[Image.Image]) -> list[RegionFeatures]:
        pixels = self.pixel_values(images)
        feature_map, _ = self.model.image_embedder(pixel_values=pixels)
        batch, grid_h, grid_w, width = feature_map.shape
        features = feature_map.reshape(batch, grid_h * grid_w, width)
        head = self.model.class_head
        class_embeds = head.dense0(features)
        shift = head.logit_shift(features)[..., 0].float()
        scale = (head.elu(head.logit_scale(features)) + 1)[..., 0].float()
        boxes = self.model.box_predictor(features, feature_map).float()
        objectness = self.model.objectness_predictor(features).float()
        return [
            RegionFeatures(
                class_embeds=class_embeds[i].cpu(),
                boxes=boxes[i].cpu(),
                objectness=objectness[i].cpu(),
                logit_shift=shift[i].cpu(),
                logit_scale=scale[i].cpu(),
                width=image.width,
                height=image.height,
            )
            for i, image in enumerate(images)
        ]

    def image_features(self, examples: Sequence[Example]) -> list[RegionFeatures]:
        """Region features of each example's image (cpu), running the vision tower in batches only
        for images not seen before (cached by image content)."""
        keys: list[str] = []
        todo: dict[str, Image.Image] = {}
        for example in examples:
            image = example.load_image()
            if (image.width, image.height) != (example.width, example.height):
                raise DataError(
                    f"image {example.image_id} is {image.width}x{image.height} but its annotations "
                    f"say {example.width}x{example.height}"
                )
            key = image_key(image)
            keys.append(key)
            if key not in self._region_cache:
                todo[key] = image
        def compute(images: list[Image.Image]) -> list[dict[str, torch.Tensor]]:
            rows: list[dict[str, torch.Tensor]] = []
            for start in range(0, len(images), self.image_batch_size):
                rows.extend(r.to_tensors() for r in self._run_vision(images[start : start + self.image_batch_size]))
            return rows

        pending = list(todo.items())
        rows = self.cached_image_side("regions", [image for _, image in pending], compute)
        for (key, _), row in zip(pending, rows):
            self._region_cache[key] = RegionFeatures.from_tensors(row)
        return [self._region_cache[key] for key in keys]

    def clear_image_cache(self) -> None:
        self._region_cache.clear()

    # --- training ---

    def prepare(self, data: TrainingData) -> Owlv2Prepared:
        regions = self.image_features(data.examples)
        targets = []
        for example, region in zip(data.examples, regions):
            gt = pixels_to_padded(concept_box(example), region.width, region.height)
            targets.append(select_target_region(region.boxes, gt))
        directions = torch.stack(
            [loss_direction(r.class_embeds, t) for r, t in zip(regions, targets)]
        ).to(self.device)
        image_indices = [
            torch.tensor(data.indices_of(c), dtype=torch.long) for c in range(len(data.concepts))
        ]
        return Owlv2Prepared(
            concepts=list(data.concepts),
            image_indices=image_indices,
            regions=regions,
            targets=torch.tensor(targets, dtype=torch.long),
            directions=directions,
        )

    @staticmethod
    def sample_batches(
        word_concepts: Sequence[int],
        prepared: Owlv2Prepared,
        generators: Generators,
        batch_size: int,
    ) -> torch.Tensor:
        """Training-image indices ``[W, batch_size]`` for each word, drawn from its concept's
        images with the word's own generator: without replacement when there are enough, with
        replacement otherwise."""
        rows = []
        for concept, generator in zip(word_concepts, per_word_generators(generators, len(word_concepts))):
            pool = prepared.image_indices[concept]
            rows.append(sample_from_pool(pool, batch_size, generator, f"concept {prepared.concepts[concept]!r}"))
        return torch.stack(rows)

    def loss(
        self,
        vectors: torch.Tensor,
        word_concepts: Sequence[int],
        prepared: Owlv2Prepared,
        generators: Generators,
        batch_size: int = 8,
    ) -> torch.Tensor:
        if len(word_concepts) != vectors.shape[0]:
            raise ValueError(f"{vectors.shape[0]} words but {len(word_concepts)} word concepts")
        batch = self.sample_batches(word_concepts, prepared, generators, batch_size).to(self.device)
        queries = F.normalize(self.encode_words(vectors), dim=-1)  # [W, Dq] float32
        mean_direction = prepared.directions[batch].mean(1)  # [W, Dq]
        return (mean_direction * queries).sum(-1)

    # --- evaluation ---

    def _score_chunk(self, regions: Sequence[RegionFeatures], queries: torch.Tensor) -> torch.Tensor:
        """Sigmoid scores ``[C, W, P]`` of unit queries ``[W, Dq]`` for ``C`` images, computed as
        ``Owlv2ClassPredictionHead`` does (its 1e-6 norm offset, logit shift and scale)."""
        embeds = torch.stack([r.class_embeds for r in regions]).to(self.device, torch.float32)
        embeds = embeds / (embeds.norm(dim=-1, keepdim=True) + 1e-6)
        shift = torch.stack([r.logit_shift for r in regions]).to(self.device)
        scale = torch.stack([r.logit_scale for r in regions]).to(self.device)
        logits = torch.einsum("cpd,wd->cwp", embeds, queries)
        logits = (logits + shift[:, None]) * scale[:, None]
        return torch.sigmoid(logits)

    @torch.no_grad()
    def predict(
        self,
        vectors: torch.Tensor,
        word_concepts: Sequence[int],
        heldout: Sequence[Example],
        ctx: EvalContext,
    ) -> list[Predictions]:
        """Top-scoring boxes of each word on every held-out image. ``ctx.progress`` counts
        held-out images scored (for all words at once)."""
        if len(word_concepts) != vectors.shape[0]:
            raise ValueError(f"{vectors.shape[0]} words but {len(word_concepts)} word concepts")
        outside = [c for c in word_concepts if not 0 <= c < len(ctx.concepts)]
        if outside:
            raise ValueError(f"word concept index {outside[0]} is not one of the {len(ctx.concepts)} concepts (0..{len(ctx.concepts) - 1})")
        max_detections = int(ctx.options.get("max_detections", DEFAULT_MAX_DETECTIONS))
        targets = [ctx.concepts[c] for c in word_concepts]
        queries = self.encode_words(vectors)
        queries = queries / (queries.norm(dim=-1, keepdim=True) + 1e-6)
        regions = self.image_features(heldout)
        out = [BoxPredictions(target=t, boxes=[], scores=[], gt_boxes=[]) for t in targets]
        chunk_size = max(1, ctx.batch_size)
        for start in range(0, len(regions), chunk_size):
            chunk = regions[start : start + chunk_size]
            scores = self._score_chunk(chunk, queries).cpu()  # [C, W, P]
            k = min(max_detections, scores.shape[-1])
            top_scores, top_index = scores.topk(k, dim=-1)
            for c, region in enumerate(chunk):
                example = heldout[start + c]
                boxes = padded_to_pixels(
                    cxcywh_to_xyxy(region.boxes), region.width, region.height
                )  # [P, 4]
                for w, prediction in enumerate(out):
                    prediction.boxes.append(boxes[top_index[c, w]])
                    prediction.scores.append(top_scores[c, w])
                    prediction.gt_boxes.append(gt_boxes_of(example, prediction.target))
            if ctx.progress is not None:
                ctx.progress(len(chunk))
        result: list[Predictions] = list(out)
        return result
