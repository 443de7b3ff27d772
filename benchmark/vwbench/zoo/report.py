"""``vwbench zoo report``: the mini zoo's card, ``leaderboards/mini/zoo.md``.

Everything in it is read from what the checkpoints carry (``training_log.json``, ``samples.png``,
``manifest.json``) plus a fresh look at the world: one sample image per synthetic dataset. Curves
are drawn with matplotlib into ``zoo/*.png`` next to the markdown. Quality numbers are the ones
the training log recorded when the checkpoint was made, or, with ``measured`` (``vwbench zoo
report --measure``), the ones ``vwbench zoo check`` measures now on the current datasets, which
also go to ``zoo/quality.json``. Where a leaderboard (``leaderboard.json``) lies beside the card, the
in-domain words' numbers are set against the tier's targets too.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from vwbench.errors import UserError
from vwbench.jsonio import read_json
from vwbench.leaderboard.build import read_leaderboard
from vwbench.results.atomic import atomic_write_bytes
from vwbench.zoo.build import ENTRIES, ZOO_DIR, entry_folder, require_built

CLIP_MODELS = ("mini-clip", "mini-judge", "mini-sd-text")  # open_clip models: zero-shot accuracy per dataset
SYNTH_VARIANTS = {"synth-imagenet": "imagenet", "synth-dreambooth": "dreambooth", "synth-coco": "coco", "synth-voc": "voc"}


def _curves(log: Any, prefix: str = "") -> dict[str, list[list[float]]]:
    """Every ``[[step, value], ...]`` list in a training log, keyed by its dotted path."""
    found: dict[str, list[list[float]]] = {}
    if isinstance(log, dict):
        for key, value in log.items():
            found.update(_curves(value, f"{prefix}.{key}" if prefix else key))
    elif isinstance(log, list) and log and all(isinstance(p, list) and len(p) == 2 for p in log):
        found[prefix] = log
    return found


def _plot_curves(name: str, curves: dict[str, list[list[float]]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted(curves)
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    for ax, key in zip(axes.flat, panels):
        steps, values = zip(*curves[key])
        ax.plot(steps, values, lw=1.2)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"{name}: training curves", fontsize=11)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(out, buffer.getvalue(), phase="zoo-image")  # a full disk: one line, no temp file left


def _world_samples(out: Path, per_dataset: int = 6) -> None:
    """A strip of held-out images of each synthetic dataset, with their boxes."""
    from PIL import Image, ImageDraw

    from vwbench.data.synth import load_synth_dataset
    from vwbench.registry import TaskRegistry

    registry = TaskRegistry.from_dir(None)
    tiles = []
    for dataset in SYNTH_VARIANTS:
        split = load_synth_dataset(registry.dataset(dataset), images_per_concept=0)
        step = max(1, len(split.heldout) // per_dataset)
        row = []
        for example in split.heldout[::step][:per_dataset]:
            image = example.load_image().convert("RGB").resize((128, 128), Image.Resampling.NEAREST)
            draw = ImageDraw.Draw(image)
            scale = 128 / example.width
            for a in example.annotations:
                x, y, w, h = (v * scale for v in a.bbox)
                draw.rectangle([x, y, x + w, y + h], outline=(255, 255, 255) if a.category == example.concept else (0, 0, 0))
            row.append(image)
        tiles.append((dataset, row))
    sheet = Image.new("RGB", (128 * per_dataset + 130, 132 * len(tiles)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (dataset, row) in enumerate(tiles):
        draw.text((4, 132 * r + 60), dataset, fill=(0, 0, 0))
        for c, image in enumerate(row):
            sheet.paste(image, (130 + 128 * c, 132 * r))
    buffer = io.BytesIO()
    sheet.save(buffer, format="png")
    atomic_write_bytes(out, buffer.getvalue(), phase="zoo-image")


def _size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


def _share(value: float | None) -> str:
    """A share in [0, 1] for a table cell; "not measured" where an older record lacks it."""
    return "not measured" if value is None else f"{value:.3f}"


def _quality_lines(name: str, quality: Any) -> list[str]:
    quality = quality or {}
    if not quality or isinstance(quality, str):
        return [f"- quality: {quality or 'not recorded'}"]
    lines = []
    if name in CLIP_MODELS:
        lines.append("| dataset | zero-shot accuracy |\n|---|---|")
        lines += [f"| {k} | {v:.3f} |" for k, v in quality.items()]
    elif name == "mini-owlv2":
        lines.append(
            "| dataset | mAP | mAP@.5 | boxes a region covers (IoU >= .5) |\n|---|---|---|---|"
        )
        lines += [
            f"| {k} | {v['map']:.3f} | {v['map50']:.3f} | {_share(v.get('region_recall50'))} |"
            for k, v in quality.get("datasets", {}).items()
        ]
        lines.append(
            "\nThe last column is the share of the held-out ground-truth boxes that at least one box the "
            "detector proposes on the image (one per image patch, the same for every query) overlaps at "
            "IoU >= .5: the ceiling of its mAP@.5, whatever the scores."
        )
    elif name == "mini-sd":
        lines.append("| dataset | judge accuracy of 'a photo of {name}' |\n|---|---|")
        lines += [f"| {k} | {v['accuracy']:.3f} |" for k, v in quality.get("datasets", {}).items()]
    return lines


# What the mini tier aims for (issue "The mini zoo"), as (dataset, minimum) per model; the card
# shows the measured value next to each.
TARGETS: dict[str, tuple[tuple[str, ...], float, str]] = {
    "mini-clip": (tuple(SYNTH_VARIANTS), 0.90, "zero-shot accuracy"),
    "mini-judge": (tuple(SYNTH_VARIANTS), 0.95, "zero-shot accuracy on real held-out images"),
    "mini-owlv2": (("synth-coco", "synth-voc"), 0.70, "mAP@.5, class names as queries"),
    "mini-sd": (tuple(SYNTH_VARIANTS), 0.80, "judge accuracy of 'a photo of {name}'"),
}


def _measured(name: str, quality: Any, dataset: str) -> float | None:
    if not isinstance(quality, dict):
        return None
    if name in CLIP_MODELS:
        return quality.get(dataset)
    entry = (quality.get("datasets") or {}).get(dataset) or {}
    return entry.get("map50") if name == "mini-owlv2" else entry.get("accuracy")


def _shown_against(value: float, minimum: float) -> str:
    """``value`` to 3 decimals, or to as many more as it takes for the shown number to sit on the
    same side of ``minimum`` as the value (0.8999 against 0.90 shows 0.8999, not 0.900)."""
    for decimals in range(3, 10):
        shown = f"{value:.{decimals}f}"
        if (float(shown) >= minimum) == (value >= minimum):
            return shown
    return repr(value)


def _target_lines(logs: dict[str, dict]) -> list[str]:
    lines = ["| model | measure | dataset | target | measured | met |", "|---|---|---|---|---|---|"]
    for name, (datasets, minimum, measure) in TARGETS.items():
        for dataset in datasets:
            value = _measured(name, (logs.get(name) or {}).get("quality"), dataset)
            shown = "not measured" if value is None else _shown_against(value, minimum)
            met = "" if value is None else ("yes" if value >= minimum else "**no**")
            lines.append(f"| {name} | {measure} | {dataset} | >= {minimum:.2f} | {shown} | {met} |")
    return lines


# What the mini tier aims for with in-domain words (x->x, default settings), by the target's metric.
WORD_TARGETS: dict[str, float] = {"generation_accuracy": 0.80, "map": 0.50, "classification_accuracy": 0.80}
WORD_MEASURES = {"generation_accuracy": "generation accuracy", "map": "detection mAP", "classification_accuracy": "classification accuracy"}


def _mean_into(cells: dict, target: str, sources: list[str]) -> float | None:
    """The mean of a grid's ``source -> target`` values over ``sources``; ``None`` unless every
    source has one (a floor over other sources would not compare)."""
    values = [(cells.get(s, {}).get(target) or {}).get("value") for s in sources]
    return sum(values) / len(values) if values and None not in values else None


def _fmt_or_dash(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _default_grid(dataset: dict) -> dict:
    """The dataset's grid for the default cross-model transfer (lstsq), else its first."""
    grids = dataset.get("grids") or [{}]
    return next((g for g in grids if g.get("method") == "lstsq"), grids[0])


