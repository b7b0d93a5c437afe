"""The same command gives the same numbers: two processes, the same flags, identical outputs.

Each pair of processes runs side by side with the same thread count (OMP_NUM_THREADS=1, from
tests/launch.py) but another PYTHONHASHSEED, so that nothing may depend on the order of a set
or on the process. Timings are the only fields allowed to differ.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("datasets")

from advnlp.experiment.results import TIMINGS  # noqa: E402
from advnlp.experiment.run_folder import RunFolder  # noqa: E402

from .cli_data import SMALL_RUN, examples, write_jsonl, write_splits  # noqa: E402
from .launch import ENV  # noqa: E402

EVERY_METHOD = ["--methods", "none,fgm,gp,pgd,freelb", "--epsilon", "0.1", "--steps", "2"]


def _side_by_side(commands: list[list[str]], envs: list[dict[str, str]]) -> None:
    """Run the commands at once, one process each; fail with the stderr of any that fails."""
    processes = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for command, env in zip(commands, envs, strict=True)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr[-3000:]


def _advnlp_twice(args: list[str], outputs: list[Path]) -> None:
    envs = [{**ENV, "PYTHONHASHSEED": str(i)} for i in (1, 2)]
    _side_by_side(
        [[sys.executable, "-m", "advnlp", *args, "--output", str(out)] for out in outputs], envs
    )


def _without_timings_and_paths(value, root: Path):
    """``value`` (JSON) without timing fields, with ``root`` written as "OUT" in strings."""
    if isinstance(value, dict):
        return {
            k: _without_timings_and_paths(v, root) for k, v in value.items() if k not in TIMINGS
        }
    if isinstance(value, list):
        return [_without_timings_and_paths(v, root) for v in value]
    if isinstance(value, str):
        return value.replace(str(root), "OUT")
    return value


def _results(out: Path) -> dict:
    return _without_timings_and_paths(json.loads(RunFolder(out).results.read_text()), out)


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_tokenizer_files_are_identical_across_processes_and_thread_counts(tmp_path):
    """The scratch tokenizer, trained on the same text in two processes with 1 and 2 tokenizer
    threads (and parallelism off / on), is saved as byte-identical files."""
    rows = examples(400, 0)
    text = write_jsonl(tmp_path / "train.jsonl", rows)
    script = (
        "import json, sys\n"
        "from advnlp.experiment.models import train_tokenizer\n"
        "rows = [json.loads(line) for line in open(sys.argv[1], encoding='utf-8')]\n"
        "tokenizer = train_tokenizer([r['sentence'] for r in rows], vocab_size=300)\n"
        "tokenizer.save_pretrained(sys.argv[2])\n"
    )
    folders = [tmp_path / "one-thread", tmp_path / "two-threads"]
    envs = [
        {**ENV, "RAYON_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONHASHSEED": "1"},
        {**ENV, "RAYON_NUM_THREADS": "2", "TOKENIZERS_PARALLELISM": "true", "PYTHONHASHSEED": "2"},
    ]
    _side_by_side(
        [[sys.executable, "-c", script, str(text), str(folder)] for folder in folders], envs
    )
    first, second = (_files(folder) for folder in folders)
    assert "tokenizer.json" in first
    assert first == second


def test_vocabulary_breaks_ties_by_the_pieces():
    """Equally frequent pairs merge in the order of the pieces; the size caps the vocabulary,
    dropping the rarest characters first."""
    from collections import Counter

    from advnlp.experiment.models import SPECIAL_TOKENS, wordpiece_vocabulary

    words = Counter({"cd": 3, "ab": 3, "x": 1})
    specials = len(SPECIAL_TOKENS)
    vocab = wordpiece_vocabulary(words, size=100)
    assert vocab[specials:] == ["a", "c", "x", "##b", "##d", "ab", "cd"]
    assert wordpiece_vocabulary(words, size=specials + 6)[-1] == "ab"
    # room for three characters: "x" (rarest) goes, then "c" (sorts after "##b", "##d", "a")
    assert wordpiece_vocabulary(words, size=specials + 3)[specials:] == ["a", "##b", "##d"]


def test_train_twice_gives_identical_results(tmp_path):
    """`advnlp train` with a scratch model, run twice with the same command."""
    train, dev = write_splits(tmp_path / "data", train=200, dev=40)
    args = ["train", "--train", str(train), "--dev", str(dev), "--model", "scratch-tiny"]
    args += ["--epochs", "1", *SMALL_RUN, "--method", "freelb", "--epsilon", "0.1"]
    outputs = [tmp_path / "first", tmp_path / "second"]
    _advnlp_twice(args, outputs)
    first, second = (_results(out) for out in outputs)
    assert first["dev_predictions"] and first["tokenizer_sha256"]
    assert first == second
    assert _files(outputs[0] / "tokenizer") == _files(outputs[1] / "tokenizer")


def _pretrained_folder(folder: Path) -> str:
    """A local Hugging Face checkpoint (BERT, its own tokenizer), as users download one."""
    from transformers import BertConfig, BertForSequenceClassification

    from advnlp.experiment.models import train_tokenizer

    tokenizer = train_tokenizer([r["sentence"] for r in examples(200, 5)], vocab_size=200)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=7,  # another head size: the run's head is new, as with a real checkpoint
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("model", ["scratch-tiny", "pretrained-folder"])
def test_compare_twice_gives_identical_summaries(tmp_path, model):
    """`advnlp compare` over every method, twice: the same summary and the same runs."""
    train, dev = write_splits(tmp_path / "data", train=160, dev=32)
    if model == "pretrained-folder":
        model = _pretrained_folder(tmp_path / "checkpoint")
    args = ["compare", "--train", str(train), "--dev", str(dev), "--model", model]
    args += ["--epochs", "1", *SMALL_RUN, *EVERY_METHOD, "--seeds", "0"]
    outputs = [tmp_path / "first", tmp_path / "second"]
    _advnlp_twice(args, outputs)
    summaries = [
        _without_timings_and_paths(json.loads((out / "summary.json").read_text()), out)
        for out in outputs
    ]
    assert len(summaries[0]["groups"]) == 5
    assert summaries[0] == summaries[1]
    for name in sorted(os.listdir(outputs[0] / "runs")):
        assert _results(outputs[0] / "runs" / name) == _results(outputs[1] / "runs" / name), name


def test_results_name_the_source_commit_of_a_checkout(tmp_path):
    """A sweep run from a git checkout over several sessions records which code made each run."""
    from advnlp.experiment.environment import source_commit

    assert source_commit(tmp_path) is None  # not a checkout: an installed package
    code = tmp_path / "src" / "advnlp" / "core.py"
    code.parent.mkdir(parents=True)
    code.write_text("x = 1\n")
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "first"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert source_commit(tmp_path) == head
    (tmp_path / "notes.md").write_text("outside src/: not a change of the code\n")
    assert source_commit(tmp_path) == head
    code.write_text("x = 2\n")
    assert source_commit(tmp_path) == f"{head}+modified"
