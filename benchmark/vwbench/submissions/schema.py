"""The three submission formats, as pydantic models (their JSON schemas are generated from these).

* **linear map** (``*.safetensors``): tensors ``weight [d_target, d_source]`` and optionally
  ``bias [d_target]``; ``__metadata__`` is :class:`LinearMapMeta`. A source vector ``y`` maps to
  ``weight @ y + bias``.
* **embeddings** (``*.safetensors``): one tensor per concept, named by the concept,
  ``[n_vectors, d]`` (one word) or ``[trials, n_vectors, d]``; ``__metadata__`` is
  :class:`EmbeddingsMeta`.
* **transfer method** (a folder): ``submission.yaml`` (:class:`SubmissionManifest`) and the Python
  file it names, holding a class with ``fit(source, target, tokens)`` and ``map(vectors)``.

safetensors metadata values are strings, so list-valued fields are JSON-encoded strings there.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)
HASH_PATTERN = r"^[0-9a-f]{64}$"
LINEAR_FORMAT = "vwbench.linear/1"
EMBEDDINGS_FORMAT = "vwbench.embeddings/1"
Family = Literal["sd", "owlv2", "clip"]


def check_name(value: str) -> str:
    if not _NAME.fullmatch(value):  # not match: its $ also matches before a final newline
        raise ValueError(
            "a submission name is 1-64 characters: letters, digits, '.', '_', '+', '-', starting with a letter or digit"
        )
    from vwbench.leaderboard.build import IN_DOMAIN
    from vwbench.transfer import TRANSFER_METHODS

    if value in TRANSFER_METHODS:
        raise ValueError(f"{value!r} is the name of a built-in transfer method; pick another name")
    if value == IN_DOMAIN:
        raise ValueError(f"{value!r} is the leaderboards' name for in-domain words (their ceiling rows); pick another name")
    return value


class _About(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="Identifies the submission in results and leaderboards.", json_schema_extra={"pattern": NAME_PATTERN})  # check_name enforces it, in words
    description: str | None = Field(default=None, max_length=2000)
    authors: str | None = Field(default=None, max_length=500, description="Comma-separated.")
    url: str | None = Field(default=None, max_length=500)
    license: str | None = Field(default=None, max_length=100)

    _name = field_validator("name")(classmethod(lambda cls, v: check_name(v)))


class LinearMapMeta(_About):
    """``__metadata__`` of a linear-map submission: one ordered model pair, pinned by vocabulary."""

    format: Literal["vwbench.linear/1"] = Field(description="Format tag.")
    source: Family = Field(description="Family of the model whose words are mapped.")
    target: Family = Field(description="Family of the model they are mapped into.")
    source_vocab_hash: str = Field(pattern=HASH_PATTERN, description="Vocabulary.hash() of the source model's embedding table.")
    target_vocab_hash: str = Field(pattern=HASH_PATTERN, description="Vocabulary.hash() of the target model's embedding table.")


class EmbeddingsMeta(_About):
    """``__metadata__`` of an embeddings submission: trained words in one model's space."""

    format: Literal["vwbench.embeddings/1"] = Field(description="Format tag.")
    model: Family = Field(description="Family of the model whose input-embedding space the words live in.")
    vocab_hash: str = Field(pattern=HASH_PATTERN, description="Vocabulary.hash() of that model's embedding table.")
    dataset: str = Field(min_length=1, max_length=100, description="Dataset the concepts belong to, e.g. synth-coco.")


class SubmissionManifest(BaseModel):
    """``submission.yaml`` of a transfer-method submission."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str = Field(description="Identifies the submission in results and leaderboards.", json_schema_extra={"pattern": NAME_PATTERN})  # check_name enforces it, in words
    authors: list[str] = Field(min_length=1, description="Who wrote it.")
    description: str = Field(min_length=1, max_length=2000)
    url: str | None = Field(default=None, max_length=500)
    license: str = Field(min_length=1, max_length=100, description="SPDX identifier, e.g. Apache-2.0.")
    entry: str = Field(default="transfer.py", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\.py$", description="Python file in the submission folder.")
    class_name: str = Field(default="Transfer", alias="class", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Class in that file.")

    _name = field_validator("name")(classmethod(lambda cls, v: check_name(v)))

    @field_validator("authors")
    @classmethod
    def _authors(cls, value: list[str]) -> list[str]:
        if any(not a.strip() or len(a) > 200 for a in value):
            raise ValueError("each author is a non-empty name of at most 200 characters")
        return value


TENSORS_DOC: dict[str, dict[str, Any]] = {
    "linear-map": {
        "weight": {"shape": ["d_target", "d_source"], "dtype": ["F16", "BF16", "F32", "F64"], "required": True},
        "bias": {"shape": ["d_target"], "dtype": ["F16", "BF16", "F32", "F64"], "required": False},
    },
    "embeddings": {
        "<concept name>": {"shape": [["n_vectors", "d"], ["trials", "n_vectors", "d"]], "dtype": ["F16", "BF16", "F32", "F64"], "required": "one per concept of the dataset"},
    },
}


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON schema of each format (what ``submissions/schemas/*.schema.json`` hold)."""
    out = {}
    for key, model, title in (
        ("linear-map", LinearMapMeta, "safetensors __metadata__ of a linear-map submission"),
        ("embeddings", EmbeddingsMeta, "safetensors __metadata__ of an embeddings submission"),
        ("submission", SubmissionManifest, "submission.yaml of a transfer-method submission"),
    ):
        schema = model.model_json_schema(by_alias=True)
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["title"] = title
        if key in TENSORS_DOC:
            schema["x-vwbench-tensors"] = TENSORS_DOC[key]
        out[key] = schema
    return out
