"""advnlp attack: a real run on a saved tiny model writes its four files; every mistake exits 2
with one line naming the flag (or file:line) and writes nothing."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("datasets")
pytest.importorskip("pypinyin")
pytest.importorskip("opencc")

from advnlp.cli import main  # noqa: E402
from advnlp.robustness import attack_run  # noqa: E402

from .cli_data import examples, fails_in_one_line, write_jsonl  # noqa: E402
from .test_robustness import tiny_classifier, tokenizer_for  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A saved (untrained) tiny classifier with labels neg/pos, and data files."""
    root = tmp_path_factory.mktemp("attack")
    tokenizer = tokenizer_for(examples(64, 0))
    model = tiny_classifier(tokenizer)
    folder = root / "model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    english = [
        {"sentence": f"the room was {w}", "label": lab}
        for w, lab in [("good", "pos"), ("bad", "neg")] * 4
    ]
    return {
        "model": folder,
        "dev": write_jsonl(root / "dev.jsonl", examples(12, 1)),
        "chinese": write_jsonl(
            root / "zh.jsonl",
            [
                {"sentence": s, "label": lab}
                for s, lab in [("酒店很好", "pos"), ("服务很差", "neg")] * 3
            ],
        ),
        "english": write_jsonl(root / "en.jsonl", english),
        "unknown_label": write_jsonl(
            root / "labels.jsonl",
            [{"sentence": "很好", "label": "pos"}, {"sentence": "差", "label": "meh"}],
        ),
        "empty": root / "empty.jsonl",
        "root": root,
    }


def attack_args(files, output, *extra, data=None, model=None):
    return [
        "attack",
        "--model",
        str(model or files["model"]),
        "--data",
        str(data or files["dev"]),
        "--output",
        str(output),
        *extra,
    ]


