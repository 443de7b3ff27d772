"""``vwbench data prepare`` and ``vwbench data box``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vwbench.commands import TasksDir

data_app = typer.Typer(help="Real datasets: fix their split, box DreamBooth.", no_args_is_help=True)

Root = Annotated[Path, typer.Option("--root", help="Data root: the folder holding <subdir>/ of the dataset (what --data-root takes).")]


def _dataset_and_settings(tasks_dir: Path | None, dataset: str):
    from vwbench.registry import TaskRegistry

    registry = TaskRegistry.from_dir(tasks_dir)
    spec = registry.dataset(dataset)
    tasks = [t for t in registry.tasks() if t.dataset.name == spec.name]
    return registry, spec, tasks


@data_app.command("prepare")
def prepare_command(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name: coco, voc, imagenet or dreambooth.")],
    root: Root,
    images_per_concept: Annotated[Optional[int], typer.Option(min=1, help="Training images per concept (default: the tasks' setting, 8).")] = None,
    tasks_dir: TasksDir = None,
) -> None:
    """Select the 10 concepts' seeded training and held-out images and write the split's manifest."""
    from vwbench.data.prepare import prepare_dataset, replaced_settings

    _, spec, tasks = _dataset_and_settings(tasks_dir, dataset)
    n = images_per_concept or (tasks[0].hyperparameters.images_per_concept if tasks else 8)
    replaced = replaced_settings(spec, root, n)
    path, split = prepare_dataset(spec, root, n)
    if replaced is not None:
        was = replaced.get("images_per_concept")
        what = f"{was} training images per concept" if was != n else "other concepts or options"
        typer.echo(f"replaced the split prepared for {what}: runs with those settings now select it from the annotations each time "
                   "(the same seeded selection, without the check that its files are unchanged)", err=True)
    for concept in split.concept_names:
        held = sum(e.concept == concept for e in split.heldout)
        typer.echo(f"{concept}: {len(split.train_of(concept))} train, {held} held out")
    typer.echo(f"manifest {split.manifest.hash} ({len(split.manifest.entries)} files)")
    typer.echo(f"split: {path}")


@data_app.command("box")
def box_command(
    root: Root,
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="The DreamBooth dataset's name.")] = "dreambooth",
    out: Annotated[Optional[Path], typer.Option("--out", help="COCO file to write (default: the dataset's boxes file, boxes.json).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing boxes file (it may hold your reviewed boxes).")] = False,
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Folder of real checkpoints (or $VWBENCH_WEIGHTS).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    tasks_dir: TasksDir = None,
) -> None:
    """Box each DreamBooth photo with the detector prompted by its subject's name (a COCO file)."""
    from vwbench.data.dreambooth import boxes_path
    from vwbench.data.real import dataset_folder
    from vwbench.errors import UserError

    registry, spec, _ = _dataset_and_settings(tasks_dir, dataset)
    if spec.loader != "dreambooth":
        raise UserError(f"dataset {spec.name} has its own boxes; `vwbench data box` is for DreamBooth-style subject folders")
    folder = dataset_folder(spec, root)
    target = out or boxes_path(spec, folder)
    from vwbench.results.atomic import check_targets

    check_targets([target])  # a folder in the way is not "reviewed boxes": --force could not help
    if target.exists() and not force:
        raise UserError(f"{target} exists (it may hold reviewed boxes); pass --force to overwrite it or --out to write elsewhere")
    import torch

    from vwbench.data.boxing import box_subjects
    from vwbench.registry import resolve_checkpoint
    from vwbench.runner import load_resolved, resolve_device

    detector_spec = registry.models(spec.tier)["owlv2"]
    resolved = resolve_checkpoint(detector_spec.checkpoint, weights)
    dev = resolve_device(device)
    detector = load_resolved("owlv2", resolved, dev, torch.float16 if dev.type == "cuda" else torch.float32, detector_spec.checkpoint)
    payload = box_subjects(detector, folder, [c.name for c in spec.concepts], target)
    typer.echo(f"{len(payload['annotations'])} boxes for {len(payload['images'])} photos of {len(spec.concepts)} subjects by {resolved.name}: {target}")
    unboxed = len(payload["images"]) - len(payload["annotations"])
    if unboxed:
        typer.echo(f"{unboxed} photo(s) got no usable box: add their boxes by hand or they are left out")
    typer.echo("review them (delete or fix bad boxes), then run `vwbench data prepare`")
