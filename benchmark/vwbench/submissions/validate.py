"""Check a submission and explain every problem found (``vwbench validate PATH``).

Each ``check_*`` function collects all the problems it can find rather than stopping at the
first, and returns a :class:`Report`; the loaders that ``vwbench run`` uses call the same checks
and refuse a submission with problems. Nothing here executes submitted code except
:func:`dry_run`, which goes through the sandbox.
"""

from __future__ import annotations

import ast
import difflib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import yaml
from pydantic import ValidationError

from vwbench.errors import UserError
from vwbench.results.schema import one_line, printable
from vwbench.results.words_store import WORDS_FORMAT
from vwbench.submissions.safe_tensors import TensorFileError, read_tensors
from vwbench.submissions.schema import EMBEDDINGS_FORMAT, LINEAR_FORMAT, EmbeddingsMeta, LinearMapMeta, SubmissionManifest

MAX_MANIFEST_BYTES = 64_000
MAX_FOLDER_BYTES = 20 * 2**20
MAX_FOLDER_FILES = 200
WORDS_FILE_PROBLEM = (f"this is a word set vwbench trained (format {WORDS_FORMAT!r}); an embeddings submission also needs a name and its "
                      "dataset's name: convert it into one (for --embeddings) with the snippet under \"Words vwbench trained\" in submissions/README.md")


@dataclass
class Report:
    """What :func:`validate` found: the submission's kind, its problems, and facts about it."""

    path: Path
    kind: str = "unknown"
    problems: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __repr__(self) -> str:  # `info` holds whole arrays (an embeddings file's vectors): a notebook cell would fill with them
        shown = ", ".join(sorted(self.info))
        return f"Report(path={str(self.path)!r}, kind={self.kind!r}, ok={self.ok}, problems={self.problems!r}, info keys: {shown or 'none'})"

    def raise_if_bad(self) -> None:
        if self.problems:
            more = f" (and {len(self.problems) - 1} more; run `vwbench validate {self.path}`)" if len(self.problems) > 1 else ""
            raise UserError(f"{self.path}: invalid {self.kind} submission: {self.problems[0]}{more}")


def _pydantic_problems(exc: ValidationError, where: str, model: Any) -> list[str]:
    """One line per error of ``model``'s validation; an unknown key names the closest known one."""
    known = [f.alias or name for name, f in model.model_fields.items()]
    out = []
    for e in exc.errors():
        loc = one_line(".".join(str(p) for p in e["loc"])) or "(top level)"  # a key may hold a newline
        message = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden" and len(e["loc"]) == 1:
            close = difflib.get_close_matches(str(e["loc"][0]), known, n=1, cutoff=0.6)
            message = f"unknown field; did you mean {close[0]!r}?" if close else f"unknown field (known: {', '.join(known)})"
        out.append(f"{where} {loc}: {message}")
    return out


def _read_submission_file(path: Path, report: Report, kind: str, meta_model: Any):
    """Read a submitted safetensors file into ``report`` (its kind, its validated metadata under
    ``info["meta"]``, every problem found); returns the tensors, or None when unreadable."""
    report.kind = kind
    try:
        tf = read_tensors(path)
    except TensorFileError as exc:
        report.problems.append(str(exc))
        return None
    if tf.metadata.get("format") == WORDS_FORMAT:  # not a list of every field such a file lacks
        report.problems.append(WORDS_FILE_PROBLEM)
        return None
    try:
        report.info["meta"] = meta_model.model_validate(dict(tf.metadata))
    except ValidationError as exc:
        report.problems += _pydantic_problems(exc, "metadata", meta_model)
    return tf


