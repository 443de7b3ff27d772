"""The pydantic schema on its own: pins, model specs, concepts, settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vwbench.errors import UserError
from vwbench.registry import ADAPTERS, DATASET_LOADERS, CheckpointPin, ConceptSpec, EvalSettings, ModelSpec, adapter_class, dataset_loader
from vwbench.registry.schema import FAMILIES, FAMILY_KIND


def test_a_pin_needs_exactly_one_source() -> None:
    with pytest.raises(ValidationError, match="exactly one of 'hf_id' or 'path'"):
        CheckpointPin()
    with pytest.raises(ValidationError, match="exactly one"):
        CheckpointPin(hf_id="a/b", path="zoo/x")
    with pytest.raises(ValidationError, match="'revision' applies to 'hf_id'"):
        CheckpointPin(path="zoo/x", revision="main")
    with pytest.raises(ValidationError, match="org/name"):
        CheckpointPin(hf_id="no-slash")
    with pytest.raises(ValidationError, match="Extra inputs"):
        CheckpointPin(hf_id="a/b", revison="main")


def test_pinned() -> None:
    assert CheckpointPin(hf_id="a/b", revision="0" * 40).pinned
    assert not CheckpointPin(hf_id="a/b", revision="main").pinned
    assert not CheckpointPin(hf_id="a/b").pinned
    assert CheckpointPin(path="zoo/x", manifest="manifest.json").pinned
    assert not CheckpointPin(path="/abs/x").pinned
    assert CheckpointPin(hf_id="a/b").display == "a/b@main"


def test_model_spec_kind_and_metric_follow_the_family() -> None:
    pin = {"path": "zoo/x"}
    for family in FAMILIES:
        spec = ModelSpec(family=family, checkpoint=pin)
        assert spec.kind == FAMILY_KIND[family]
    assert ModelSpec(family="owlv2", checkpoint=pin).metric == "map"
    assert ModelSpec(family="owlv2", checkpoint=pin, metric="map50").metric == "map50"
    with pytest.raises(ValidationError, match="is a detection model"):
        ModelSpec(family="owlv2", kind="generation", checkpoint=pin)
    with pytest.raises(ValidationError, match="does not score generation models"):
        ModelSpec(family="sd", checkpoint=pin, metric="map")


def test_concepts_from_names_or_mappings() -> None:
    assert ConceptSpec.model_validate("dog") == ConceptSpec(name="dog", init_word="dog")
    c = ConceptSpec.model_validate({"name": "sombrero", "init_word": "hat"})
    assert c.anchor == "hat" and c.to_concept().anchor == "hat"
    assert ConceptSpec(name="x", init_word="y", anchor_word="z").anchor == "z"


def test_the_prompt_is_not_a_setting() -> None:
    """Every model trains, evaluates and judges with the protocol's prompt; a task that sets one
    is refused rather than silently ignored."""
    with pytest.raises(ValidationError, match="prompt"):
        EvalSettings(prompt="a photo of {} in a pond")


def test_specs_are_immutable() -> None:
    spec = ModelSpec(family="sd", checkpoint={"path": "zoo/x"})
    with pytest.raises(ValidationError):
        spec.metric = "map"  # type: ignore[misc]


def test_adapter_and_loader_names() -> None:
    assert set(ADAPTERS) == set(FAMILIES)
    with pytest.raises(UserError, match="unknown model family 'owl'; did you mean 'owlv2'"):
        adapter_class("owl")
    with pytest.raises(UserError, match="unknown dataset loader 'synt'; did you mean 'synth'"):
        dataset_loader("synt")
    assert "synth" in DATASET_LOADERS


def test_dataset_loader_imports_lazily() -> None:
    from vwbench.data.synth import load_synth_dataset

    assert dataset_loader("synth") is load_synth_dataset


def test_a_loader_that_is_not_written_yet_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(DATASET_LOADERS, "later", "vwbench.data.not_written_yet:load")
    with pytest.raises(UserError, match="cannot be imported"):
        dataset_loader("later")
    monkeypatch.setitem(DATASET_LOADERS, "later", "vwbench.errors:no_such_function")
    with pytest.raises(UserError, match="has no 'no_such_function'"):
        dataset_loader("later")
