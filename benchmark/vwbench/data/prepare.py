"""``vwbench data prepare``: fix a real dataset's split once and record it.

The selection (10 concepts x ``images_per_concept`` seeded training images and the held-out
images, each labelled by its largest box) is made from the raw annotation files and written with
its manifest (every selected file and its sha256) to ``<dataset folder>/vwbench_split.json``.
Later loads read that file instead of re-parsing the annotations and refuse to run when a listed
image, or an annotation file the selection was read from (also recorded there), has changed;
results cite the manifest's hash (``provenance.dataset_manifest_hash``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vwbench.data.base import DatasetSplit
from vwbench.data.real import SPLIT_FILE, dataset_folder, load_real_dataset, selection_settings, split_payload
from vwbench.errors import DataError, UserError
from vwbench.jsonio import read_json
from vwbench.registry.models import _import_target
from vwbench.results.atomic import write_file_set

SCANNERS: dict[str, str] = {
    "coco": "vwbench.data.coco:scan_coco",
    "voc": "vwbench.data.voc:scan_voc",
    "imagenet": "vwbench.data.imagenet:scan_imagenet",
    "dreambooth": "vwbench.data.dreambooth:scan_dreambooth",
}
"""Loader name -> the function that reads its on-disk format (real datasets only)."""

SOURCES: dict[str, str] = {
    "coco": "vwbench.data.coco:coco_sources",
    "voc": "vwbench.data.voc:voc_sources",
    "imagenet": "vwbench.data.imagenet:imagenet_sources",
    "dreambooth": "vwbench.data.dreambooth:dreambooth_sources",
}
"""Loader name -> the function that lists the annotation files its scanner reads (recorded in the
split file, which a run then checks them against)."""


def replaced_settings(spec: Any, root: Path, images_per_concept: int) -> dict[str, Any] | None:
    """The settings of the split file that preparing ``spec`` with ``images_per_concept`` would
    replace (another images-per-concept count, other concepts or options), or None where there
    is none or it has the same settings."""
    if spec.loader not in SCANNERS:
        return None  # prepare_dataset says why there is nothing to prepare
    try:
        settings = read_json(dataset_folder(spec, root) / SPLIT_FILE).get("settings")
    except (UserError, OSError, ValueError, AttributeError):
        return None  # no folder (prepare_dataset says so), no split file, or not readable: nothing a user would miss
    if not isinstance(settings, dict) or settings == selection_settings(spec, images_per_concept):
        return None
    return settings


def prepare_dataset(spec: Any, root: Path, images_per_concept: int) -> tuple[Path, DatasetSplit]:
    """Select the split from the raw files and write it (atomically); returns its path and split."""
    if spec.loader not in SCANNERS:
        raise DataError(f"dataset {spec.name} is built by the {spec.loader!r} loader, not read from disk; there is nothing to prepare")
    scan = _import_target(SCANNERS[spec.loader], f"dataset loader {spec.loader!r}")
    sources = _import_target(SOURCES[spec.loader], f"dataset loader {spec.loader!r}")
    split = load_real_dataset(spec, scan, images_per_concept=images_per_concept, data_root=root, use_prepared=False, sources=sources)
    split.validate(images_per_concept)  # every selected file decodes to its annotated size: a bad one stops here, not in a run
    path = dataset_folder(spec, root) / SPLIT_FILE
    text = json.dumps(split_payload(spec, split, images_per_concept), indent=2, sort_keys=True) + "\n"
    # as a file set: it also removes what a killed prepare left beside the split file
    write_file_set(
        {path: text.encode()}, "--root",
        unwritable_fix="the split file goes beside the dataset: make that folder writable, or leave the dataset unprepared (runs select the same split from its annotations each time)",
    )
    return path, split
