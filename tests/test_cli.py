"""The advnlp command: real training runs on tiny files; the output folder's rules; compare
skipping finished runs and pairing its runs. Every bad input: test_cli_errors.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("datasets")

from advnlp.cli import main  # noqa: E402
from advnlp.experiment.run_folder import RunFolder  # noqa: E402

from .cli_data import SMALL_RUN, fails_in_one_line, write_splits  # noqa: E402

FAST = ["--epochs", "1", *SMALL_RUN]


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    return write_splits(tmp_path_factory.mktemp("data"))


def train_args(train, dev, output, *extra):
    return [
        "train",
        "--train",
        str(train),
        "--dev",
        str(dev),
        "--output",
        str(output),
        *FAST,
        *extra,
    ]


def test_train_writes_results_and_a_loadable_model(splits, tmp_path, capsys):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    train, dev = splits
    out = tmp_path / "run"
    assert (
        main(
            train_args(
                train,
                dev,
                out,
                "--method",
                "fgm",
                "--epsilon",
                "0.5",
                "--epochs",
                "2",
                "--test",
                str(dev),
            )
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "| epoch | train loss" in printed and "best epoch" in printed

    results = json.loads(RunFolder(out).results.read_text())
    assert results["config"]["method"] == "fgm"
    assert results["config"]["method_kwargs"] == {"epsilon": 0.5}
    assert [e["epoch"] for e in results["epochs"]] == [1, 2]
    for epoch in results["epochs"]:
        assert 0 <= epoch["dev_accuracy"] <= 1 and epoch["train_loss"] > 0
        assert epoch["step_time_s"] > 0
        # the epoch's steps: at least its median step, never more than the whole training
        assert epoch["step_time_s"] <= epoch["train_s"] < results["train_runtime_s"]
    assert results["labels"] == ["neg", "pos"]
    assert results["test"]["n"] == 24 and results["dev"]["n"] == 24
    assert len(results["dev_predictions"]) == 24
    assert set(results["versions"]) >= {"torch", "transformers", "advnlp"}
    assert not (out / "checkpoints").exists()

    # The saved model is the best-on-dev model and loads with plain transformers.
    model = AutoModelForSequenceClassification.from_pretrained(out / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    rows = [json.loads(line) for line in dev.read_text().splitlines()]
    batch = tokenizer(
        [r["sentence"] for r in rows],
        padding=True,
        truncation=True,
        max_length=24,
        return_tensors="pt",
    )
    with torch.no_grad():
        predicted = model(**batch).logits.argmax(-1).tolist()
    assert predicted == results["dev_predictions"]
    best = max(e["dev_accuracy"] for e in results["epochs"])
    assert results["dev"]["accuracy"] == pytest.approx(best)
    assert model.config.id2label == {0: "neg", 1: "pos"}


def test_chinese_text_tokenizes_per_character(splits, tmp_path):
    from transformers import AutoTokenizer

    train, dev = splits
    assert main(train_args(train, dev, tmp_path / "run", "--method", "none")) == 0
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "run" / "model")
    assert tokenizer.tokenize("酒店很好") == ["酒", "店", "很", "好"]


def test_sentence_pairs_and_csv(tmp_path):
    rows = "sentence1,sentence2,label\n" + "".join(
        f"今天{'好' if i % 2 else '差'},明天{i},{'yes' if i % 2 else 'no'}\n" for i in range(24)
    )
    (tmp_path / "pairs.csv").write_text(rows, "utf-8")
    pairs = tmp_path / "pairs.csv"
    assert main(train_args(pairs, pairs, tmp_path / "run", "--method", "gp")) == 0
    results = json.loads(RunFolder(tmp_path / "run").results.read_text())
    assert results["labels"] == ["no", "yes"]


def test_output_folder_rules(splits, tmp_path, capsys):
    train, dev = splits
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    fails_in_one_line(
        train_args(train, dev, foreign), capsys, "the folder is not empty", "--overwrite"
    )
    fails_in_one_line(
        train_args(train, dev, foreign, "--overwrite"), capsys, "does not hold an advnlp run"
    )
    assert (foreign / "notes.txt").read_text() == "keep me"

    out = tmp_path / "run"
    assert main(train_args(train, dev, out, "--method", "none")) == 0
    capsys.readouterr()
    fails_in_one_line(train_args(train, dev, out, "--method", "none"), capsys, "not empty")
    fails_in_one_line(
        train_args(train, dev, out, "--method", "gp", "--resume"),
        capsys,
        "was started with method='none', not 'gp'",
    )
    first = RunFolder(out).results.read_text()
    assert main(train_args(train, dev, out, "--method", "none", "--resume")) == 0  # complete
    assert RunFolder(out).results.read_text() == first
    assert main(train_args(train, dev, out, "--method", "fgm", "--overwrite")) == 0
    assert json.loads(RunFolder(out).results.read_text())["config"]["method"] == "fgm"


def _command(*args):
    return [sys.executable, "-m", "advnlp", *args]


def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    """Kill -9 a run after its first epoch checkpoint, resume it, and compare with a run that
    was never interrupted, made by another process with its own tokenizer (same command): the
    same metrics, epoch by epoch. The resumed process must run only the steps after the
    checkpoint (a restart from scratch would give the same metrics too: training is
    deterministic)."""
    import signal
    import time

    train, dev = write_splits(tmp_path / "data", train=240, dev=40)
    common = ["--epochs", "3", *SMALL_RUN, "--model", "scratch-tiny", "--method", "fgm"]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    args = ["train", "--train", str(train), "--dev", str(dev), *common, "--seed", "3"]
    # One thread each, so that the uninterrupted run can go on beside the interrupted one.
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    uninterrupted = subprocess.Popen(
        _command(*args, "--output", str(whole)),
        env={**env, "PYTHONHASHSEED": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    process = subprocess.Popen(
        _command(*args, "--output", str(broken)),
        env={**env, "PYTHONHASHSEED": "2"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if RunFolder(broken).last_checkpoint(prune=False):
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not RunFolder(broken).results.exists()
    assert not (broken / "model").exists()
    checkpoint = RunFolder(broken).last_checkpoint(prune=False)  # what --resume takes
    done = json.loads((checkpoint / "trainer_state.json").read_text())["global_step"]

    result = subprocess.run(
        _command(*args, "--output", str(broken), "--resume"),
        env={**env, "PYTHONHASHSEED": "3"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    _, stderr = uninterrupted.communicate(timeout=300)
    assert uninterrupted.returncode == 0, stderr[-2000:]
    a = json.loads(RunFolder(whole).results.read_text())
    b = json.loads(RunFolder(broken).results.read_text())
    assert Path(b["resumed_from"]).name == checkpoint.name
    assert a["steps_run"] == a["steps"] == b["steps"]
    assert 0 < done < b["steps"]
    assert b["steps_run"] == b["steps"] - done  # it went on from the checkpoint
    assert b["tokenizer_sha256"] == a["tokenizer_sha256"]  # two processes, one tokenizer
    assert b["dev_predictions"] == a["dev_predictions"]
    assert b["best_epoch"] == a["best_epoch"]
    for x, y in zip(a["epochs"], b["epochs"], strict=True):
        assert y["dev_accuracy"] == x["dev_accuracy"]
        assert y["train_loss"] == pytest.approx(x["train_loss"], rel=1e-6)


def test_local_pretrained_folder_and_save_to_disk_data(tmp_path, capsys):
    """--model a local Hugging Face folder (the path users with a downloaded checkpoint take),
    and data from a datasets save_to_disk folder with splits (DIR:SPLIT)."""
    import datasets
    from transformers import BertConfig, BertForSequenceClassification

    from advnlp.experiment.models import train_tokenizer

    from .cli_data import examples

    rows = examples(48, 0)
    folder = tmp_path / "data"
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(rows[:32]),
            "validation": datasets.Dataset.from_list(rows[32:]),
        }
    ).save_to_disk(str(folder))

    checkpoint = tmp_path / "checkpoint"
    tokenizer = train_tokenizer([r["sentence"] for r in rows], vocab_size=200)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=7,
    )
    BertForSequenceClassification(config).save_pretrained(checkpoint)  # another head size
    tokenizer.save_pretrained(checkpoint)

    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--train",
                f"{folder}:train",
                "--dev",
                f"{folder}:validation",
                "--model",
                str(checkpoint),
                "--method",
                "gp",
                "--epsilon",
                "0.1",
                "--output",
                str(out),
                *FAST,
            ]
        )
        == 0
    )
    results = json.loads(RunFolder(out).results.read_text())
    assert results["labels"] == ["neg", "pos"] and results["dev"]["n"] == 16
    capsys.readouterr()  # the progress bars of save_to_disk above
    fails_in_one_line(
        ["train", "--train", str(folder), "--dev", str(folder), "--output", str(out / "x"), *FAST],
        capsys,
        "holds splits train, validation",
        f"write {folder}:SPLIT",
    )


def compare_args(train, dev, output, *extra):
    return [
        "compare", "--train", str(train), "--dev", str(dev), "--output", str(output),
        "--epochs", "1", *SMALL_RUN, *extra,
    ]  # fmt: skip


def test_compare_skips_finished_runs_without_training_them(tmp_path, capsys):
    train, dev = write_splits(tmp_path / "data", train=32, dev=16)
    out = tmp_path / "cmp"
    args = compare_args(
        train, dev, out, "--methods", "none,fgm", "--epsilon", "0.1", "--seeds", "0"
    )
    assert main(args) == 0
    printed = capsys.readouterr()
    # each run shows its own step bar (a run can take an hour) and its epochs' dev accuracy;
    # counted by the bar's first state: tqdm may skip the last (it redraws every few steps) and
    # shows its rate as s/step once a step takes more than a second
    assert len(re.findall(r"training: +0%\|[^|]*\| 0/\d+ ", printed.err)) >= 2
    assert re.search(r"step/s|s/step", printed.err)
    assert printed.out.count("epoch 1: dev accuracy") == 2
    finished = sorted(out.glob("runs/*/results.json")) + sorted(out.glob("runs/*/model/*"))
    assert len(finished) > 2

    def stamps():  # a run trained again rewrites these files: new inode, new mtime
        return {p: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in finished}

    before = stamps()
    summary = json.loads((out / "summary.json").read_text())
    for run in summary["runs"]:  # the compute each run took, and where
        trained = json.loads((out / "runs" / run["id"] / "results.json").read_text())
        assert run["train_s"] == sum(e["train_s"] for e in trained["epochs"]) > 0
        assert run["environment"] == trained["environment"] and run["environment"]["cpu"]
    # Without its data no run can train, nor even load data: the rerun must not need them.
    train.unlink()
    dev.unlink()
    capsys.readouterr()
    assert main(args) == 0, capsys.readouterr().err
    assert stamps() == before
    assert json.loads((out / "summary.json").read_text())["groups"] == summary["groups"]


def test_paired_runs_share_initial_weights_and_data_order(tmp_path, monkeypatch):
    """Same seed, different methods: the same initial weights and the same batches in the same
    order; another seed changes both (so the comparison is not vacuous). Observed by wrapping
    the real functions (they still run), keyed by the run folder each run writes to."""
    import hashlib

    from advnlp.experiment import train as train_module
    from advnlp.hf import AdversarialTrainer

    weights, batches, current = {}, {}, []
    make_model, training_step = train_module.make_model, AdversarialTrainer.training_step

    def recording_make_model(config, prepared):
        model = make_model(config, prepared)
        digest = hashlib.sha256()
        for name, tensor in sorted(model.state_dict().items()):
            digest.update(name.encode() + tensor.cpu().numpy().tobytes())
        current[:] = [Path(config.output).name]
        weights[current[0]] = digest.hexdigest()
        batches[current[0]] = []
        return model

    def recording_training_step(self, model, inputs, *rest, **kwargs):
        batches[current[0]].append(inputs["input_ids"].tolist())
        return training_step(self, model, inputs, *rest, **kwargs)

    monkeypatch.setattr(train_module, "make_model", recording_make_model)
    monkeypatch.setattr(AdversarialTrainer, "training_step", recording_training_step)
    train, dev = write_splits(tmp_path / "data", train=32, dev=16)
    args = ["--methods", "none,gp", "--epsilon", "0.1", "--seeds", "0,1"]
    assert main(compare_args(train, dev, tmp_path / "cmp", *args)) == 0

    assert len(weights) == 4 and all(len(b) == 4 for b in batches.values())
    for seed in (0, 1):
        runs = [f"none-seed{seed}", f"gp-eps0.1-seed{seed}"]
        assert len({weights[run] for run in runs}) == 1, seed
        assert all(batches[run] == batches[runs[0]] for run in runs), seed
    assert weights["none-seed0"] != weights["none-seed1"]
    assert batches["none-seed0"] != batches["none-seed1"]