def test_attack_writes_table_json_examples_and_plot(files, tmp_path, capsys):
    out = tmp_path / "report"
    args = attack_args(files, out, "--attack", "homophone,neighbour,embedding")
    args += ["--budget", "0.1,0.5", "--radius", "0,0.5", "--max-examples", "8", "--steps", "3"]
    assert main(args) == 0
    printed = capsys.readouterr()
    assert "| attack" in printed.out and "acc under attack %" in printed.out
    assert "ex/s" in printed.err  # the progress bar
    report = json.loads((out / "attack.json").read_text())
    settings = [(r["attack"], r["budget"], r["radius"]) for r in report["results"]]
    assert settings == [
        ("homophone", 0.1, None),
        ("homophone", 0.5, None),
        ("neighbour", 0.1, None),
        ("neighbour", 0.5, None),
        ("embedding", None, 0.0),
        ("embedding", None, 0.5),
    ]
    for result in report["results"]:
        assert result["n"] == 8
        assert result["successful"] + result["failed"] + result["skipped"] == 8
        assert result["examples_per_s"] > 0 and result["queries"] >= 8
    lines = (out / "examples.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 6 * 8
    first = json.loads(lines[0])
    assert {
        "text",
        "adversarial_text",
        "gold",
        "original_prediction",
        "adversarial_prediction",
    } <= set(first)
    assert (out / "attack.md").read_text().count("\n| ") == 7  # header + 6 rows
    assert (out / "attack.png").read_bytes()[:4] == b"\x89PNG"
    # the same seed again, into the same folder with --overwrite: the same report
    capsys.readouterr()
    assert main([*args, "--overwrite"]) == 0
    again = json.loads((out / "attack.json").read_text())
    strip = ("seconds", "model_seconds", "examples_per_s", "queries_per_s")
    assert [{k: v for k, v in r.items() if k not in strip} for r in again["results"]] == [
        {k: v for k, v in r.items() if k not in strip} for r in report["results"]
    ]


def test_attack_run_reads_a_finished_run_folder(files, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(
        json.dumps({"config": {"dev": str(files["dev"]), "max_length": 32, "text_columns": None}})
    )
    (run / "results.json").write_text("{}")
    import shutil

    shutil.copytree(files["model"], run / "model")
    report = attack_run(run, ["neighbour", "embedding"], max_examples=6, radii=[0.0], steps=2)
    assert [r.attack for r in report.results] == ["neighbour", "embedding"]
    assert all(r.metrics.n == 6 for r in report.results)
    assert report.settings["model"] == str(run / "model")


# (id, extra flags, the data / model to use instead of the defaults, what the one line says)
MISTAKES = [
    ("no-model-folder", [], {"model": "no-model"}, ["--model", "no such folder"]),
    ("model-folder-without-config", [], {"model": "empty-folder"}, ["--model", "no config.json"]),
    (
        "label-the-model-does-not-know",
        [],
        {"data": "unknown_label"},
        ["labels.jsonl:2: label 'meh' is not one the model knows (its labels: neg, pos)"],
    ),
    ("empty-data", [], {"data": "empty"}, ["--data", "the file is empty"]),
    ("no-data-file", [], {"data": "none.json"}, ["--data", "no such file"]),
    ("budget-zero", ["--budget", "0"], {}, ["--budget 0: must be in (0, 1]"]),
    ("budget-over-one", ["--budget", "1.5"], {}, ["--budget 1.5: must be in (0, 1]"]),
    ("budget-not-a-number", ["--budget", "x"], {}, ["--budget 'x': expected"]),
    ("negative-radius", ["--radius=-0.1"], {}, ["--radius -0.1: must be a finite number >= 0"]),
    (
        "unknown-attack",
        ["--attack", "fgsm"],
        {},
        ["--attack 'fgsm': unknown attack; known: homophone, variant, typo, neighbour"],
    ),
    (
        "homophone-on-english",
        ["--attack", "homophone"],
        {"data": "english"},
        ["--attack homophone: it edits Chinese text, but only 0 of 8 examples hold any"],
    ),
    (
        "typo-on-chinese",
        ["--attack", "variant,typo"],
        {"data": "chinese"},
        ["--attack typo: it edits Latin-script (e.g. English) text"],
    ),
    ("zero-queries", ["--max-queries", "0"], {}, ["--max-queries 0: must be >= 1"]),
    ("zero-examples", ["--max-examples", "0"], {}, ["--max-examples 0: must be >= 1"]),
    ("seed-not-a-number", ["--seed", "x"], {}, ["--seed: 'x' is not a whole number"]),
]


@pytest.mark.parametrize(
    ("extra", "where", "needles"), [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES]
)
def test_a_mistake_exits_2_with_one_line_and_writes_nothing(
    files, tmp_path, capsys, extra, where, needles
):
    files["empty"].write_text("")
    (tmp_path / "empty-folder").mkdir()
    paths = {key: files[name] if name in files else tmp_path / name for key, name in where.items()}
    out = tmp_path / "out"
    fails_in_one_line(attack_args(files, out, *extra, **paths), capsys, *needles)
    assert not out.exists(), "a failed attack must not create its output folder"


def test_a_folder_that_is_not_an_attack_output_is_refused_and_kept(files, tmp_path, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    fails_in_one_line(
        attack_args(files, foreign, "--attack", "typo"), capsys, "--output", "not empty"
    )
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


def test_readme_robustness_example_runs(files, tmp_path, monkeypatch):
    import re
    import shutil
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Robustness", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    run = tmp_path / "runs" / "fgm"
    run.mkdir(parents=True)
    shutil.copytree(files["model"], run / "model")
    shutil.copy(files["dev"], tmp_path / "dev.json")
    (run / "run.json").write_text(json.dumps({"config": {"dev": "dev.json", "max_length": 32}}))
    (run / "results.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(code, namespace)
    assert [r.attack for r in namespace["report"].results] == ["homophone"]
    assert namespace["report"].results[0].metrics.n == 12


@pytest.mark.parametrize("name", ["e5-small", "multilingual-e5-small", "minilm"])
def test_a_pretrained_encoder_name_is_refused_it_has_no_classifier_head(
    files, tmp_path, capsys, name
):
    out = tmp_path / "out"
    fails_in_one_line(
        attack_args(files, out, model=name),
        capsys,
        f"--model {name}: a pretrained encoder without a classifier head, nothing to attack",
        f"advnlp train --model {name}",
    )
    assert not out.exists()


def test_a_saved_encoder_without_a_head_is_refused(files, tmp_path, capsys):
    from transformers import BertModel

    from .test_robustness import tiny_classifier, tokenizer_for

    tokenizer = tokenizer_for(examples(16, 0))
    encoder = tiny_classifier(tokenizer).bert  # the same encoder, no classification head
    assert isinstance(encoder, BertModel)
    encoder.save_pretrained(tmp_path / "encoder")
    tokenizer.save_pretrained(tmp_path / "encoder")
    out = tmp_path / "out"
    fails_in_one_line(
        attack_args(files, out, model=tmp_path / "encoder"),
        capsys,
        "a BertModel without a classifier head, nothing to attack",
    )
    assert not out.exists()
