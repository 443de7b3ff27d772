"""Pins found by mutation testing (round 3) of submission validation and the sandbox: exact
messages, limits, and what is accepted (each test names the behaviour it holds in place)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vwbench.errors import UserError
from vwbench.submissions import validate
from vwbench.submissions.validate import MAX_FOLDER_BYTES, MAX_FOLDER_FILES, check_linear_map, check_transfer_folder

from .helpers import LSTSQ_BODY, linear_map, transfer_folder


def test_a_refused_linear_map_names_its_one_problem_without_a_count(tmp_path: Path) -> None:
    from vwbench.submissions.transfers import LinearMapTransfer

    path = tmp_path / "m.safetensors"
    linear_map(path, torch.randn(3, 4), torch.randn(2))
    with pytest.raises(UserError) as info:
        LinearMapTransfer(path)
    assert str(info.value) == f"{path}: invalid linear-map submission: 'bias' has shape [2], expected [3]"


def test_a_refused_linear_map_with_several_problems_counts_the_others(tmp_path: Path) -> None:
    from vwbench.submissions.transfers import LinearMapTransfer

    path = tmp_path / "m.safetensors"
    linear_map(path, torch.randn(3, 4), torch.randn(2), source="dalle")
    with pytest.raises(UserError) as info:
        LinearMapTransfer(path)
    assert str(info.value).endswith(f" (and 1 more; run `vwbench validate {path}`)"), str(info.value)


@pytest.mark.parametrize("shape", [(0, 4), (3, 0)])
def test_an_empty_weight_is_refused(tmp_path: Path, shape: tuple[int, int]) -> None:
    report = check_linear_map(linear_map(tmp_path / "m.safetensors", torch.zeros(shape)))
    assert report.problems == [f"'weight' has shape {list(shape)}, expected [d_target, d_source]"]
    assert "d_target" not in report.info


def test_a_class_with_base_classes_may_inherit_fit_and_map(tmp_path: Path) -> None:
    body = "from base import Base\n\nclass Transfer(Base):\n    pass\n"
    folder = transfer_folder(tmp_path, body)
    (folder / "base.py").write_text(LSTSQ_BODY.replace("class Transfer:", "class Base:"))
    report = check_transfer_folder(folder)
    assert report.problems == [] and report.info["manifest"].class_name == "Transfer"


def test_a_class_imported_into_the_entry_file_is_accepted(tmp_path: Path) -> None:
    folder = transfer_folder(tmp_path, "from impl import Transfer\n")
    (folder / "impl.py").write_text(LSTSQ_BODY)
    assert check_transfer_folder(folder).problems == []
    (folder / "transfer.py").write_text("from impl import Transfer as Other\n")  # imported under another name: not the class
    assert check_transfer_folder(folder).problems == ["transfer.py defines no top-level class 'Transfer' (set 'class' in submission.yaml)"]


def test_too_many_small_files_are_refused(tmp_path: Path) -> None:
    folder = transfer_folder(tmp_path, LSTSQ_BODY)
    for i in range(MAX_FOLDER_FILES - 1):  # with submission.yaml and transfer.py: one file too many
        (folder / f"{i}.txt").write_text("x")
    size = sum(p.stat().st_size for p in folder.iterdir())
    assert size < MAX_FOLDER_BYTES
    assert check_transfer_folder(folder).problems == [
        f"the folder holds {MAX_FOLDER_FILES + 1} entries (files and folders), {size} bytes; the limits are {MAX_FOLDER_FILES} entries, {MAX_FOLDER_BYTES} bytes"
    ]
    (folder / "0.txt").unlink()
    assert check_transfer_folder(folder).problems == []


def test_one_file_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    folder = transfer_folder(tmp_path, LSTSQ_BODY)
    with (folder / "weights.npy").open("wb") as f:
        f.truncate(MAX_FOLDER_BYTES + 1)  # sparse: no disk space taken
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert check_transfer_folder(folder).problems == [
        f"the folder holds 3 entries (files and folders), {size} bytes; the limits are {MAX_FOLDER_FILES} entries, {MAX_FOLDER_BYTES} bytes"
    ]


def test_the_entry_py_file_stands_for_its_folder(tmp_path: Path) -> None:
    folder = transfer_folder(tmp_path, LSTSQ_BODY)
    report = validate(folder / "transfer.py", run_code=False)
    assert report.kind == "transfer-method" and report.ok and report.info["manifest"].name == "my-method"


# ---- the sandbox ---------------------------------------------------------------------------------

# the helpers' lstsq method with a describe() returning DESCRIBE (replaced per test; os for one of them)
SANDBOX_BODY = "import os\n" + LSTSQ_BODY + """
    def describe(self):
        return DESCRIBE
"""


def _sandbox_run(folder: Path):
    from vwbench.submissions.sandbox import Limits, run_transfer_submission

    from .helpers import planted

    source, target, tokens = planted()
    limits = Limits(time_limit_s=60, memory_mb=1024, output_mb=4)
    return run_transfer_submission(folder, "transfer.py", "Transfer", source, target, tokens, source[:2], [""] * 2, limits)


def test_a_describe_over_64_kb_is_replaced_by_a_note(tmp_path: Path) -> None:
    big = transfer_folder(tmp_path / "big", SANDBOX_BODY.replace("DESCRIBE", "{'blob': 'x' * 70_000}"))
    mapped, describe, _ = _sandbox_run(big)
    assert mapped.shape == (2, 6) and describe == {"describe": "omitted: over 64 kB"}
    small = transfer_folder(tmp_path / "small", SANDBOX_BODY.replace("DESCRIBE", "{'blob': 'x' * 60_000}"))
    assert _sandbox_run(small)[1] == {"blob": "x" * 60_000}


def test_hidden_files_and_caches_are_not_copied_into_the_sandbox(tmp_path: Path) -> None:
    folder = transfer_folder(tmp_path, SANDBOX_BODY.replace("DESCRIBE", "{'copied': sorted(os.listdir(os.path.dirname(__file__)))}"))
    (folder / ".env").write_text("TOKEN=hunter2")
    (folder / ".git").mkdir()
    (folder / ".git" / "config").write_text("[core]")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "transfer.cpython-311.pyc").write_bytes(b"\0")
    (folder / "notes.txt").write_text("kept")
    _, describe, _ = _sandbox_run(folder)
    assert describe == {"copied": ["notes.txt", "submission.yaml", "transfer.py"]}
