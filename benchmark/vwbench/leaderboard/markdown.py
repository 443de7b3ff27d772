"""``README.md`` of a leaderboard: markdown tables per dataset and per pair, with CIs, ranks and a
result id on every number (the provenance table at the end resolves it).

Names come from result files, which anyone can write, so every text cell is escaped: HTML
special characters become entities (GitHub renders inline HTML) and markdown's table and
emphasis characters are backslash-escaped.
"""

from __future__ import annotations

import html
import re
from typing import Any

from vwbench.leaderboard.build import fmt

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()|~])")
# GitHub links bare URLs and e-mail addresses ("https://...", "www....", "a@b.c") even in table
# cells: an escaped ":", "." or "@" breaks the pattern and renders as itself
_AUTOLINK = re.compile(r"(?i)(?<=[a-z])(:)(?=//)|(?<=\bwww)(\.)|(@)")


def md_escape(text: Any) -> str:
    """Safe inside a markdown table cell: no HTML, no links, no table breaks, one line."""
    escaped = html.escape(str(text), quote=True)
    escaped = _MD_SPECIAL.sub(r"\\\1", escaped)
    escaped = _AUTOLINK.sub(lambda m: "\\" + m.group(0), escaped)
    return " ".join(escaped.split())


TIED_MARK = "≈"


def tied_meaning(best: str = "method") -> str:
    """What the tied mark means (``best``: what a table ranks, a method or a study's row)."""
    return f"tied: its 95% interval reaches the best {best}'s interval"


def tied_legend(best: str = "method") -> str:
    """The line under a table with a :func:`shows_tied` row."""
    return f"{TIED_MARK} {tied_meaning(best)}"


def shows_tied(row: dict[str, Any]) -> bool:
    """Whether a ranked row carries the tied mark: ``tied_with_best`` (its 95% CI reaches the best
    row's) and ranked below 1 (a rank-1 row reads as the best already). Rows without
    ``tied_with_best`` (a summary row, the in-domain ceiling, a board written before it) never do."""
    return bool(row.get("tied_with_best")) and row.get("rank") not in (None, 1)


def _rank(row: dict[str, Any]) -> str:
    return f"{row['rank']} {TIED_MARK}" if shows_tied(row) else str(row["rank"])


def _cell(row: dict[str, Any] | None) -> str:
    if not row:
        return "–"
    low, high = row["ci95"]
    return f"{fmt(row['value'])} [{fmt(low)}, {fmt(high)}] <sub>{md_escape(row['result'])}</sub>"


def render_markdown(board: dict[str, Any]) -> str:
    out = [f"# Leaderboard: {md_escape(board['name'])}", ""]
    out.append(
        f"Generated {md_escape(board['generated'])} by vwbench {md_escape(board['vwbench_version'])} "
        f"(schema {md_escape(board['schema'])}) from {len(board['results'])} result files. Values are the task's "
        "metric with its 95% confidence interval over concepts x trials; the small id after each number "
        "is its result file in the provenance table below. Ranks are by value as shown, to 3 decimals "
        "(values that read the same share a rank)."
    )
    out.append("")
    for ds, data in board["datasets"].items():
        out += [f"## {md_escape(ds)}", ""]
        if data["summary"]:
            cross = data["cross_pairs"]
            out.append("Mean over the cross-model pairs (each pair in its target's metric); a method without "
                       "a result on every pair is listed unranked (—), its mean being over fewer pairs; the "
                       "in-domain words' row is the ceiling, not ranked:")
            out.append("")
            out.append("| rank | method | mean | pairs | " + " | ".join(md_escape(t) for t in cross) + " |")
            out.append("|---:|---|---:|---:|" + "---:|" * len(cross))
            for row in data["summary"]:
                values = " | ".join(fmt(row["values"].get(t)) for t in cross)
                rank = "ceiling" if row.get("ceiling") else "—" if row["rank"] is None else row["rank"]
                out.append(f"| {rank} | {md_escape(row['method'])} | {fmt(row['mean'])} | {row['n_pairs']} | {values} |")
            out.append("")
        for task, pair in data["pairs"].items():
            out += [f"### {md_escape(ds)}: {md_escape(task)} ({md_escape(pair['metric'])})", ""]
            out += ["| rank | method | value [95% CI] |", "|---:|---|---|"]
            for row in pair["rows"]:
                out.append(f"| {_rank(row)} | {md_escape(row['method'])} | {_cell(row)} |")
            if pair["in_domain"]:
                out.append(f"| ceiling | in-domain ({md_escape(pair['target'])} word) | {_cell(pair['in_domain'])} |")
            if any(shows_tied(row) for row in pair["rows"]):
                out += ["", tied_legend("method")]
            out.append("")
    out += _render_studies(board.get("studies") or {})
    out += ["## Provenance", ""]
    note = provenance_note(board)
    if note:
        out += [note, ""]
    out += ["| id | file | sha256 | task | dataset | transfer | steps | trials | seed | git commit | created |", "|---|---|---|---|---|---|---:|---:|---:|---|---|"]
    for rid, r in board["results"].items():
        p = r["provenance"]
        out.append(
            f"| {rid} | {md_escape(r['file'])} | {md_escape(r['sha256'][:16])} | {md_escape(r['task'])} | {md_escape(r['dataset'])} | "
            f"{md_escape(r['transfer'])} | {r['steps']} | {r['n_trials']} | {r['seed']} | {md_escape(p['git_commit'] or '–')} | {md_escape(p['created'])} |"
        )
    if board["skipped"]:
        out += ["", "Skipped files (not valid results):", ""]
        out += [f"- {md_escape(s['file'])}: {md_escape(s['reason'])}" for s in board["skipped"]]
    out += _render_superseded(board)
    out.append("")
    return "\n".join(out)


