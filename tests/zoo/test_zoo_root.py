"""`vwbench zoo train|check|report --root`: relative to the current directory, and a root that is
missing, a file, not writable or empty is a one-line error before any work."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from vwbench.errors import UserError
from vwbench.zoo import build


def _fake_checkpoint(folder: Path) -> None:
    folder.mkdir(parents=True)
    weights = b"not really weights"
    (folder / "open_clip_model.safetensors").write_bytes(weights)
    digest = hashlib.sha256(weights).hexdigest()
    (folder / "manifest.json").write_text(json.dumps({"files": {"open_clip_model.safetensors": digest}}))


def test_check_root_is_relative_to_the_current_directory(tmp_path, monkeypatch):
    _fake_checkpoint(tmp_path / "zcopy" / "mini-clip")
    monkeypatch.chdir(tmp_path)
    folders = build.verify_zoo(Path("zcopy"), only=["mini-clip"])
    assert folders["mini-clip"].resolve() == (tmp_path / "zcopy" / "mini-clip").resolve()


def test_check_cli_with_a_relative_root(tmp_path, monkeypatch, capsys):
    from vwbench.cli import main

    _fake_checkpoint(tmp_path / "zcopy" / "mini-clip")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["vwbench", "zoo", "check", "--hashes-only", "--root", "zcopy", "--only", "mini-clip"])
    main()
    assert "mini-clip: ok" in capsys.readouterr().out


@pytest.mark.parametrize("make", ["missing", "file"])
def test_check_refuses_a_root_that_is_not_a_folder(tmp_path, make):
    root = tmp_path / "zoo"
    if make == "file":
        root.write_text("")
    with pytest.raises(UserError, match=r"zoo folder .*zoo (does not exist|is a file).*--root"):
        build.verify_zoo(root, only=["mini-clip"])


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_report_refuses_a_root_without_checkpoints(tmp_path, make):
    from vwbench.zoo.report import write_zoo_report

    root = tmp_path / "zoo"
    if make == "empty":
        root.mkdir()
    with pytest.raises(UserError) as info:
        write_zoo_report(tmp_path / "card", root)
    assert "--root" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "card").exists()  # nothing written


def test_report_cli_refuses_a_nonexistent_root(tmp_path, monkeypatch, capsys):
    from vwbench.cli import main

    monkeypatch.setattr("sys.argv", ["vwbench", "zoo", "report", "--out", str(tmp_path / "zr4"), "--root", str(tmp_path / "nonexistent")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: zoo folder") and err.count("\n") == 1
    assert not (tmp_path / "zr4").exists()  # checked before --out is made
    (tmp_path / "empty").mkdir()
    monkeypatch.setattr("sys.argv", ["vwbench", "zoo", "report", "--out", str(tmp_path / "zr5"), "--root", str(tmp_path / "empty")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2 and "no zoo checkpoints in" in capsys.readouterr().err
    assert not (tmp_path / "zr5").exists()


@pytest.fixture
def no_training(monkeypatch):
    """Every entry's recipe replaced by one that fails the test if it is ever called."""
    def never(out, root, log):
        raise AssertionError("training started despite a bad --root")

    for name, entry in list(build.ENTRIES.items()):
        monkeypatch.setitem(build.ENTRIES, name, build.ZooEntry(name, never, entry.quality, entry.after, entry.shipped))


def test_train_refuses_a_root_that_is_a_file(tmp_path, no_training):
    (tmp_path / "afile").write_text("")
    with pytest.raises(UserError, match=r"afile: it is a file, not a folder; choose a folder with --root"):
        build.train_zoo(tmp_path / "afile", only=["mini-clip"], log=lambda m: None)


def test_train_refuses_a_root_it_cannot_write(tmp_path, no_training):
    root = Path("/proc/vwbench-cannot-write/zoo")  # not creatable, even for root
    with pytest.raises(UserError, match=r"cannot write in .*: choose a writable folder with --root"):
        build.train_zoo(root, only=["mini-clip"], log=lambda m: None)


