"""The procedural world: deterministic images of shapes with COCO-style boxes.

``load_synth_dataset(spec)`` builds a :class:`~vwbench.data.base.DatasetSplit` for one of the four
variants shaped like the paper's datasets (imagenet, dreambooth, coco, voc).
"""

from vwbench.data.synth.dataset import load_synth_dataset
from vwbench.data.synth.world import CATALOG, ObjectStyle, render_scene

__all__ = ["CATALOG", "ObjectStyle", "load_synth_dataset", "render_scene"]