def _word_lines(board: dict) -> list[str]:
    """The in-domain words of a mini leaderboard against :data:`WORD_TARGETS`, then how much of the
    in-domain value the lstsq-transferred words keep, per dataset and target model."""
    results = board.get("results", {})
    targets = ["| words | measure | dataset | target | measured [95% CI] | met |", "|---|---|---|---|---|---|"]
    transfer = ["| dataset | target | in-domain | transferred in (lstsq, mean over sources) | share of in-domain | random floor | share above the floor |",
                "|---|---|---|---|---|---|---|"]
    for name, dataset in board.get("datasets", {}).items():
        cells = _default_grid(dataset).get("cells", {})
        floor_cells = next((g for g in dataset.get("grids") or [] if g.get("method") == "random"), {}).get("cells", {})
        for target in cells:
            own = results.get((cells.get(target, {}).get(target) or {}).get("result", "")) or {}
            metric, value = own.get("metric"), own.get("value")
            if metric is None or value is None:
                continue
            low, high = own.get("ci95") or (value, value)
            extra = own.get("secondary_metrics", {}).get("map50")
            shown = f"{value:.3f} [{low:.3f}, {high:.3f}]" + (f" (mAP@.5 {extra:.3f})" if extra is not None else "")
            minimum = WORD_TARGETS.get(metric)
            met = "" if minimum is None else ("yes" if value >= minimum else "**no**")
            bound = "" if minimum is None else f">= {minimum:.2f}"
            targets.append(f"| {target}->{target} | {WORD_MEASURES.get(metric, metric)} | {name} | {bound} | {shown} | {met} |")
            moved = [cells[s][target].get("value") for s in cells if s != target and target in cells[s]]
            moved = [v for v in moved if v is not None]
            if moved:
                mean = sum(moved) / len(moved)
                share = f"{mean / value:.0%}" if value > 0 else "-"
                floor = _mean_into(floor_cells, target, [s for s in cells if s != target and target in cells[s]])
                above = f"{(mean - floor) / (value - floor):.0%}" if floor is not None and value > floor else "-"
                transfer.append(f"| {name} | {target} | {value:.3f} | {mean:.3f} ({len(moved)}) | {share} | {_fmt_or_dash(floor)} | {above} |")
    return [
        "## In-domain words against the mini tier's targets",
        "",
        "Read from the leaderboard beside this page (`leaderboard.json`, written by `vwbench leaderboard`).",
        "Detection is scored by COCO mAP over IoU .50:.95 (mAP@.5 in brackets).",
        "",
        *targets,
        "",
        "Transferred words keep this share of the in-domain value on the same target. A metric's floor is",
        "not 0 (a random map into mini-clip scores 0.55 to 0.73: see `classification_accuracy`), so the",
        "last column measures both against the `random` map's mean from the same sources instead:",
        "",
        *transfer,
        "",
    ]