def test_train_refuses_a_read_only_root(tmp_path, no_training):
    import os
    import shutil
    import subprocess

    root = tmp_path / "ro"
    root.mkdir()
    root.chmod(0o555)
    mounted = False
    try:
        if os.access(root, os.W_OK):  # root ignores the mode bits: a read-only mount stops it too
            mount = ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(root)]
            if shutil.which("mount") is None or subprocess.run(mount, capture_output=True).returncode != 0:
                pytest.skip("running as a user that may write in read-only folders (root) who cannot mount one")
            mounted = True
        with pytest.raises(UserError, match="choose a writable folder with --root"):
            build.train_zoo(root, only=["mini-clip"], log=lambda m: None)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(root)], check=False)
        root.chmod(0o755)


def test_train_refuses_a_build_dir_that_is_a_file(tmp_path, monkeypatch, no_training):
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv(build.BUILD_DIR_ENV, str(tmp_path / "afile"))
    with pytest.raises(UserError, match=r"VWBENCH_ZOO_BUILD"):
        build.train_zoo(tmp_path / "zoo", only=["mini-sd-text"], log=lambda m: None)


def test_train_cli_refuses_a_file_root_in_one_line(tmp_path, monkeypatch, capsys, no_training):
    from vwbench.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("")
    monkeypatch.setattr("sys.argv", ["vwbench", "zoo", "train", "--root", "afile", "--only", "mini-clip"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: cannot write in") and err.count("\n") == 1


def test_train_root_is_relative_to_the_current_directory(tmp_path, monkeypatch):
    seen = {}

    def fake(out, root, log):
        seen["out"], seen["root"] = out, root
        out.mkdir()
        return {}

    monkeypatch.setitem(build.ENTRIES, "mini-clip", build.ZooEntry("mini-clip", fake, build.ENTRIES["mini-clip"].quality))
    monkeypatch.chdir(tmp_path)
    build.train_zoo(Path("rel"), only=["mini-clip"], log=lambda m: None)
    assert (tmp_path / "rel" / "mini-clip").is_dir()
    assert seen["root"].is_absolute()


def test_check_hashes_only_reports_every_model_before_failing(tmp_path, monkeypatch):
    """`zoo check --hashes-only` stopped at the first bad model; now each model gets its line (or
    its JSON entry) and the error names every bad one, exit 2."""
    import json as _json

    from typer.testing import CliRunner

    from vwbench.cli import app

    root = tmp_path / "zoo"
    for name in ("mini-clip", "mini-judge", "mini-owlv2", "mini-sd"):
        _fake_checkpoint(root / name)
    for name in ("mini-judge", "mini-sd"):
        (root / name / "open_clip_model.safetensors").write_bytes(b"changed")
    monkeypatch.setenv(build.BUILD_DIR_ENV, str(tmp_path / "build"))
    res = CliRunner().invoke(app, ["zoo", "check", "--hashes-only", "--root", str(root)])
    assert isinstance(res.exception, UserError)  # the entry point makes it one line, exit 2
    assert res.stdout.splitlines() == [f"mini-clip: ok ({root / 'mini-clip'})", f"mini-owlv2: ok ({root / 'mini-owlv2'})", "mini-judge: FAILED", "mini-sd: FAILED"]
    message = str(res.exception)
    assert "\n" not in message and message.startswith("2 mini checkpoints failed their check: mini-judge: checkpoint ")
    assert "; mini-sd: checkpoint " in message and message.count("has sha256") == 2

    res = CliRunner().invoke(app, ["zoo", "check", "--hashes-only", "--json", "--root", str(root)])
    report = _json.loads(res.stdout)
    assert isinstance(res.exception, UserError) and [report[n]["hashes"] for n in sorted(report)] == ["ok", "failed", "ok", "failed"]
    assert "has sha256" in report["mini-sd"]["error"]

    with pytest.raises(UserError, match="^2 mini checkpoints failed their check: "):
        build.verify_zoo(root)
