"""Load the task registry from the YAML files under ``tasks/``.

Layout (every file may ``include:`` others, see below)::

    tasks/defaults.yaml          version, Table 2 hyperparameters, eval settings, transfer
                                 defaults, and defaults for every dataset (``dataset:``)
    tasks/models/<tier>.yaml     the tier's model per family (checkpoint pin, metric) + the judge
    tasks/datasets/<name>.yaml   loader, tier, options, concepts (files named ``_*.yaml`` are
                                 fragments for ``include:``, not datasets)
    tasks/suites/<name>.yaml     which datasets x which ordered pairs are tasks

A task ``SOURCE->TARGET`` on dataset D takes D's tier's models for SOURCE and TARGET, and its
settings from these layers, deep-merged, later wins::

    defaults.yaml < models/<tier>.yaml settings < datasets/D.yaml settings
                  < suite settings < suite tasks["SOURCE->TARGET"] < suite tasks["SOURCE->TARGET@D"]

``include: other.yaml`` (or a list), relative to the including file, deep-merges the included
files (in order) under the including file's own keys. Mappings merge key by key; lists and
scalars are replaced.

Errors are :class:`~vwbench.errors.UserError` with ``file:line`` of the offending key: YAML is
composed into nodes whose marks give each key's line, and every merged value keeps the location
of the file that set it, so a schema error found after merging still points at its source.
A file whose aliases (``*name``) would expand past :data:`MAX_YAML_NODES` values is refused
before it is expanded (an alias bomb would otherwise take gigabytes).
"""

from __future__ import annotations

import difflib
import errno
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from vwbench.errors import UserError
from vwbench.registry.models import DATASET_LOADERS
from vwbench.registry.schema import (
    FAMILIES,
    FAMILY_KIND,
    DatasetFile,
    DatasetSpec,
    EvalSettings,
    Hyperparameters,
    ModelSpec,
    SettingsFile,
    SettingsOverride,
    SuiteFile,
    TaskSpec,
    TierFile,
    TransferDefaults,
)

TASKS_DIR_ENV = "VWBENCH_TASKS_DIR"

Key = tuple[Any, ...]
"""A path into a YAML document: mapping keys and sequence indices."""

M = TypeVar("M", bound=BaseModel)

# ---- located documents ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Loc:
    """Where a value was written."""

    file: Path
    line: int  # 1-based

    def __str__(self) -> str:
        return f"{_display(self.file)}:{self.line}"


def _display(path: Path) -> str:
    """A path as the user should see it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        return str(path)


class _Unreadable(UserError):
    """A task file that cannot be opened or read at all (as opposed to a YAML error inside it);
    ``reason`` says why, for an including file's error."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot read {_display(path)}: {reason}")
        self.reason = reason


def _resolved(path: Path) -> Path:
    """``path.resolve()``; a symlink loop or an unusable name is an :class:`_Unreadable`."""
    try:
        return path.resolve()
    except RuntimeError:  # Python < 3.13 reports a symlink loop so
        raise _Unreadable(path, "a symbolic link loop") from None
    except OSError as exc:
        raise _Unreadable(path, exc.strerror or str(exc)) from None


def _include_problem(target: Path) -> str | None:
    """Why ``target`` cannot be included (``"not found"``, ``"is a folder"``, ...); ``None`` when
    it is a regular file."""
    try:
        mode = target.stat().st_mode
    except ValueError:  # a NUL byte in the name
        return "is not a valid file name"
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return "not found"
        return f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISDIR(mode):
        return "is a folder, not a YAML file"
    return None if stat.S_ISREG(mode) else "is not a regular file"


def _as_written(name: str) -> str:
    """An include target as the file spells it, with any control character escaped."""
    return name if name.strip() and name.isprintable() else repr(name)  # quoted when blank