def _read_log(log_file: Path, name: str) -> dict:
    """A checkpoint's training log; a damaged one is a one-line :class:`UserError`."""
    try:
        log = read_json(log_file)
    except (OSError, ValueError) as exc:
        raise UserError(f"{log_file}: not a readable training log ({type(exc).__name__}: {str(exc)[:120]}); restore it, "
                        f"or rebuild with `vwbench zoo train --only {name}`") from None
    if not isinstance(log, dict):
        raise UserError(f"{log_file}: not a training log (a JSON object); restore it, or rebuild with `vwbench zoo train --only {name}`")
    return log


def _recorded_by_another(root: Path, name: str) -> tuple[str, dict] | None:
    """The record of unshipped model ``name`` that a shipped model trained on it keeps in its own
    training log (mini-sd's ``text_tower`` for mini-sd-text), as (that model, record)."""
    for owner, entry in ENTRIES.items():
        if owner == name or not entry.shipped:
            continue
        log_file = entry_folder(root, owner) / "training_log.json"
        if not log_file.is_file():
            continue
        for value in _read_log(log_file, owner).values():
            if isinstance(value, dict) and value.get("folder") == name and isinstance(value.get("zero_shot_accuracy"), dict):
                return owner, value
    return None


def _previous_quality(path: Path) -> dict[str, Any]:
    """The quality numbers stored beside the previous card (``zoo/quality.json``), if readable."""
    try:
        data = read_json(path)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _previous_card(out_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """From the card already at ``out_dir/zoo.md``: each model's checkpoints-table row and its
    section, as written where that model was built (so a machine without an unshipped model's
    build keeps what the card said of it instead of dropping it)."""
    try:
        text = (Path(out_dir) / "zoo.md").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}, {}
    rows, sections = {}, {}
    for name in ENTRIES:
        row = next((line for line in text.splitlines() if line.startswith(f"| {name} |")), None)
        marker = f"\n## {name}\n"
        if row is None or marker not in text:
            continue
        section = text.split(marker, 1)[1].split("\n## ", 1)[0]
        if "Not built" not in section:  # only what a build wrote
            rows[name], sections[name] = row, f"## {name}\n{section}".rstrip("\n")
    return rows, sections