def provenance_note(board: dict[str, Any]) -> str | None:
    """A sentence on results whose code no commit is known to hold: made from a working tree with
    uncommitted changes (``<commit>-dirty``), from one whose state git could not report
    (``<commit>-unchecked``) or outside a git checkout. None when every result names a clean commit."""
    commits = [r["provenance"].get("git_commit") for r in board["results"].values()]
    counts = {
        "dirty": sum(1 for c in commits if c and c.endswith("-dirty")),
        "unchecked": sum(1 for c in commits if c and c.endswith("-unchecked")),
        "none": sum(1 for c in commits if not c),
    }
    says = {
        "dirty": ("was made", "were made", "from a working tree with uncommitted changes (commit `-dirty`: that commit's code plus changes it does not hold)"),
        "unchecked": ("was made", "were made", "from a working tree git could not check for changes (commit `-unchecked`)"),
        "none": ("names", "name", "no commit (made outside a git checkout)"),
    }
    parts = [f"{n} {says[k][0] if n == 1 else says[k][1]} {says[k][2]}" for k, n in counts.items() if n]
    if not parts:
        return None
    total = len(commits)
    if len(parts) == 1 and sum(counts.values()) == total:
        return ("The one result " if total == 1 else f"All {total} results ") + parts[0].split(" ", 1)[1] + "."
    return f"Of the {total} results, " + ", and ".join(parts) + "."


SUPERSEDED_RULE = ("A board shows one result per dataset, task and method: the run with the most steps, then the most "
                   "trials, then the newest. These results were replaced by another run of theirs")


def superseded_rows(board: dict[str, Any]) -> list[dict[str, Any]]:
    """``superseded_by`` of a board; a board written before it holds only the files' names."""
    if board.get("superseded_by") is not None:
        return board["superseded_by"]
    return [{"file": f, "kept": None, "why": None, "differs": []} for f in board.get("superseded") or []]


def _render_superseded(board: dict[str, Any]) -> list[str]:
    rows = superseded_rows(board)
    if not rows:
        return []
    out = ["", "## Superseded results", "", f"{SUPERSEDED_RULE} (**bold**: a different experiment, not only a shorter or older run):", ""]
    for row in rows:
        line = md_escape(row["file"])
        if row.get("kept"):
            line += f" replaced by {md_escape(row['kept'])}: {md_escape(row['why'])}"
        out.append(f"- **{line}**" if row.get("differs") else f"- {line}")
    return out


MAX_TABLE_ROWS = 40


def _value(value: Any) -> str:
    """One table cell: numbers to 3 decimals (tiny ones in e-notation), anything else as escaped text."""
    if isinstance(value, bool) or value is None:
        return "–" if value is None else ("yes" if value else "no")
    if isinstance(value, float):
        return fmt(value) if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return md_escape(value)


def _render_table(columns: list[str], rows: list[dict[str, Any]]) -> list[str]:
    """Row dicts as a markdown table with the given columns."""
    out = ["| " + " | ".join(md_escape(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows[:MAX_TABLE_ROWS]:
        out.append("| " + " | ".join(_value(row.get(c)) for c in columns) + " |")
    if len(rows) > MAX_TABLE_ROWS:
        out.append(f"\n({len(rows) - MAX_TABLE_ROWS} more rows in leaderboard.json)")
    return out


def _render_studies(studies: dict[str, Any]) -> list[str]:
    """A section per study family (probe, align, sae): a ranked table per dataset, then each
    result's own tables."""
    out: list[str] = []
    for family, data in studies.items():
        out += [f"## Study: {md_escape(family)}", ""]
        if data.get("interval"):
            out += [f"Value: the family's headline metric with its {md_escape(data['interval'])}.", ""]
        for ds, table in data["datasets"].items():
            metrics = ", ".join(md_escape(m) for m in table["metrics"])
            out += [f"### {md_escape(family)} on {md_escape(ds)} (ranked by {metrics})", ""]
            columns = table["columns"]
            out.append("| rank | task | method | value [95% CI] | " + " | ".join(md_escape(c) for c in columns) + " |")
            out.append("|---:|---|---|---|" + "---:|" * len(columns))
            for row in table["rows"]:
                values = " | ".join(fmt(row["metrics"].get(c)) for c in columns)
                out.append(f"| {_rank(row)} | {md_escape(row['task'])} | {md_escape(row['method'])} | {_cell(row)} | {values} |")
            if any(shows_tied(row) for row in table["rows"]):
                out += ["", tied_legend("row")]
            out.append("")
            for rid, tables in table["tables"].items():
                owner = next((r for r in table["rows"] if r["result"] == rid), {"task": "", "method": ""})
                for name, t in tables.items():
                    title = f"{md_escape(rid)} ({md_escape(owner['task'])}, {md_escape(owner['method'])}): {md_escape(name)}"
                    body = _render_table(t["columns"], t["rows"]) if t["rows"] else ["No rows (the study found none)."]
                    out += [f"#### {title}", ""] + body + [""]
    return out
