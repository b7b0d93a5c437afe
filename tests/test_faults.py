"""Faults, with real processes and real signals: SIGTERM during ``compare``, two ``compare``
processes on one folder, a stale lock, a truncated checkpoint at ``--resume``, and an output
folder that cannot be written."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("datasets")

from advnlp.experiment.run_folder import RunFolder  # noqa: E402

from .cli_data import SMALL_RUN, write_splits  # noqa: E402
from .launch import ENV  # noqa: E402

LOCK = ".lock"


def advnlp(*args: str) -> list[str]:
    return [sys.executable, "-m", "advnlp", *args]


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        advnlp(*args), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(advnlp(*args), env=ENV, capture_output=True, text=True, timeout=timeout)


def wait_for(condition, process: subprocess.Popen, what: str, timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert process.poll() is None, f"the process ended before {what}: {process.stderr.read()}"
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def lines(stderr: str) -> list[str]:
    """Lines of stderr as a terminal shows them (progress bars redraw with carriage returns)."""
    return [
        part.strip() for line in stderr.splitlines() for part in line.split("\r") if part.strip()
    ]


def stamp(path: Path) -> tuple[int, int, bytes]:
    """Identity of a file: rewritten (even with the same bytes) means a new inode or mtime."""
    info = path.stat()
    return info.st_ino, info.st_mtime_ns, path.read_bytes()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_splits(tmp_path_factory.mktemp("data"), train=64, dev=24)


def compare_args(data, out: Path, *extra: str) -> list[str]:
    train, dev = data
    return [
        "compare", "--train", str(train), "--dev", str(dev), "--output", str(out),
        "--methods", "none,fgm", "--epsilon", "0.1", "--seeds", "0", *SMALL_RUN, *extra,
    ]  # fmt: skip


def assert_folder_consistent(out: Path) -> None:
    """No temp files, no lock, and every results.json whole."""
    assert not list(out.rglob("*.tmp")), list(out.rglob("*.tmp"))
    assert not (out / LOCK).exists(), "the lock outlived its process"
    json.loads((out / "compare.json").read_text())
    for results in out.glob("runs/*/results.json"):
        json.loads(results.read_text())


def test_sigterm_during_compare_stops_cleanly_and_a_rerun_resumes(data, tmp_path):
    out = tmp_path / "cmp"
    args = compare_args(data, out, "--epochs", "2")
    first, second = out / "runs" / "none-seed0", out / "runs" / "fgm-eps0.1-seed0"
    process = start(*args)

    def second_run_has_a_checkpoint() -> bool:
        return any(second.glob("checkpoints/checkpoint-*/trainer_state.json"))

    wait_for(second_run_has_a_checkpoint, process, "the second run's first checkpoint")
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)

    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert lines(stderr)[-1] == (
        "advnlp compare: stopped by SIGTERM; run the same command again to continue "
        "(finished runs are kept)"
    )
    assert_folder_consistent(out)
    assert RunFolder(first).results.exists() and not RunFolder(second).results.exists()
    finished = stamp(RunFolder(first).results)

    result = finish(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_folder_consistent(out)
    assert stamp(RunFolder(first).results) == finished  # not trained again
    resumed = json.loads(RunFolder(second).results.read_text())
    assert resumed["resumed_from"] is not None  # continued from its checkpoint
    assert [e["epoch"] for e in resumed["epochs"]] == [1, 2]
    summary = json.loads((out / "summary.json").read_text())
    assert {r["id"] for r in summary["runs"]} == {"none-seed0", "fgm-eps0.1-seed0"}


def test_second_compare_on_one_folder_is_refused_and_a_stale_lock_is_taken_over(data, tmp_path):
    out = tmp_path / "cmp"
    args = compare_args(data, out, "--epochs", "1")
    owner = start(*args)

    def locked_by_owner() -> bool:
        lock = out / LOCK
        return lock.exists() and lock.read_text().strip() == str(owner.pid)

    wait_for(locked_by_owner, owner, "the lock")
    second = finish(*args)
    assert second.returncode == 2, second.stderr[-3000:]
    assert second.stderr.strip().splitlines() == [
        f"advnlp compare: error: --output {out}: in use by another advnlp process "
        f"(pid {owner.pid}, lock {out / LOCK}); wait for it to finish or choose another folder"
    ]
    _, stderr = owner.communicate(timeout=600)
    assert owner.returncode == 0, stderr[-3000:]
    assert_folder_consistent(out)
    summary = (out / "summary.json").read_bytes()
    assert len(json.loads(summary)["runs"]) == 2

    # A lock left by a process that died (kill -9 leaves its file behind) is taken over.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / LOCK).write_text(f"{dead.pid}\n")
    again = finish(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_folder_consistent(out)


def test_truncated_checkpoint_at_resume_falls_back_to_the_previous_one(data, tmp_path):
    train, dev = data
    out = tmp_path / "run"
    args = [
        "train", "--train", str(train), "--dev", str(dev), "--output", str(out),
        "--epochs", "3", *SMALL_RUN, "--method", "fgm", "--seed", "1",
    ]  # fmt: skip
    whole = finish(*args, "--keep-checkpoints")
    assert whole.returncode == 0, whole.stderr[-3000:]
    expected = json.loads(RunFolder(out).results.read_text())
    # What a run killed after its last checkpoint, on a disk that lost the checkpoint's
    # tail, leaves behind: no model, no results, and a truncated newest checkpoint.
    RunFolder(out).results.unlink()
    subprocess.run(["rm", "-r", str(out / "model")], check=True)
    older, newest = sorted(out.glob("checkpoints/checkpoint-*"), key=lambda p: int(p.name[11:]))
    weights = newest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])

    result = finish(*args, "--resume")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    warnings = [line for line in lines(result.stderr) if "warning" in line]
    assert warnings == [
        f"advnlp train: warning: --resume: skipping {newest}: model.safetensors is truncated; "
        "trying the one before it"
    ]
    resumed = json.loads(RunFolder(out).results.read_text())
    assert resumed["resumed_from"] == str(older)
    assert resumed["dev_predictions"] == expected["dev_predictions"]
    for x, y in zip(expected["epochs"], resumed["epochs"], strict=True):
        assert y["dev_accuracy"] == x["dev_accuracy"]


def test_corrupt_checkpoints_everywhere_restart_the_run_with_a_warning(data, tmp_path):
    train, dev = data
    out = tmp_path / "run"
    args = [
        "train", "--train", str(train), "--dev", str(dev), "--output", str(out),
        "--epochs", "2", *SMALL_RUN, "--method", "none",
    ]  # fmt: skip
    assert finish(*args, "--keep-checkpoints").returncode == 0
    expected = json.loads(RunFolder(out).results.read_text())
    RunFolder(out).results.unlink()
    subprocess.run(["rm", "-r", str(out / "model")], check=True)
    checkpoints = sorted(out.glob("checkpoints/checkpoint-*"), key=lambda p: int(p.name[11:]))
    assert len(checkpoints) == 2
    for checkpoint in checkpoints:  # same length, one flipped byte: only the CRC can tell
        optimizer = checkpoint / "optimizer.pt"
        data_bytes = bytearray(optimizer.read_bytes())
        data_bytes[len(data_bytes) // 2] ^= 0xFF
        optimizer.write_bytes(bytes(data_bytes))

    result = finish(*args, "--resume")
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [line for line in lines(result.stderr) if "warning" in line]
    assert len(warnings) == 3, warnings
    assert "optimizer.pt is corrupt" in warnings[0]
    assert warnings[-1] == (
        "advnlp train: warning: --resume: no complete checkpoint is left; "
        "the run starts from the beginning"
    )
    resumed = json.loads(RunFolder(out).results.read_text())
    assert resumed["resumed_from"] is None
    assert resumed["dev_predictions"] == expected["dev_predictions"]


UNWRITABLE = {
    "train": lambda data, out: [
        "train", "--train", str(data[0]), "--dev", str(data[1]), "--output", str(out),
        *SMALL_RUN,
    ],
    "compare": lambda data, out: compare_args(data, out),
    "demo": lambda data, out: ["demo", "--output", str(out)],
}  # fmt: skip


@pytest.mark.parametrize("command", UNWRITABLE)
@pytest.mark.parametrize("where", ["under-a-file", "sysfs"])
def test_unwritable_output_gives_one_line(command, where, data, tmp_path):
    if where == "under-a-file":  # fails for root too: a file cannot hold a folder
        (tmp_path / "plain").write_text("x")
        out = tmp_path / "plain" / "out"
    else:  # mkdir in sysfs fails even for root (EPERM), after every check has passed
        if not Path("/sys/kernel").is_dir():
            pytest.skip("no sysfs mounted at /sys")
        out = Path("/sys/advnlp-test-output")
    before = sorted(tmp_path.rglob("*"))
    result = finish(*UNWRITABLE[command](data, out))
    assert result.returncode == 2, result.stderr[-3000:]
    shown = result.stderr.strip().splitlines()
    assert len(shown) == 1, result.stderr[-3000:]
    assert shown[0].startswith(f"advnlp {command}: error: --output {out}"), shown
    assert sorted(tmp_path.rglob("*")) == before
    assert not out.exists()