def _wall_time(log: dict) -> str:
    for key in ("wall_s", "wall_time_s", "phases_wall_s"):
        value = log.get(key)
        if isinstance(value, dict):
            total = value.get("total") or value.get("total_s")
            if total is not None:
                return f"{float(total) / 60:.1f} min"
    return "not recorded"


def write_zoo_report(
    out_dir: Path,
    root: Path = ZOO_DIR,
    names: Iterable[str] | None = None,
    measured: dict[str, Any] | None = None,
    board: Path | None = None,
) -> Path:
    """Write ``out_dir/zoo.md`` and its images (``out_dir/zoo/``); returns the markdown path.
    ``measured`` (model -> quality numbers, as :func:`vwbench.zoo.build.check_zoo` returns them)
    replaces the quality numbers of the training logs. ``board`` (default: ``out_dir/leaderboard.json``
    where it exists) adds the in-domain words' numbers against the tier's targets."""
    out_dir = Path(out_dir)
    root = require_built(root)
    board = Path(board) if board is not None else out_dir / "leaderboard.json"
    board_data = read_leaderboard(board, str(board)) if board.is_file() else None
    names = list(names or ENTRIES)
    for name in ENTRIES:  # every log is read before anything is written: a damaged one leaves no half-written card
        log_file = entry_folder(root, name) / "training_log.json"
        if log_file.is_file():
            _read_log(log_file, name)
    assets = out_dir / "zoo"
    previous_rows, previous_sections = _previous_card(out_dir)
    previous_quality = _previous_quality(assets / "quality.json")
    assets.mkdir(parents=True, exist_ok=True)
    if measured is not None:
        source = [
            "procedural world by `vwbench zoo train` and shipped inside the package. Sizes, times and",
            "curves are read from each checkpoint's own `training_log.json`; the quality numbers were",
            "measured by `vwbench zoo check` on the current datasets when this page was written",
            "(`vwbench zoo report --measure`; also in `zoo/quality.json`).",
        ]
        kept = {n: q for n, q in previous_quality.items() if n not in measured and n in previous_sections}  # not built here
        merged = {**measured, **kept}
        ordered = {n: merged[n] for n in ENTRIES if n in merged} | merged  # the zoo's order, as the card's
        atomic_write_bytes(assets / "quality.json", (json.dumps(ordered, indent=2, default=str) + "\n").encode())
    else:
        source = [
            "procedural world by `vwbench zoo train` and shipped inside the package. Every number below is",
            "read from the checkpoint's own `training_log.json` (regenerate this page with",
            "`vwbench zoo report`).",
        ]
    sections: list[str] = [
        "# The mini zoo",
        "",
        "Small models of the three real architectures (and a judge), trained from scratch on the",
        *source,
        "",
        "## The world",
        "",
        "Held-out images of the four synthetic datasets (white box: the image's concept).",
        "",
        "![world](zoo/world.png)",
        "",
    ]
    _world_samples(assets / "world.png")
    total_mb = 0.0
    logs: dict[str, dict] = {}
    summary = ["| model | parameters | size (MB) | training time | torch threads |", "|---|---|---|---|---|"]
    for name in names:
        folder = entry_folder(root, name)
        log_file = folder / "training_log.json"
        if not log_file.is_file() and not ENTRIES[name].shipped and name in previous_sections:
            # not built on this machine: keep what the card said where it was built
            summary.append(previous_rows[name])
            sections += [previous_sections[name], ""]
            continue
        if not log_file.is_file():
            sections += [f"## {name}", "", f"Not built: `vwbench zoo train --only {name}`.", ""]
            recorded = _recorded_by_another(root, name)
            if recorded is not None:
                owner, record = recorded
                summary.append(f"| {name} | ? | not built here (not shipped) | {_wall_time(record)} | ? |")
                sections += [
                    f"Not built on this machine; the numbers below are those {owner}'s training log recorded for "
                    f"the {name} it was trained on (weights sha256 `{str(record.get('weights_sha256', '?'))[:12]}...`).",
                    "",
                    *_quality_lines(name, record.get("zero_shot_accuracy")),
                    "",
                ]
            continue
        shipped = ENTRIES[name].shipped
        log = _read_log(log_file, name)
        if measured is not None and name in measured:
            log = {**log, "quality": measured[name]}
        logs[name] = log
        size = _size_mb(folder)
        total_mb += size if shipped else 0.0
        params = log.get("parameters") or (log.get("model") or {}).get("parameters")
        if isinstance(params, dict):
            params = sum(params.values())
        threads = log.get("torch_threads") or log.get("threads") or (log.get("environment") or {}).get("threads")
        shown = f"{size:.1f}" if shipped else f"{size:.1f} (not shipped)"
        summary.append(f"| {name} | {f'{params / 1e6:.2f}M' if params else '?'} | {shown} | {_wall_time(log)} | {threads} |")
        curves = _curves({k: v for k, v in log.items() if k != "quality"})
        sections += [f"## {name}", ""]
        if not shipped:
            sections += ["Built by `vwbench zoo train` into `$VWBENCH_ZOO_BUILD` (default `~/.cache/vwbench/zoo-build`), "
                         "not shipped: another model is built from it.", ""]
        if curves:
            _plot_curves(name, curves, assets / f"{name}-curves.png")
            sections += [f"![{name} curves](zoo/{name}-curves.png)", ""]
        sections += _quality_lines(name, log.get("quality")) + [""]
        samples = folder / "samples.png"
        if samples.is_file():
            shutil.copyfile(samples, assets / f"{name}-samples.png")
            sections += [f"Samples ({name}, 'a photo of {{name}}'):", "", f"![{name} samples](zoo/{name}-samples.png)", ""]
    at = sections.index("## The world")
    sections[at:at] = [
        "## Checkpoints", "", *summary, "", f"Total size: {total_mb:.1f} MB. Training times are wall times "
        "as recorded in each log (one torch thread; the machine may have been shared).", "",
        "## Quality against the mini tier's targets", "", *_target_lines(logs), "",
        *(_word_lines(board_data) if board_data else []),
    ]
    out = out_dir / "zoo.md"
    atomic_write_bytes(out, ("\n".join(sections) + "\n").encode())
    return out


def main(argv: Sequence[str] | None = None) -> None:  # pragma: no cover - thin wrapper
    import argparse

    parser = argparse.ArgumentParser(description="write leaderboards/mini/zoo.md")
    parser.add_argument("--out", type=Path, default=Path("leaderboards/mini"))
    parser.add_argument("--root", type=Path, default=ZOO_DIR)
    parser.add_argument("--measure", action="store_true", help="measure the quality numbers now (vwbench zoo check)")
    args = parser.parse_args(argv)
    measured = None
    if args.measure:
        from vwbench.zoo.build import check_zoo

        measured = check_zoo(args.root)
    print(write_zoo_report(args.out, args.root, measured=measured))


if __name__ == "__main__":  # pragma: no cover
    main()