def check_linear_map(path: Path, report: Report | None = None) -> Report:
    report = report or Report(Path(path), "linear-map")
    tf = _read_submission_file(path, report, "linear-map", LinearMapMeta)
    if tf is None:
        return report
    extra = sorted(set(tf.tensors) - {"weight", "bias"})
    if extra:
        report.problems.append(f"unexpected tensors {extra}: a linear map holds 'weight' and optionally 'bias'")
    weight, bias = tf.tensors.get("weight"), tf.tensors.get("bias")
    if weight is None:
        report.problems.append("no 'weight' tensor: a linear map needs weight [d_target, d_source]")
    elif weight.ndim != 2 or 0 in weight.shape:
        report.problems.append(f"'weight' has shape {list(weight.shape)}, expected [d_target, d_source]")
    transposed = weight is not None and weight.ndim == 2 and bias is not None and bias.ndim == 1 and bias.shape[0] == weight.shape[1] != weight.shape[0]
    if transposed:  # the bias fits the weight's other side: the weight is the one to fix
        report.problems.append(
            f"'weight' has shape {list(weight.shape)} and 'bias' {list(bias.shape)}: a bias has d_target entries, so the weight looks "
            f"transposed; save weight as [d_target, d_source] = {[weight.shape[1], weight.shape[0]]} (weight.T)"
        )
    elif bias is not None and (bias.ndim != 1 or (weight is not None and weight.ndim == 2 and bias.shape[0] != weight.shape[0])):
        expected = f"[{weight.shape[0]}]" if weight is not None and weight.ndim == 2 else "[d_target]"
        report.problems.append(f"'bias' has shape {list(bias.shape)}, expected {expected}")
    if not report.problems:
        report.info.update(weight=weight, bias=bias, d_target=int(weight.shape[0]), d_source=int(weight.shape[1]))
    return report


def check_embeddings(path: Path, report: Report | None = None) -> Report:
    report = report or Report(Path(path), "embeddings")
    tf = _read_submission_file(path, report, "embeddings", EmbeddingsMeta)
    if tf is None:
        return report
    if not tf.tensors:
        report.problems.append("no tensors: embeddings hold one tensor per concept, [n_vectors, d]")
    shapes = {}
    for name, t in sorted(tf.tensors.items()):
        if t.ndim not in (2, 3) or 0 in t.shape:
            report.problems.append(f"concept {name!r} has shape {list(t.shape)}, expected [n_vectors, d] or [trials, n_vectors, d]")
        else:
            shapes[name] = tuple(t.shape[-2:])
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{k}: {list(v)}" for k, v in shapes.items())
        report.problems.append(f"concepts differ in [n_vectors, d] ({listed}); every word must have the same shape")
    trials = {name: (int(t.shape[0]) if t.ndim == 3 else 1) for name, t in sorted(tf.tensors.items()) if name in shapes}
    if len(set(trials.values())) > 1:
        listed = ", ".join(f"{k}: {v}" for k, v in trials.items())
        report.problems.append(f"concepts differ in their number of words ({listed}); give every concept the same number of trials")
    if not report.problems:
        report.info["words"] = {k: (t if t.ndim == 3 else t[None]) for k, t in tf.tensors.items()}
    return report


