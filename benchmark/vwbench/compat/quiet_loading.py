"""Loading a transformers model from a local folder without its per-load progress bar.

transformers 5 draws a "Loading weights" tqdm bar on every ``from_pretrained``, including local
folders of a few megabytes; vwbench loads text towers and detectors many times per run, and the bars
interleave with its own progress display. The bar is switched off around the load and back on after,
so a user's own transformers downloads keep theirs. Where bars are off already (for instance
``HF_HUB_DISABLE_PROGRESS_BARS=1``) nothing changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from transformers.utils import logging as transformers_logging


@contextmanager
def no_weight_loading_bar() -> Iterator[None]:
    """Within the block, transformers draws no progress bars; the previous setting comes back after."""
    if not transformers_logging.is_progress_bar_enabled():
        yield
        return
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers_logging.enable_progress_bar()
