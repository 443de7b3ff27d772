"""Datasets: images with COCO-style boxes, a concept label per image, and a manifest."""

from vwbench.data.base import Annotation, Concept, DatasetSplit, Example, Manifest

__all__ = ["Annotation", "Concept", "DatasetSplit", "Example", "Manifest"]
