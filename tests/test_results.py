"""results.json as a type: what the writer writes is what RunResult reads back, older files
(no schema_version) still load, and a newer or broken file fails in one line naming it."""

from __future__ import annotations

import json
from dataclasses import fields, replace

import pytest

from advnlp.errors import DataError, UsageError
from advnlp.experiment.results import (
    COLLAPSE_SHARE,
    RESULTS_NAME,
    SCHEMA_VERSION,
    Epoch,
    RunResult,
    Scores,
)
from advnlp.experiment.run_config import RunConfig
from advnlp.experiment.run_folder import RunFolder

# A results.json as advnlp wrote it before the schema had a version (the fields of its first
# release, 99bc252): no schema_version, environment, hashes, model_size or dev_majority_share.
VERSION_0 = {
    "config": {
        "train": "train.jsonl",
        "dev": "dev.jsonl",
        "output": "out",
        "test": None,
        "model": "scratch-small",
        "method": "fgm",
        "method_kwargs": {"epsilon": 0.5},
        "epochs": 2,
        "batch_size": 32,
        "lr": None,
        "max_length": 128,
        "seed": 1,
        "text_columns": None,
        "label_column": "label",
        "max_train_examples": None,
        "max_dev_examples": None,
        "bucketing": True,
        "gradient_accumulation": 1,
        "precision": "fp32",
        "warmup_ratio": 0.1,
        "weight_decay": 0.01,
        "vocab_size": 8000,
        "keep_checkpoints": False,
    },
    "labels": ["neg", "pos"],
    "epochs": [
        {"epoch": 1, "train_loss": 0.69, "dev_accuracy": 0.5, "dev_macro_f1": 0.4},
        {"epoch": 2, "train_loss": 0.6, "dev_accuracy": 0.75, "dev_macro_f1": 0.7},
    ],
    "best_epoch": 2,
    "dev": {"accuracy": 0.75, "macro_f1": 0.7, "n": 4},
    "dev_predictions": [1, 1, 1, 0],
    "dev_labels": [1, 1, 0, 0],
    "test": None,
    "median_step_time_s": 0.1,
    "train_runtime_s": 3.0,
    "steps": 10,
    "resumed_from": None,
    "versions": {"python": "3.11.7", "torch": "2.5.0"},
}


def write(path, data) -> str:
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return str(path)


def one_line_error(path) -> str:
    with pytest.raises(DataError) as caught:
        RunResult.load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    return message


def test_a_version_0_file_loads_with_its_values_and_writes_back_as_the_current_version(tmp_path):
    result = RunResult.load(write(tmp_path / RESULTS_NAME, VERSION_0))
    assert result.config.method == "fgm" and result.config.method_kwargs == {"epsilon": 0.5}
    assert result.config.seed == 1 and result.config.layers is None  # added later: default
    assert result.epochs[1] == Epoch(2, 0.6, 0.75, 0.7, None)
    assert result.dev == Scores(0.75, 0.7, 4) and result.test is None
    assert result.environment is None and result.model_size is None
    assert result.dev_majority_share == 0.75  # derived from the predictions it holds
    written = result.to_json()
    assert written["schema_version"] == SCHEMA_VERSION
    for key, value in VERSION_0.items():  # the same names and values as the file read
        if isinstance(value, dict):  # config, dev: fields added since are written too
            assert {k: written[key][k] for k in value} == value
        elif key == "epochs":
            assert [
                {k: row[k] for k in old} for row, old in zip(written[key], value, strict=True)
            ] == value
        else:
            assert written[key] == value, key


def test_to_json_and_from_json_are_inverse_for_every_field():
    result = RunResult(
        config=RunConfig("a.jsonl", "b.jsonl", "out", method="gp", method_kwargs={"epsilon": 1}),
        labels=["x", "y", "z"],
        epochs=[Epoch(1, 1.0, 0.5, 0.4, 0.01)],
        best_epoch=1,
        dev=Scores(0.5, 0.4, 2),
        dev_predictions=[2, 2],
        dev_labels=[2, 0],
        test=Scores(0.25, 0.2, 4),
        median_step_time_s=0.01,
        train_runtime_s=1.5,
        steps=3,
        resumed_from="out/checkpoints/checkpoint-2",
        versions={"torch": "2"},
        environment={"device": "cpu"},
        tokenizer_sha256="ab",
        vocab_size=10,
        data_sha256={"train": "cd", "dev": "ef", "test": None},
        world_size=1,
        model_size={"pieces": 10, "layers": 2},
        steps_run=1,
        dev_majority_share=1.0,
    )
    unset = [f.name for f in fields(RunResult) if getattr(result, f.name) in (None, [], {})]
    assert not unset, f"set {unset} above, so that this test reads them back"
    text = json.dumps(result.to_json())
    assert RunResult.from_json(json.loads(text)) == result
    assert list(json.loads(text))[:3] == ["schema_version", "config", "labels"]


