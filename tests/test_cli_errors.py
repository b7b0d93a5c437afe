"""Every command-line mistake, one test id each: exit status 2, exactly one line on stderr that
names the flag (or file:line), no traceback, and nothing written or changed on disk.

Cases run the command in-process through ``advnlp.cli.main`` (fast); a few run the console
script in a subprocess to prove that no traceback reaches the terminal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytest.importorskip("datasets")

from advnlp import method_names  # noqa: E402
from advnlp.cli import main  # noqa: E402

from .cli_data import SMALL_RUN, write_splits  # noqa: E402


@dataclass
class Place:
    """A fresh folder for one case: data files, an output path, and helpers to make others."""

    root: Path
    train: Path
    dev: Path

    @property
    def out(self) -> Path:
        return self.root / "out"

    def file(self, name: str, content: str | bytes) -> Path:
        path = self.root / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return path

    def folder(self, name: str, files: dict[str, str]) -> Path:
        path = self.root / name
        path.mkdir()
        for relative, text in files.items():
            (path / relative).write_text(text)
        return path


@dataclass
class Case:
    id: str
    args: Callable[[Place], list[str]]
    needles: list[str] = field(default_factory=list)


def train(p: Place, *extra: str, train: Path | None = None, dev: Path | None = None, out=None):
    data = ["--train", str(train or p.train), "--dev", str(dev or p.dev)]
    return ["train", *data, "--output", str(out or p.out), "--epochs", "1", *SMALL_RUN, *extra]


def compare(p: Place, *extra: str, out: Path | None = None):
    data = ["--train", str(p.train), "--dev", str(p.dev), "--epochs", "1", *SMALL_RUN]
    return ["compare", *data, "--output", str(out or p.out), "--seeds", "0", *extra]


def demo(p: Place, *extra: str, out: Path | None = None):
    return ["demo", "--output", str(out or p.out), *extra]


def finished_run(p: Place, method: str) -> Path:
    """A folder that looks like a started advnlp run of ``method`` (its run.json)."""
    from advnlp.experiment.train import RunConfig

    config = RunConfig(str(p.train), str(p.dev), str(p.out), method=method, epochs=1)
    return p.folder("out", {"run.json": json.dumps({"config": config.to_json()})})


def comparison_with_epochs(p: Place, epochs: int) -> Path:
    """A folder holding a comparison whose shared settings differ (--epochs)."""
    from advnlp.cli import parse
    from advnlp.cli.compare import config_from

    config = config_from(parse(compare(p)))
    shared = config.shared_settings() | {"epochs": epochs}
    return p.folder("out", {"compare.json": json.dumps({"shared": shared})})


def row(sentence: str, label: str) -> str:
    return json.dumps({"sentence": sentence, "label": label}, ensure_ascii=False) + "\n"


CASES = [
    # argparse's own errors: one line, and --help for the rest.
    Case("train-epsilon-not-a-number", lambda p: train(p, "--epsilon", "abc"),
         ["advnlp train: error: --epsilon: 'abc' is not a number", "see advnlp train --help"]),
    Case("train-epochs-not-whole", lambda p: train(p, "--epochs", "1.5"),
         ["--epochs: '1.5' is not a whole number"]),
    Case("train-lr-infinite", lambda p: train(p, "--lr", "inf"), ["--lr: 'inf' is not a finite"]),
    Case("train-unknown-flag", lambda p: train(p, "--learning-rate", "0.1"),
         ["advnlp train: error: unrecognized arguments: --learning-rate 0.1"]),
    Case("train-missing-output", lambda p: train(p)[:5], ["required: --output"]),
    Case("train-precision-choice", lambda p: train(p, "--precision", "fp8"),
         ["--precision: invalid choice: 'fp8'"]),
    Case("train-resume-and-overwrite", lambda p: train(p, "--resume", "--overwrite"),
         ["--overwrite: not allowed with --resume"]),
    Case("train-flag-without-value", lambda p: train(p, "--epsilon"),
         ["--epsilon: expected one argument"]),
    Case("train-ambiguous-flag", lambda p: train(p, "--max", "3"),
         ["ambiguous option: --max could match"]),
    Case("no-command", lambda p: [], ["advnlp: error:", "COMMAND", "see advnlp --help"]),
    Case("misspelt-command", lambda p: ["trian"], ["invalid choice: 'trian'"]),
    # train: data files.
    Case("train-no-such-file", lambda p: train(p, train=p.root / "nope.json"),
         ["--train", "nope.json: no such file"]),
    Case("train-empty-file", lambda p: train(p, train=p.file("empty.json", "")),
         ["empty.json: the file is empty"]),
    Case("train-malformed-json",
         lambda p: train(p, train=p.file(
             "broken.json", row("a", "x") + row("b", "y")
             + '{"sentence": "c", label: 1}\n')),
         ["broken.json:3: malformed JSON"]),
    Case("train-no-text-column",
         lambda p: train(p, train=p.file("notext.json", '{"body": "a", "label": "x"}\n')),
         ["no text column", "columns found: body, label", "--text-column"]),
    Case("train-text-column-absent", lambda p: train(p, "--text-column", "body"),
         ["no column 'body'", "columns found: sentence, label, id"]),
    Case("train-text-column-three", lambda p: train(p, "--text-column", "a,b,c"),
         ["--text-column"]),
    Case("train-no-label-column",
         lambda p: train(p, train=p.file("nolabel.json", '{"sentence": "a", "tag": "x"}\n')),
         ["no label column 'label'", "columns found: sentence, tag", "--label-column"]),
    Case("dev-unknown-label",
         lambda p: train(p, dev=p.file("dev.json", row("a", "pos") + row("b", "meh"))),
         ["dev.json:2: label 'meh' does not occur in the training data"]),
    Case("train-not-utf8",
         lambda p: train(p, train=p.file(
             "gbk.json", row("好", "x").encode() + row("差", "y").encode("gbk"))),
         ["gbk.json:2: not UTF-8 text"]),
    Case("train-csv-row-fields",
         lambda p: train(p, train=p.file("rows.csv", "sentence,label\na,x\nb,y,z\n")),
         ["rows.csv:3: 3 fields, but the header has 2"]),
    Case("train-unknown-file-type", lambda p: train(p, train=p.file("data.txt", "hello\n")),
         ["unknown file type '.txt'"]),
    # train: method and training values.
    Case("train-unknown-method", lambda p: train(p, "--method", "fgsm"),
         ["--method: unknown method 'fgsm'; known methods: none, fgm, gp, pgd, freelb"]),
    Case("train-negative-epsilon", lambda p: train(p, "--epsilon", "-1"),
         ["--epsilon: epsilon must be a finite number >= 0, got -1.0"]),
    Case("train-pgd-zero-steps", lambda p: train(p, "--method", "pgd", "--steps", "0"),
         ["--steps: steps must be an integer >= 1, got 0"]),
    Case("train-bad-scope", lambda p: train(p, "--scope", "diagonal"),
         ["--scope: scope must be one of 'token', 'example', got 'diagonal'"]),
    Case("train-alpha-not-taken", lambda p: train(p, "--method", "fgm", "--alpha", "0.1"),
         ["--alpha: method fgm takes --epsilon"]),
    Case("train-alpha-not-a-number", lambda p: train(p, "--method", "pgd", "--alpha", "x"),
         ["advnlp train: error: --alpha: 'x' is not a number", "--help"]),
    Case("train-relative-misspelt", lambda p: train(p, "--epsilon-unit", "relativ"),
         ["--epsilon-unit: epsilon_unit must be one of 'absolute', 'relative', got 'relativ'"]),
    Case("train-none-takes-nothing", lambda p: train(p, "--method", "none", "--epsilon", "1"),
         ["--epsilon: method none takes no hyperparameters"]),
    Case("train-zero-epochs", lambda p: train(p, "--epochs", "0"), ["--epochs: 0 is out of range"]),
    Case("train-short-max-length", lambda p: train(p, "--max-length", "4"),
         ["--max-length: 4 is out of range"]),
    Case("train-negative-seed", lambda p: train(p, "--seed", "-1"), ["--seed: -1 is out of range"]),
    Case("train-model-folder-missing", lambda p: train(p, "--model", "./no/such/folder"),
         ["--model ./no/such/folder: no such folder"]),
    # train: the output folder.
    Case("train-resume-nothing", lambda p: train(p, "--resume"),
         ["--resume:", "holds no advnlp run to resume"]),
    Case("train-output-is-a-file", lambda p: train(p, out=p.file("taken", "x")),
         ["--output", "taken: exists and is not a folder"]),
    Case("train-output-under-a-file", lambda p: train(p, out=p.file("plain", "x") / "run"),
         ["--output", "plain is a file, not a folder"]),
    Case("train-output-not-empty",
         lambda p: train(p, out=p.folder("mine", {"notes.txt": "keep me"})),
         ["--output", "the folder is not empty", "--overwrite"]),
    Case("train-overwrite-foreign-folder",
         lambda p: train(p, "--overwrite", out=p.folder("mine", {"notes.txt": "keep me"})),
         ["--overwrite:", "does not hold an advnlp run"]),
    Case("train-resume-other-method",
         lambda p: train(p, "--method", "gp", "--resume", out=finished_run(p, "none")),
         ["--resume:", "was started with method='none', not 'gp'"]),
    # compare.
    Case("compare-unknown-method", lambda p: compare(p, "--methods", "none,fgsm"),
         ["advnlp compare: error: --methods: unknown method 'fgsm'"]),
    Case("compare-no-methods", lambda p: compare(p, "--methods", ","),
         ["--methods: give at least one method"]),
    Case("compare-method-twice", lambda p: compare(p, "--methods", "none,baseline"),
         ["--methods: none, baseline names a method twice"]),
    Case("compare-seeds-not-numbers", lambda p: compare(p, "--seeds", "a,b"),
         ["--seeds 'a,b': expected comma-separated numbers"]),
    Case("compare-repeated-seed", lambda p: compare(p, "--seeds", "0,0"),
         ["--seeds: [0, 0] repeats a seed"]),
    Case("compare-epsilon-not-a-number", lambda p: compare(p, "--epsilon", "0.1,x"),
         ["--epsilon '0.1,x': expected comma-separated numbers"]),
    Case("compare-epsilon-nan", lambda p: compare(p, "--epsilon", "nan"),
         ["--epsilon 'nan': expected finite numbers"]),
    Case("compare-negative-epsilon", lambda p: compare(p, "--epsilon", "0.1,-0.5"),
         ["--epsilon: [0.1, -0.5] has a negative value"]),
    Case("compare-epsilon-for-none", lambda p: compare(p, "--methods", "none", "--epsilon", "1"),
         ["--epsilon: none of none takes it"]),
    Case("compare-alpha-unused", lambda p: compare(p, "--alpha", "0.1"),
         ["--alpha: none of none, fgm, gp takes it"]),
    Case("compare-pgd-zero-steps", lambda p: compare(p, "--methods", "pgd", "--steps", "0"),
         ["--steps: steps must be an integer >= 1, got 0"]),
    Case("compare-bad-scope", lambda p: compare(p, "--methods", "fgm", "--scope", "all"),
         ["--scope: scope must be one of"]),
    Case("compare-steps-not-whole", lambda p: compare(p, "--steps", "two"),
         ["advnlp compare: error: --steps: 'two' is not a whole number", "--help"]),
    Case("compare-missing-dev", lambda p: ["compare", "--train", str(p.train), "--output", "x"],
         ["required: --dev"]),
    Case("compare-no-such-train-file",
         lambda p: compare(p)[:2] + [str(p.root / "nope.json")] + compare(p)[3:],
         ["--train", "nope.json: no such file"]),
    Case("compare-zero-epochs", lambda p: compare(p, "--epochs", "0"),
         ["--epochs: 0 is out of range"]),
    Case("compare-output-under-a-file", lambda p: compare(p, out=p.file("plain", "x") / "cmp"),
         ["--output", "plain is a file, not a folder"]),
    Case("compare-foreign-folder",
         lambda p: compare(p, out=p.folder("mine", {"notes.txt": "keep me"})),
         ["the folder is not empty and holds no advnlp comparison"]),
    Case("compare-changed-settings", lambda p: compare(p, out=comparison_with_epochs(p, 5)),
         ["a comparison with epochs=5 is there, not 1", "--overwrite"]),
    # demo.
    Case("demo-train-examples-zero", lambda p: demo(p, "--train-examples", "0"),
         ["advnlp demo: error: --train-examples: 0 is out of range"]),
    Case("demo-epochs-not-whole", lambda p: demo(p, "--epochs", "x"),
         ["advnlp demo: error: --epochs: 'x' is not a whole number", "see advnlp demo --help"]),
    Case("demo-unknown-method", lambda p: demo(p, "--methods", "none,fgsm"),
         ["--methods: unknown method 'fgsm'"]),
    Case("demo-unknown-flag", lambda p: demo(p, "--test", "x.json"),
         ["advnlp demo: error: unrecognized arguments: --test x.json"]),
    Case("demo-output-under-a-file", lambda p: demo(p, out=p.file("plain", "x") / "demo"),
         ["--output", "plain is a file, not a folder"]),
    Case("demo-foreign-folder", lambda p: demo(p, out=p.folder("mine", {"notes.txt": "keep"})),
         ["holds no advnlp comparison"]),
]  # fmt: skip


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file (with its bytes) and folder under ``root``."""
    return {
        str(path.relative_to(root)): path.read_bytes() if path.is_file() else None
        for path in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_splits(tmp_path_factory.mktemp("data"))


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_mistake_gives_one_line_and_changes_nothing(case, data, tmp_path, capsys):
    place = Place(tmp_path, *data)
    args = case.args(place)
    data_before = {path: path.read_bytes() for path in data}
    before = snapshot(tmp_path)
    code = main(args)
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("advnlp"), err
    for needle in case.needles:
        assert needle in err, err
    assert snapshot(tmp_path) == before, "a failed command wrote or changed a file"
    assert {path: path.read_bytes() for path in data} == data_before
    assert captured.out == ""


@pytest.mark.parametrize("command", ["train", "compare", "demo"])
def test_cases_cover_every_subcommand(command):
    assert sum(case.id.startswith(command) for case in CASES) >= 5


def test_case_ids_are_unique():
    assert len({case.id for case in CASES}) == len(CASES) >= 30


def test_default_epsilons_apply_only_where_a_method_takes_one(data, tmp_path):
    """compare --methods none (seeds of the baseline alone) is a valid sweep: the default
    epsilons are no method's there, so they are not an error the user never typed."""
    from advnlp.cli import parse
    from advnlp.cli.compare import config_from

    place = Place(tmp_path, *data)
    alone = config_from(parse(compare(place, "--methods", "none")))
    alone.validate()
    assert alone.epsilons == [] and [r.method for r in alone.plan()] == ["none"]
    beside = config_from(parse(compare(place, "--methods", "none,fgm")))
    assert beside.epsilons == [0.1, 0.5, 1.0]


def test_unknown_model_without_network(data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from advnlp.experiment import models

    models.hub_reachable.cache_clear()
    place = Place(tmp_path, *data)
    assert main(train(place, "--model", "no-such-org/no-such-model")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    models.hub_reachable.cache_clear()
    assert len(err) == 1 and "--model no-such-org/no-such-model:" in err[0], err
    assert "Hugging Face Hub" in err[0]
    assert not place.out.exists()


def test_hub_dataset_without_network(tmp_path):
    """Offline (HF_HUB_OFFLINE, as a user without network sets it): one line, nothing written.
    In a process of its own: huggingface_hub reads the variable when it is first imported, so
    setting it in this process, where it is imported already, would leave it trying the
    network (about 20 s of retries here before the same kind of error)."""
    args = ["train", "--train", "hf:no-such-org/no-such-data:train", "--dev", "x.json"]
    result = subprocess.run(
        [sys.executable, "-m", "advnlp", *args, "--output", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore", "HF_HUB_OFFLINE": "1"},
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    err = result.stderr.strip().splitlines()
    assert len(err) == 1, err
    assert "--train hf:no-such-org/no-such-data:train: cannot load dataset" in err[0]
    assert "OfflineModeIsEnabled" in err[0]  # the offline path, not a network timeout
    assert not (tmp_path / "o").exists()


SUBPROCESS_CASES = {
    "train-epsilon-not-a-number": (
        lambda p: train(p, "--epsilon", "abc"),
        "advnlp train: error: --epsilon: 'abc' is not a number; see advnlp train --help",
    ),
    "train-no-such-file": (
        lambda p: train(p, train=p.root / "x.json"),
        "advnlp train: error: --train {root}/x.json: no such file",
    ),
    "compare-output-under-a-file": (
        lambda p: compare(p, out=p.file("plain", "x") / "cmp"),
        "advnlp compare: error: --output {root}/plain/cmp: {root}/plain is a file, not a folder",
    ),
    "demo-unknown-method": (
        lambda p: demo(p, "--methods", "fgsm"),
        "advnlp demo: error: --methods: unknown method 'fgsm'; known methods: "
        + ", ".join(method_names()),
    ),
}


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_console_script_prints_the_line_and_no_traceback(name, data, tmp_path):
    make_args, expected = SUBPROCESS_CASES[name]
    place = Place(tmp_path, *data)
    args = make_args(place)
    before = snapshot(tmp_path)
    script = Path(sys.executable).with_name("advnlp")  # the installed console script
    result = subprocess.run(
        [str(script), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [expected.format(root=tmp_path)]
    assert result.stdout == ""
    assert snapshot(tmp_path) == before