@dataclass
class Doc:
    """YAML data plus the location of every key (and sequence item) in it."""

    data: dict[str, Any]
    locs: dict[Key, Loc]
    file: Path  # the file the document was read from (the outermost, after includes)

    def sub(self, key: str) -> Doc:
        """The mapping under ``key``, with locations re-rooted; empty if absent."""
        value = self.data.get(key)
        data = value if isinstance(value, dict) else {}
        n = 1
        locs = {k[n:]: loc for k, loc in self.locs.items() if len(k) > n and k[0] == key}
        if (key,) in self.locs:
            locs[()] = self.locs[(key,)]
        return Doc(data, locs, self.file)

    def loc(self, key: Key) -> Loc:
        """The location of ``key``, or of its nearest located ancestor, or the file's first line."""
        for n in range(len(key), -1, -1):
            if key[:n] in self.locs:
                return self.locs[key[:n]]
        return Loc(self.file, 1)


def _merge_data(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for k, v in over.items():
            merged[k] = _merge_data(base[k], v) if k in base else v
        return merged
    return over


def _at(data: Any, key: Key) -> Any:
    """The value at ``key`` (mapping keys and sequence indices) in ``data``, or None."""
    for part in key:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def merge(*docs: Doc) -> Doc:
    """Deep-merge documents, later wins (mappings merge, everything else is replaced)."""
    data: dict[str, Any] = {}
    locs: dict[Key, Loc] = {}
    for doc in docs:
        data = _merge_data(data, doc.data)
        root = doc.locs.get(())
        # a list or value replaces an earlier one whole: the earlier one's items are gone, and so are their locations
        replaced = {k for k in doc.locs if k and not isinstance(_at(doc.data, k), dict)}
        locs = {k: v for k, v in locs.items() if not any(k[:n] in replaced for n in range(1, len(k)))}
        locs.update({k: v for k, v in doc.locs.items() if k != ()})
        if root is not None and () not in locs:
            locs[()] = root
    return Doc(data, locs, docs[-1].file if docs else Path("."))


_constructor = yaml.constructor.SafeConstructor()
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_YAML_NODES = 100_000
"""The most values (keys, scalars, mappings, sequences) one task file may hold once its aliases
are expanded. The shipped files hold a few hundred; the bound stops an alias bomb ("billion
laughs": a few lines whose aliases nest into billions of values) before it takes the memory."""


class _TooLarge(Exception):
    pass


class _RecursiveAlias(Exception):
    pass


def _expanded_size(node: yaml.Node, sizes: dict[int, int], active: set[int], limit: int) -> int:
    """How many values ``node`` stands for with every alias (and ``<<`` merge) expanded, counted
    once per distinct node (memoized), so a bomb is measured without being expanded. Raises
    :class:`_TooLarge` beyond ``limit`` and :class:`_RecursiveAlias` on an alias inside itself."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in active:
        raise _RecursiveAlias
    size = 1
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        active.add(key)
        children = (c for pair in node.value for c in pair) if isinstance(node, yaml.MappingNode) else node.value
        for child in children:
            size += _expanded_size(child, sizes, active, limit)
            if size > limit:
                raise _TooLarge
        active.discard(key)
    sizes[key] = size
    return size


def _to_python(node: yaml.Node, key: Key, file: Path, locs: dict[Key, Loc]) -> Any:
    """Build Python data from a composed node, recording each key's line in ``locs``."""
    if isinstance(node, yaml.MappingNode):
        _constructor.flatten_mapping(node)  # YAML merge keys (<<)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            k = _scalar(key_node, file)
            if not isinstance(k, (str, int, float, bool)) or k is None:
                raise UserError(f"{_display(file)}:{key_node.start_mark.line + 1}: a mapping key must be a plain scalar")
            if k in out:
                raise UserError(f"{_display(file)}:{key_node.start_mark.line + 1}: duplicate key {k!r}")
            locs[key + (k,)] = Loc(file, key_node.start_mark.line + 1)
            out[k] = _to_python(value_node, key + (k,), file, locs)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            locs[key + (i,)] = Loc(file, item.start_mark.line + 1)
            items.append(_to_python(item, key + (i,), file, locs))
        return items
    return _scalar(node, file)


def _scalar(node: yaml.Node, file: Path) -> Any:
    """A scalar's value; one PyYAML recognizes but Python cannot build (an integer of more than
    4,300 digits, a date such as 2024-13-45) is a one-line error at its line."""
    try:
        return _constructor.construct_object(node, deep=True)
    except ValueError as exc:
        problem = str(exc).split(";")[0]  # drop Python's hint about sys.set_int_max_str_digits
        raise UserError(f"{_display(file)}:{node.start_mark.line + 1}: cannot read {str(node.value)[:40]!r}: {problem}; write a plausible number, or quote text") from None


def read_yaml(path: Path) -> Doc:
    """One YAML file (a mapping at the top) with its key locations; no includes resolved."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _Unreadable(path, exc.strerror or str(exc)) from exc
    except UnicodeDecodeError as exc:
        raise UserError(f"{_display(path)}: not UTF-8 text (byte {exc.start}); save the task file as UTF-8") from exc
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = " ".join(" ".join(str(p).split()) for p in (exc.context, exc.problem) if p)
        lines = text.splitlines()
        bad = lines[line - 1] if 0 < line <= len(lines) else ""
        if "\t" in bad[: len(bad) - len(bad.lstrip())]:  # a tab in the line's indentation
            problem += "; indent with spaces: YAML does not allow tabs"
        raise UserError(f"{_display(path)}:{line}: YAML syntax error: {problem}") from exc
    except yaml.reader.ReaderError as exc:
        # e.g. a NUL byte: say where as file:line, on one line (PyYAML's message takes two)
        line = text.count("\n", 0, exc.position) + 1 if isinstance(exc.position, int) else 1
        what = f"character #x{exc.character:04x}" if isinstance(exc.character, int) else f"byte {exc.character!r}"
        raise UserError(
            f"{_display(path)}:{line}: YAML error: unacceptable {what} ({exc.reason}); "
            "a task file is plain UTF-8 text: remove the character"
        ) from exc
    except yaml.YAMLError as exc:
        raise UserError(f"{_display(path)}: YAML error: {' '.join(str(exc).split())}") from exc
    except RecursionError:
        raise UserError(f"{_display(path)}: nested too deeply to read") from None
    locs: dict[Key, Loc] = {(): Loc(path, 1)}
    if node is None:
        return Doc({}, locs, path)
    recursive = f"{_display(path)}: nested too deeply to read (a recursive alias such as `a: &a [*a]`?)"
    try:
        _expanded_size(node, {}, set(), MAX_YAML_NODES)
        data = _to_python(node, (), path, locs)
    except _TooLarge:
        raise UserError(
            f"{_display(path)}: more than {MAX_YAML_NODES:,} values once its aliases (*name) are expanded; "
            "a task file holds a few hundred: write the settings out instead of nesting aliases"
        ) from None
    except (RecursionError, _RecursiveAlias):
        raise UserError(recursive) from None
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else 1
        raise UserError(f"{_display(path)}:{line}: {exc.problem}") from exc
    if not isinstance(data, dict):
        raise UserError(f"{_display(path)}:{node.start_mark.line + 1}: expected a mapping of settings at the top of the file")
    return Doc(data, locs, path)


class _FileCache:
    """Reads each file once and resolves ``include:`` chains (cycles are errors)."""

    def __init__(self) -> None:
        self._raw: dict[Path, Doc] = {}

    def raw(self, path: Path) -> Doc:
        path = _resolved(path)
        if path not in self._raw:
            self._raw[path] = read_yaml(path)
        return self._raw[path]

    def load(self, path: Path, _stack: tuple[Path, ...] = ()) -> Doc:
        path = _resolved(path)
        if path in _stack:
            chain = " -> ".join(_display(p) for p in _stack + (path,))
            raise UserError(f"{_display(_stack[-1])}: include cycle: {chain}")
        doc = self.raw(path)
        if "include" not in doc.data:
            return doc
        spec = doc.data["include"]
        names = [spec] if isinstance(spec, str) else spec
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise UserError(f"{doc.loc(('include',))}: 'include' takes a file name or a list of file names")
        included = []
        for i, name in enumerate(names):
            where = doc.loc(("include", i) if isinstance(spec, list) else ("include",))
            included.append(self._include(path, name, where, _stack + (path,)))
        own = Doc(
            {k: v for k, v in doc.data.items() if k != "include"},
            {k: v for k, v in doc.locs.items() if not (k and k[0] == "include")},
            path,
        )
        merged = merge(*included, own)
        merged.locs[()] = doc.locs.get((), Loc(path, 1))  # a missing key is this file's fault, not an included one's
        return merged

    def _include(self, includer: Path, name: str, where: Loc, stack: tuple[Path, ...]) -> Doc:
        """The file ``name`` (relative to ``includer``) that ``includer`` includes at ``where``.
        One that is missing or cannot be read is an error at the include, which names the target
        as written (a YAML error inside the target still names the target's own line)."""
        target = includer.parent / name
        problem = _include_problem(target) if name.strip() else "is an empty file name"
        if problem is None and _resolved(target) in stack:
            chain = " -> ".join(_display(p) for p in stack + (_resolved(target),))
            raise UserError(f"{where}: include cycle: {chain}; remove the include that closes the loop")
        if problem is None:
            try:
                return self.load(target, stack)
            except _Unreadable as exc:  # only the target's own reading: a nested include's is located already
                problem = f"cannot be read ({exc.reason})"
        if problem == "not found":
            problem += f" (looked at {_display(target)}; an include is relative to the including file)"
        raise UserError(f"{where}: included file {_as_written(name)} {problem}; fix the include or the file it names")


# ---- validation with locations -----------------------------------------------------------------


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation is, or holds as a union member (``X | None``)."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _field_names(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names of the (nested) model at ``loc``, for did-you-mean on unknown fields."""
    annotation: Any = model
    for part in loc:
        current = _model_in(annotation)
        if current is not None and isinstance(part, str) and part in current.model_fields:
            annotation = current.model_fields[part].annotation
        elif get_origin(annotation) in (dict, list, tuple) and get_args(annotation):
            annotation = get_args(annotation)[-1]  # a mapping key or sequence index: the value type
        else:
            return []
    current = _model_in(annotation)
    return list(current.model_fields) if current is not None else []


def _error_message(model: type[BaseModel], error: Mapping[str, Any], prefix: Key) -> tuple[Key, str]:
    """``(document key, message)`` of one pydantic error."""
    loc = tuple(part for part in error["loc"] if not (isinstance(part, str) and part.startswith("function-")))
    # drop union-branch names that pydantic inserts (e.g. 'list[str]', "literal['all']")
    loc = tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in {"str", "int", "float"})))
    key = prefix + loc
    dotted = ".".join(str(p) for p in prefix + loc)
    if error["type"] == "extra_forbidden":
        name = loc[-1] if loc else "?"
        known = _field_names(model, loc[:-1])
        close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else (f" (known: {', '.join(known)})" if known else "")
        return key, f"unknown field {name!r}{hint}"
    if error["type"] == "missing":
        return key, f"missing field {dotted!r}"
    message = str(error["msg"]).removeprefix("Value error, ")
    located = key + tuple((error.get("ctx") or {}).get("option_loc", ()))  # a nested check's own key
    return located, f"{dotted}: {message}" if dotted else message