def _class_problems(source: str, entry: str, class_name: str) -> list[str]:
    try:
        tree = ast.parse(source, filename=entry)
    except SyntaxError as exc:
        where = f"{entry} line {exc.lineno}" if exc.lineno else entry
        return [f"{where}: syntax error: {exc.msg}"]
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    if class_name not in classes:
        imported = any(isinstance(n, (ast.Import, ast.ImportFrom)) and any((a.asname or a.name) == class_name for a in n.names) for n in tree.body)
        return [] if imported else [f"{entry} defines no top-level class {class_name!r} (set 'class' in submission.yaml)"]
    node = classes[class_name]
    methods = {n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    if node.bases:  # methods may be inherited; the dry run checks them
        return []
    return [f"class {class_name} has no {m}() method" for m in ("fit", "map") if m not in methods]


def check_transfer_folder(folder: Path, report: Report | None = None) -> Report:
    folder = Path(folder)
    report = report or Report(folder, "transfer-method")
    report.kind = "transfer-method"
    manifest_path = folder / "submission.yaml"
    if not manifest_path.is_file():
        report.problems.append(f"no submission.yaml in {folder} (a transfer-method submission is a folder with submission.yaml and a .py file)")
        return report
    files = [p for p in folder.rglob("*") if "__pycache__" not in p.parts]
    links = [p for p in files if p.is_symlink()]
    if links:
        report.problems.append(f"symbolic links are not allowed in a submission: {', '.join(str(p.relative_to(folder)) for p in links[:5])}")
    size = sum(p.stat().st_size for p in files if p.is_file() and not p.is_symlink())
    special = [p for p in files if not (p.is_symlink() or p.is_file() or p.is_dir())]
    if special:  # a FIFO would block the copy into the sandbox, a device would be read
        report.problems.append(f"only files and folders may be in a submission: {', '.join(str(p.relative_to(folder)) for p in special[:5])} is not")
        return report
    unreadable = [p for p in files if p.is_file() and not p.is_symlink() and not os.access(p, os.R_OK)]
    if unreadable:
        report.problems.append(f"cannot read {', '.join(str(p.relative_to(folder)) for p in unreadable[:5])} (check the files' permissions)")
        return report
    if size > MAX_FOLDER_BYTES or len(files) > MAX_FOLDER_FILES:
        report.problems.append(f"the folder holds {len(files)} entries (files and folders), {size} bytes; the limits are {MAX_FOLDER_FILES} entries, {MAX_FOLDER_BYTES} bytes")
    if manifest_path.stat().st_size > MAX_MANIFEST_BYTES:
        report.problems.append(f"submission.yaml is over {MAX_MANIFEST_BYTES} bytes")
        return report
    try:
        raw = yaml.safe_load(manifest_path.read_text(encoding="utf-8"))
    except OSError as exc:
        report.problems.append(f"cannot read submission.yaml: {exc.strerror or exc} (check the file's permissions)")
        return report
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        report.problems.append(f"submission.yaml is not valid YAML{where}: {problem or str(exc).splitlines()[0]}")
        return report
    except RecursionError:
        report.problems.append("submission.yaml nests too deeply to read: write it as a flat mapping of name, authors, description, url, license, entry, class")
        return report
    if not isinstance(raw, dict):
        report.problems.append("submission.yaml must be a mapping of name, authors, description, url, license, entry, class")
        return report
    try:
        manifest = SubmissionManifest.model_validate(raw)
    except ValidationError as exc:  # every problem at once: the entry file and its class are looked at too
        report.problems += _pydantic_problems(exc, "submission.yaml", SubmissionManifest)
        bad = {e["loc"][0] for e in exc.errors() if e["loc"]}
        if "entry" not in bad:
            fields = SubmissionManifest.model_fields
            class_name = None if "class" in bad else raw.get("class", fields["class_name"].default)
            report.problems += _entry_problems(folder, raw.get("entry", fields["entry"].default), class_name)
        return report
    report.info["manifest"] = manifest
    report.problems += _entry_problems(folder, manifest.entry, manifest.class_name)
    return report


def _entry_problems(folder: Path, entry: str, class_name: str | None) -> list[str]:
    """The entry file's problems: missing, unreadable, not UTF-8, no such class (``class_name``:
    None when the manifest's class is itself invalid)."""
    path = folder / entry
    if not path.is_file() or path.is_symlink():
        return [f"entry file {entry} is not in {folder}"]
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        return [f"cannot read {entry}: {exc.strerror or exc} (check the file's permissions)"]
    except UnicodeDecodeError:
        return [f"{entry} is not UTF-8 text"]
    return [] if class_name is None else _class_problems(source, entry, class_name)


def weight_shape_problem(shape: list[int], target_dim: int, source_dim: int) -> str | None:
    """What ``vwbench run`` says of a linear map's weight ``shape`` that does not fit models of these
    widths (a transposed map among them); None where it fits."""
    if list(shape) == [target_dim, source_dim]:
        return None
    return f"weight is {list(shape)}, the models need [{target_dim}, {source_dim}] (d_target, d_source)"


def concept_problems(words: dict[str, Any], concepts: list[str]) -> list[str]:
    """An embeddings file's concepts (``words``' names) that its dataset lacks, and the dataset's
    ``concepts`` it has no words for."""
    problems = []
    missing, extra = sorted(set(concepts) - set(words)), sorted(set(words) - set(concepts))
    if missing:
        problems.append(f"no words for concepts {missing}")
    if extra:
        problems.append(f"words for concepts the dataset does not have: {extra}")
    return problems


def dataset_concepts(registry: Any, tier: str | None = None) -> Callable[[str], list[str]]:
    """``concepts_of(name)`` for :func:`check_dataset_names`: the concept names of the ``registry``'s
    dataset ``name`` (of ``tier``, where given); a ``UserError`` for an unknown dataset (naming the
    closest), another tier's, or an alias (a run compares the metadata's name exactly)."""

    def concepts_of(name: str) -> list[str]:
        dataset = registry.dataset(name)
        if tier is not None and dataset.tier != tier:
            raise UserError(f"{dataset.name} belongs to tier {dataset.tier}, not {tier}")
        if dataset.name != name:
            raise UserError(f"{name!r} is not the dataset's name: write {dataset.name!r} (a run compares the name as written)")
        return list(dataset.concept_names)

    return concepts_of


def check_dataset_names(report: Report, concepts_of: Callable[[str], list[str]]) -> list[str] | None:
    """Add to a valid embeddings file's ``report`` what is wrong with the dataset it names and its
    concept names (``concepts_of``: see :func:`dataset_concepts`); no model is needed. Returns the
    dataset's concepts, or None where there is nothing to compare with (an unknown dataset)."""
    if not report.ok or report.kind != "embeddings":
        return None
    try:
        concepts = concepts_of(report.info["meta"].dataset)
    except UserError as exc:
        report.problems.append(f"metadata dataset: {exc}")
        return None
    report.problems += concept_problems(report.info["words"], concepts)
    return concepts


def check_against_models(report: Report, model_of: Callable[[str], Any], concepts_of: Callable[[str], list[str]]) -> None:
    """Add to a valid linear map's or embeddings file's ``report`` every mismatch with the models
    it names (``model_of(family)``: the loaded adapter) and, for embeddings, with its dataset
    (:func:`check_dataset_names`). This is what ``vwbench run`` would refuse, found without
    running anything."""
    if not report.ok or report.kind not in ("linear-map", "embeddings"):
        return
    meta = report.info["meta"]
    if report.kind == "linear-map":
        vocabs = {"source": model_of(meta.source).vocabulary(), "target": model_of(meta.target).vocabulary()}
        problem = weight_shape_problem([report.info["d_target"], report.info["d_source"]],
                                       int(vocabs["target"].matrix.shape[1]), int(vocabs["source"].matrix.shape[1]))
        if problem is not None:
            report.problems.append(problem)
        for side, family, expected in (("source", meta.source, meta.source_vocab_hash), ("target", meta.target, meta.target_vocab_hash)):
            actual = vocabs[side].hash()
            if actual != expected:
                report.problems.append(
                    f"{side}_vocab_hash {expected[:12]}… is not the {side} model's ({family}: {actual[:12]}…); the map was made for other checkpoints"
                )
        return
    from vwbench.pipeline_steps import overlong_words
    from vwbench.submissions.embeddings import SUBMITTED_WORDS_FIX, embedding_problems

    if check_dataset_names(report, concepts_of) is None:
        return
    model = model_of(meta.model)
    vocab = model.vocabulary()
    words = report.info["words"]
    report.problems += embedding_problems(  # the concepts were compared above
        meta, words, family=meta.model, vocab_hash=vocab.hash(), dim=int(vocab.matrix.shape[1]), dataset=meta.dataset, concepts=None,
    )
    try:
        model.check_word_fits(int(next(iter(words.values())).shape[-2]), SUBMITTED_WORDS_FIX)
    except UserError as exc:
        report.problems.append(str(exc))
    too_long = overlong_words(torch.cat([t.flatten(0, -2) for t in words.values()]), vocab.matrix)
    if too_long is not None:
        report.problems.append(
            f"word vectors of norm up to {too_long[0]:.3g}, where {meta.model}'s vocabulary rows are at most {too_long[1]:.3g} long: "
            "no model can be run on them (a run refuses them)"
        )


def detect_kind(path: Path) -> str:
    """``transfer-method`` (a folder or its submission.yaml), ``linear-map`` or ``embeddings``
    (by the ``format`` in a safetensors header), or ``unknown``."""
    path = Path(path)
    if path.is_dir() or path.name == "submission.yaml":
        return "transfer-method"
    if path.suffix == ".py":
        return "transfer-method"
    try:
        from vwbench.submissions.safe_tensors import read_header

        _, meta = read_header(path)
    except TensorFileError:
        return "safetensors?"
    return {LINEAR_FORMAT: "linear-map", EMBEDDINGS_FORMAT: "embeddings"}.get(meta.get("format", ""), "safetensors?")


def validate(path: Path, dry_run_limits=None, run_code: bool = True) -> Report:
    """Check any submission; for a transfer method, also run it once in the sandbox on a planted
    problem (unless ``run_code`` is false). A path that does not exist is a ``UserError``."""
    path = Path(path)
    report = Report(path)
    if not path.exists():  # nothing to check: a bad invocation, not a submission with problems
        raise UserError(f"{printable(str(path))}: no such file or folder (give a transfer-method folder, or a linear-map or embeddings .safetensors file)")
    kind = detect_kind(path)
    if kind == "transfer-method":
        folder = path if path.is_dir() else path.parent
        check_transfer_folder(folder, report)
        if report.ok and run_code:
            dry_run(folder, report, dry_run_limits)
    elif kind == "linear-map":
        check_linear_map(path, report)
    elif kind == "embeddings":
        check_embeddings(path, report)
    else:
        try:
            from vwbench.submissions.safe_tensors import read_header

            _, meta = read_header(path)
            report.problems.append(_format_problem(meta.get("format")))
        except TensorFileError as exc:
            if path.suffix == ".safetensors":
                report.problems.append(str(exc))
            else:  # some other file: its bytes read as a header size say nothing useful
                report.problems.append(f"{path.name} is not a submission: give a transfer-method folder (with submission.yaml), "
                                       "or a linear-map or embeddings .safetensors file")
    return report


def _format_problem(fmt: str | None) -> str:
    """What is wrong with a safetensors file's ``format`` metadata that names no submission kind."""
    if fmt == WORDS_FORMAT:
        return WORDS_FILE_PROBLEM
    if fmt is None:
        return (f'metadata \'format\' is missing: save the file with metadata={{"format": "{LINEAR_FORMAT}", ...}} for a linear map '
                f'or "{EMBEDDINGS_FORMAT}" for embeddings (see submissions/README.md)')
    return f"metadata 'format' is {fmt!r}; a submission file says {LINEAR_FORMAT!r} (linear map) or {EMBEDDINGS_FORMAT!r} (embeddings)"


def dry_run(folder: Path, report: Report, limits=None) -> None:
    """Fit and map a planted 200-row problem (a random linear relation) in the sandbox."""
    import numpy as np

    from vwbench.submissions.sandbox import Limits, SubmissionFailure, run_transfer_submission

    manifest: SubmissionManifest = report.info["manifest"]
    rng = np.random.default_rng(0)
    source = rng.standard_normal((200, 16)).astype(np.float32)
    target = (source @ rng.standard_normal((16, 12))).astype(np.float32)
    tokens = [f"w{i:03d}</w>" for i in range(200)]
    vectors = source[:6]
    try:
        mapped, describe, facts = run_transfer_submission(
            folder, manifest.entry, manifest.class_name, source, target, tokens, vectors, [t[:-4] for t in tokens[:6]],
            limits or Limits(time_limit_s=120), label=f"dry run of {manifest.name}",
        )
    except SubmissionFailure as exc:
        report.problems.append(str(exc))
        return
    if mapped.shape != (6, 12):
        report.problems.append(f"dry run: map() returned shape {list(mapped.shape)} for 6 vectors into a 12-dim space, expected [6, 12]")
        return
    report.info["dry_run"] = {"relative_error": float(np.linalg.norm(mapped - target[:6]) / np.linalg.norm(target[:6])), **facts}
    report.info["describe"] = json.loads(json.dumps(describe, default=str))
