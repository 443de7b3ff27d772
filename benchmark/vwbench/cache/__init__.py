"""On-disk caches of what never depends on a word (frozen image-side features)."""

from vwbench.cache.features import FeatureCache, image_key

__all__ = ["FeatureCache", "image_key"]