def validate(model: type[M], doc: Doc, prefix: Key = (), data: Any = None) -> M:
    """Validate ``doc`` (or ``data``, located by ``doc`` under ``prefix``) as ``model``; a
    validation error becomes a one-line :class:`UserError` with the offending key's file:line."""
    try:
        return model.model_validate(doc.data if data is None else data)
    except ValidationError as exc:
        # an unknown (misspelt) key also makes its intended key "missing": report the typo first
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        key, message = _error_message(model, errors[0], prefix)
        more = f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        raise UserError(f"{doc.loc(key)}: {message}{more}") from None


# ---- names ---------------------------------------------------------------------------------------

_ALIASES = {
    **{f: f for f in FAMILIES},
    **{kind: family for family, kind in FAMILY_KIND.items()},
    "gen": "sd",
    "det": "owlv2",
    "cls": "clip",
    "stable-diffusion": "sd",
    "stablediffusion": "sd",
    "owl": "owlv2",
}
_ARROW = re.compile(r"\s*(?:->|→|⟶|=>|>|-to-|_to_|\bto\b)\s*")


def normalize_task_name(name: str) -> str:
    """``SOURCE->TARGET`` in canonical form: lower case, no spaces, ``->`` as the arrow; family
    aliases (``generation``, ``detection``, ``classification``) become family names.
    Unrecognized parts are kept (lower-cased) so that the caller can suggest a close name."""
    text = name.strip().lower()
    parts = [p.strip() for p in _ARROW.split(text, maxsplit=1)] if _ARROW.search(text) else [text]
    parts = [_ALIASES.get(p.replace(" ", ""), p.replace(" ", "")) for p in parts]
    return "->".join(parts)