def test_collapse_is_the_share_of_the_most_predicted_class_at_or_above_the_threshold():
    def run(predictions: list[int]) -> RunResult:
        return RunResult(
            config=RunConfig("t", "d", "o"), dev=Scores(0.5), dev_predictions=predictions
        )

    assert COLLAPSE_SHARE == 0.9
    assert run([1] * 9 + [0]).collapsed  # exactly 90%
    assert not run([1] * 8 + [0, 2]).collapsed  # 80%
    assert run([0] * 20).dev_majority_share == 1.0
    assert not RunResult(config=RunConfig("t", "d", "o"), dev=Scores(0.5)).collapsed  # unknown


def test_a_file_from_a_newer_advnlp_is_refused_naming_its_version(tmp_path):
    path = write(tmp_path / RESULTS_NAME, {**VERSION_0, "schema_version": SCHEMA_VERSION + 1})
    message = one_line_error(path)
    assert f"schema {SCHEMA_VERSION + 1}" in message and "upgrade advnlp" in message


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"config": {', "cannot read"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps({**VERSION_0, "schema_version": "1"}), 'schema_version'),
        (json.dumps({k: v for k, v in VERSION_0.items() if k != "dev"}), "no dev"),
        (json.dumps({**VERSION_0, "dev": {"accuracy": "75%"}}), "dev.accuracy"),
        (json.dumps({**VERSION_0, "dev_predictions": [1, "0"]}), "dev_predictions"),
        (json.dumps({**VERSION_0, "config": {"method": "fgm"}}), "config.seed"),
        (json.dumps({**VERSION_0, "epochs": [{"train_loss": 1.0}]}), "epochs[].epoch"),
        (json.dumps({**VERSION_0, "steps": True}), "steps"),
    ],
    ids=["truncated", "list", "version-text", "no-dev", "accuracy-text", "prediction-text",
         "no-seed", "epoch-without-number", "steps-bool"],
)  # fmt: skip
def test_a_broken_file_fails_in_one_line_naming_it_and_what_is_wrong(tmp_path, text, needle):
    message = one_line_error(write(tmp_path / RESULTS_NAME, text))
    assert needle in message, message


def test_the_run_folder_names_its_files(tmp_path):
    folder = RunFolder(tmp_path / "run")
    assert folder.results == tmp_path / "run" / "results.json"  # users' scripts read this name
    assert folder.config_file.name == "run.json" and folder.model.name == "model"
    assert folder.checkpoints.name == "checkpoints" and folder.tokenizer.name == "tokenizer"
    assert folder.lock.name == ".lock"
    assert not folder.started and not folder.finished and folder.last_checkpoint() is None


# Fields added to RunConfig after folders were first written (start_step and task on
# 2026-11-30): a folder an earlier advnlp started must resume, not be refused as "other flags".
LATER_FIELDS = ("start_step", "task")


def test_a_run_started_before_a_field_existed_resumes(tmp_path):
    config = RunConfig("train.jsonl", "dev.jsonl", str(tmp_path / "run"), method="fgm")
    folder = RunFolder(tmp_path / "run")
    folder.start(config)
    old = {k: v for k, v in config.to_json().items() if k not in LATER_FIELDS}
    folder.config_file.write_text(json.dumps({"config": old}))
    folder.state(config, resume=True, overwrite=False)  # no UsageError
    with pytest.raises(UsageError, match="start_step=0, not 5"):  # a real change still counts
        folder.state(replace(config, start_step=5), resume=True, overwrite=False)


def test_a_comparison_started_before_a_field_existed_resumes(tmp_path):
    from advnlp.experiment.compare import CompareConfig, check_folder, prepare_folder

    base = RunConfig("train.jsonl", "dev.jsonl", str(tmp_path / "cmp"), epochs=1)
    config = CompareConfig(base=base, methods=["none", "fgm"], epsilons=[0.5], seeds=[0])
    out = tmp_path / "cmp"
    prepare_folder(out, config, overwrite=False)
    marker = out / "compare.json"
    saved = json.loads(marker.read_text())
    saved["shared"] = {k: v for k, v in saved["shared"].items() if k not in LATER_FIELDS}
    marker.write_text(json.dumps(saved))
    assert check_folder(out, config, overwrite=False) is False  # nothing to empty, no error
    with pytest.raises(UsageError, match="start_step=0 is there, not 5"):
        check_folder(out, replace(config, base=replace(base, start_step=5)), overwrite=False)


def test_train_seconds_sums_the_epochs_and_is_none_for_older_files(tmp_path):
    config = RunConfig("train.jsonl", "dev.jsonl", "out")
    timed = [Epoch(epoch=1, train_s=2.5), Epoch(epoch=2, train_s=1.5)]
    assert RunResult(config=config, epochs=timed, dev=Scores(accuracy=0.5)).train_seconds == 4.0
    untimed = [Epoch(epoch=1, train_s=2.5), Epoch(epoch=2)]  # an epoch of an older advnlp
    assert RunResult(config=config, epochs=untimed, dev=Scores(accuracy=0.5)).train_seconds is None
    older = RunResult.load(write(tmp_path / RESULTS_NAME, json.dumps(VERSION_0)))
    assert older.train_seconds is None