def normalize_dataset_name(name: str) -> str:
    """Lower case; spaces and underscores become hyphens (``Synth_COCO`` -> ``synth-coco``)."""
    return re.sub(r"[\s_]+", "-", name.strip().lower())


def all_pairs() -> list[str]:
    """The 9 ordered pairs, source-major in FAMILIES order."""
    return [f"{s}->{t}" for s in FAMILIES for t in FAMILIES]


def _suggest(what: str, name: str, known: Iterable[str], extra: str = "", query: str | None = None) -> UserError:
    """``unknown <what> 'name'; did you mean ...? (known: ...)``; ``query`` (default ``name``) is
    what is compared with the known names (e.g. the normalized name)."""
    known = list(dict.fromkeys(known))
    close = difflib.get_close_matches(query if query is not None else name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return UserError(f"unknown {what} {name!r}{hint} (known: {', '.join(known)}){extra}")


# ---- the registry --------------------------------------------------------------------------------


def default_tasks_dir() -> Path:
    """``$VWBENCH_TASKS_DIR``; else the copy of ``tasks/`` a wheel installs inside the package
    (``vwbench/tasks``); else the repository's ``tasks/`` next to the package source (an
    editable install or a checkout)."""
    env = os.environ.get(TASKS_DIR_ENV)
    if env:
        return Path(env).expanduser()
    import vwbench

    package = Path(vwbench.__file__).resolve().parent
    installed = package / "tasks"
    return installed if installed.is_dir() else package.parents[1] / "tasks"


class TaskRegistry:
    """Every task defined under a tasks folder, validated.

    Build it with :meth:`from_dir`; then :meth:`tasks`, :meth:`get` and :meth:`datasets`."""

    def __init__(
        self, tasks: list[TaskSpec], datasets: list[DatasetSpec], tiers: dict[str, TierFile], root: Path,
        suites: dict[str, list[tuple[str, str]]] | None = None,
    ) -> None:
        self.root = root
        self._tasks = tasks
        self._suites = suites or {}
        self._datasets = {d.name: d for d in datasets}
        self._tiers = tiers
        self._by_key = {(t.name, t.dataset.name): t for t in tasks}
        self._dataset_alias = {normalize_dataset_name(d.name): d.name for d in datasets}
        for d in datasets:
            for alias in d.aliases:
                self._dataset_alias.setdefault(normalize_dataset_name(alias), d.name)

    # -- construction --

    @classmethod
    def from_dir(cls, tasks_dir: Path | str | None = None) -> TaskRegistry:
        """Load and validate every file under ``tasks_dir`` (default: :func:`default_tasks_dir`).

        Raises :class:`UserError` naming file and line on any YAML or schema error."""
        root = Path(tasks_dir).expanduser() if tasks_dir is not None else default_tasks_dir()
        if not root.is_dir():
            if tasks_dir is None and os.environ.get(TASKS_DIR_ENV):
                raise UserError(f"no tasks folder at {_display(root)} (from ${TASKS_DIR_ENV}); set it to the folder of task YAML files, or unset it for the built-in tasks")
            raise UserError(
                f"no tasks folder at {_display(root)}; pass --tasks-dir or set {TASKS_DIR_ENV} to the folder of task YAML files"
            )
        return _Builder(root).build()

    # -- queries --

    def tasks(self) -> list[TaskSpec]:
        """Every task, suite by suite, dataset by dataset, pair by pair."""
        return list(self._tasks)

    def suite(self, name: str) -> list[TaskSpec]:
        """The tasks of ``tasks/suites/<name>.yaml``, in the suite's order."""
        if name not in self._suites:
            raise _suggest("suite", name, sorted(self._suites))
        return [self._by_key[key] for key in self._suites[name]]

    def suites(self) -> list[str]:
        return sorted(self._suites)

    def datasets(self) -> list[DatasetSpec]:
        """Every dataset that has a file, sorted by tier then name."""
        return sorted(self._datasets.values(), key=lambda d: (d.tier, d.name))

    def tiers(self) -> list[str]:
        return sorted(self._tiers)

    def models(self, tier: str) -> dict[str, ModelSpec]:
        """The models of a tier by family, plus ``"judge"``."""
        if tier not in self._tiers:
            raise _suggest("tier", tier, self._tiers)
        t = self._tiers[tier]
        return {**t.models, "judge": t.judge}

    def dataset(self, name: str) -> DatasetSpec:
        """A dataset by name or alias (case, spaces and underscores ignored)."""
        key = normalize_dataset_name(name)
        if key not in self._dataset_alias:
            raise _suggest("dataset", name, self._datasets, query=key)
        return self._datasets[self._dataset_alias[key]]

    def get(self, name: str, dataset: str) -> TaskSpec:
        """The task ``name`` (``SOURCE->TARGET``; ``sd→owlv2``, spaces and case are accepted) on
        ``dataset``. Unknown names are a :class:`UserError` with the closest known names."""
        task_name = normalize_task_name(name)
        pairs = all_pairs()
        if task_name not in pairs:
            extra = "; a task is SOURCE->TARGET with each of sd, owlv2, clip"
            if task_name.endswith("-"):  # an unquoted > in a shell cut the name and redirected the output
                extra += f"; in a shell, quote it (--task '{task_name}>TARGET'): a bare > redirects into a file"
            raise _suggest("task", name, pairs, extra=extra, query=task_name)
        ds = self.dataset(dataset)
        task = self._by_key.get((task_name, ds.name))
        if task is None:
            defined = [t.name for t in self._tasks if t.dataset.name == ds.name]
            listed = ", ".join(defined) if defined else "none: no suite lists this dataset"
            raise UserError(f"task {task_name} is not defined on dataset {ds.name} (its tasks: {listed})")
        return task

    def __iter__(self) -> Iterator[TaskSpec]:
        return iter(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)


class _Builder:
    """Assembles a :class:`TaskRegistry` from a tasks folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = _FileCache()

    def _yaml_files(self, sub: str) -> list[Path]:
        folder = self.root / sub
        if not folder.is_dir():
            return []
        files = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and not p.name.startswith(("_", ".")))
        by_stem: dict[str, Path] = {}
        for path in files:  # NAME.yaml and NAME.yml would both define NAME, and the later one would win unseen
            if path.stem in by_stem:
                raise UserError(f"{_display(by_stem[path.stem])} and {_display(path)} both define {sub} {path.stem!r}; keep one of them")
            by_stem[path.stem] = path
        return files

    def build(self) -> TaskRegistry:
        defaults_path = self.root / "defaults.yaml"
        if not defaults_path.is_file():
            raise UserError(f"{_display(self.root)} has no defaults.yaml (the settings every task starts from)")
        defaults_doc = self.files.load(defaults_path)
        validate(SettingsFile, defaults_doc)  # checked whole here; each task validates its merged layers
        base_settings = defaults_doc  # validated whole; layers merge over its data

        tiers: dict[str, tuple[TierFile, Doc]] = {}
        for path in self._yaml_files("models"):
            doc = self.files.load(path)
            tier = validate(TierFile, doc)
            if tier.tier != path.stem:
                raise UserError(f"{doc.loc(('tier',))}: tier {tier.tier!r} must match its file name ({path.stem})")
            tiers[tier.tier] = (tier, doc)
        if not tiers:
            raise UserError(f"{_display(self.root / 'models')}: no tier files (models/<tier>.yaml)")

        datasets: dict[str, tuple[DatasetSpec, DatasetFile, Doc]] = {}
        dataset_defaults = base_settings.sub("dataset")
        for path in self._yaml_files("datasets"):
            own = self.files.load(path)
            doc = merge(dataset_defaults, own)
            doc.locs[()] = own.loc(())  # a missing name or tier is the dataset file's, not defaults.yaml's
            file = validate(DatasetFile, doc)
            if file.name != path.stem:
                raise UserError(f"{doc.loc(('name',))}: dataset name {file.name!r} must match its file name ({path.stem})")
            if file.tier not in tiers:
                raise _located(doc, ("tier",), _suggest("tier", file.tier, tiers))
            if file.loader not in DATASET_LOADERS:
                raise _located(doc, ("loader",), _suggest("dataset loader", file.loader, DATASET_LOADERS))
            datasets[file.name] = (file.spec(), file, doc)
        self._check_dataset_names(datasets)

        tasks: list[TaskSpec] = []
        suites: dict[str, list[tuple[str, str]]] = {}
        seen: dict[tuple[str, str], Loc] = {}
        for path in self._yaml_files("suites"):
            doc = self.files.load(path)
            suite = validate(SuiteFile, doc)
            if suite.name != path.stem:  # `--suite NAME` finds tasks/suites/NAME.yaml, as tiers and datasets are found
                raise UserError(f"{doc.loc(('name',))}: suite name {suite.name!r} must match its file name ({path.stem})")
            pairs = self._suite_pairs(suite, doc)
            task_keys = self._suite_task_keys(suite, doc, pairs)
            for i, dataset_name in enumerate(suite.datasets):
                if dataset_name not in datasets:
                    raise _located(doc, ("datasets", i), _suggest("dataset", dataset_name, datasets))
                spec, dfile, ddoc = datasets[dataset_name]
                tier, tdoc = tiers[spec.tier]
                for pair in pairs:
                    where = doc.loc(("datasets", i))
                    if (pair, dataset_name) in seen:
                        raise UserError(
                            f"{where}: task {pair} on {dataset_name} is also defined at {seen[(pair, dataset_name)]}; a task belongs to "
                            "one suite: drop it from one of them, or give the dataset another name in its own file (`include:` this one)"
                        )
                    seen[(pair, dataset_name)] = where
                    layers = [base_settings, tdoc.sub("settings"), ddoc.sub("settings"), doc.sub("settings")]
                    for key in (pair, f"{pair}@{dataset_name}"):
                        if key in task_keys:
                            layers.append(doc.sub("tasks").sub(task_keys[key]))
                    tasks.append(self._task(pair, spec, tier, merge(*layers)))
                    suites.setdefault(suite.name, []).append((pair, dataset_name))
        return TaskRegistry(tasks, [d[0] for d in datasets.values()], {k: v[0] for k, v in tiers.items()}, self.root, suites)

    @staticmethod
    def _suite_pairs(suite: SuiteFile, doc: Doc) -> list[str]:
        if suite.pairs == "all":
            return all_pairs()
        pairs = []
        for i, raw in enumerate(suite.pairs):
            name = normalize_task_name(raw)
            if name not in all_pairs():
                raise _located(doc, ("pairs", i), _suggest("task", raw, all_pairs(), query=name))
            pairs.append(name)
        return pairs

    @staticmethod
    def _suite_task_keys(suite: SuiteFile, doc: Doc, pairs: list[str]) -> dict[str, str]:
        """Canonical ``pair`` / ``pair@dataset`` -> the key as written in the suite's ``tasks``."""
        keys: dict[str, str] = {}
        for raw in suite.tasks:
            pair, _, dataset = raw.partition("@")
            name = normalize_task_name(pair)
            if name not in pairs:
                raise _located(doc, ("tasks", raw), _suggest("task", pair, pairs, extra=" in this suite", query=name))
            if dataset:
                written = {normalize_dataset_name(d): d for d in suite.datasets}  # the suite's datasets as listed
                if normalize_dataset_name(dataset) not in written:
                    raise _located(doc, ("tasks", raw), _suggest("dataset", dataset, suite.datasets, extra=" in this suite"))
                dataset = written[normalize_dataset_name(dataset)]
            key = f"{name}@{dataset}" if dataset else name
            if key in keys:  # `clip->clip` and `cls->cls` are one task: the later layer would replace the first unseen
                raise _located(doc, ("tasks", raw), UserError(f"{raw!r} names the same task as {keys[key]!r}; merge their settings under one key"))
            keys[key] = raw
        return keys

    @staticmethod
    def _check_dataset_names(datasets: dict[str, tuple[DatasetSpec, Any, Doc]]) -> None:
        """No two datasets answer to one name: names and aliases are compared as ``--dataset`` is
        read (case, spaces and underscores ignored), so ``synth_mine`` and ``synth-mine``, or an
        alias inherited through ``include:`` (``coco``'s ``mscoco``), would send runs to whichever
        came first."""
        names: dict[str, tuple[str, Loc]] = {}
        for name, (_, _, doc) in datasets.items():
            key, where = normalize_dataset_name(name), doc.loc(("name",))
            if key in names:
                other, other_where = names[key]
                raise UserError(f"{where}: dataset name {name!r} is read as {key!r}, as dataset {other}'s is (at {other_where}); rename one of them")
            names[key] = (name, where)
        aliases: dict[str, tuple[str, Loc, Doc]] = {}
        for name, (_, file, doc) in datasets.items():
            for i, alias in enumerate(file.aliases):
                key, where = normalize_dataset_name(alias), doc.loc(("aliases", i))
                if key in names and names[key][0] != name:
                    other, other_where = names[key]
                    raise UserError(f"{where}: dataset {name}'s alias {alias!r} is the name of dataset {other} (at {other_where}); drop the alias")
                if key in aliases and aliases[key][0] != name:
                    other, other_where, other_doc = aliases[key]
                    if other_where.file != other_doc.file and where.file == doc.file:  # the other one inherited it: blame that one
                        name, where, doc, other, other_where = other, other_where, other_doc, name, where
                    if where.file != doc.file:
                        raise UserError(f"{doc.file}: dataset {name} inherits dataset {other}'s aliases through `include:` ({where}); "
                                        "give it its own with `aliases: [...]`, or none with `aliases: []`")
                    raise UserError(f"{where}: dataset {name}'s alias {alias!r} is also an alias of dataset {other} (at {other_where}); drop one of them")
                aliases.setdefault(key, (name, where, doc))

    @staticmethod
    def _task(pair: str, dataset: DatasetSpec, tier: TierFile, settings: Doc) -> TaskSpec:
        source_family, target_family = pair.split("->")
        source, target = tier.models[source_family], tier.models[target_family]  # type: ignore[index]
        hp = validate(Hyperparameters, settings, ("hyperparameters",), settings.data.get("hyperparameters", {}))
        ev = validate(EvalSettings, settings, ("eval",), settings.data.get("eval", {}))
        transfer = validate(TransferDefaults, settings, ("transfer",), settings.data.get("transfer", {}))
        version = validate(SettingsOverride, settings, (), {"version": settings.data.get("version")}).version
        in_domain = source_family == target_family
        return TaskSpec(
            name=pair,
            version=version or 1,
            source=source,
            target=target,
            dataset=dataset,
            metric=target.metric,
            judge=tier.judge if target.kind == "generation" else None,
            hyperparameters=hp,
            eval=ev,
            default_transfer=transfer.in_domain if in_domain else transfer.cross_domain,
            in_domain=in_domain,
        )


def _located(doc: Doc, key: Key, error: UserError) -> UserError:
    return UserError(f"{doc.loc(key)}: {error}")


def list_tasks_table(registry: TaskRegistry) -> list[dict[str, Any]]:
    """One row per task for ``vwbench ls`` (and ``--json``): task, dataset, tier, source, target,
    metric, version, pinned."""
    return [
        {
            "task": t.name,
            "dataset": t.dataset.name,
            "tier": t.tier,
            "source": t.source.family,
            "target": t.target.family,
            "metric": t.metric,
            "version": t.version,
            "pinned": t.pinned,
        }
        for t in registry.tasks()
    ]
