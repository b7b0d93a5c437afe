"""advnlp.robustness: legal candidates, constraints kept, metrics as TextAttack defines them,
and attacks that really fool a small model trained here (a few seconds, no download)."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

pytest.importorskip("transformers")
pytest.importorskip("pypinyin")
pytest.importorskip("opencc")
pytest.importorskip("jieba")

from advnlp.robustness import Example, ExampleResult, Victim, attack, summarize  # noqa: E402
from advnlp.robustness.search import edit_budget  # noqa: E402
from advnlp.robustness.transformations import (  # noqa: E402
    Homophone,
    Neighbour,
    Typo,
    Variant,
    character_frequencies,
    keyboard_neighbours,
    readings,
    simplified,
)

from .cli_data import examples as data_rows  # noqa: E402

LABELS = ["neg", "pos"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models on a busy machine: one thread is 10-50x faster than torch's default pool
    (whose threads spin while waiting for a core); restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tokenizer_for(rows):
    from advnlp.experiment.models import train_tokenizer

    return train_tokenizer([r["sentence"] for r in rows], vocab_size=300, max_length=32)


def tiny_classifier(tokenizer, seed: int = 0):
    from transformers import BertConfig, BertForSequenceClassification

    from advnlp.experiment.models import label_config

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        **label_config(LABELS),
    )
    return BertForSequenceClassification(config)


def as_examples(rows) -> list[Example]:
    return [Example(r["sentence"], LABELS.index(r["label"])) for r in rows]


@pytest.fixture(scope="module")
def trained():
    """A 1-layer BERT trained for a few seconds on the CLI test sentences (it learns them)."""
    train_rows = data_rows(256, 0)
    tokenizer = tokenizer_for(train_rows)
    model = tiny_classifier(tokenizer)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    texts = [r["sentence"] for r in train_rows]
    labels = torch.tensor([LABELS.index(r["label"]) for r in train_rows])
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(6):
        for batch in torch.randperm(len(texts), generator=generator).split(32):
            encoded = tokenizer([texts[i] for i in batch], padding=True, return_tensors="pt")
            loss = model(**encoded, labels=labels[batch]).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    victim = Victim(model, tokenizer, max_length=32, device="cpu")
    dev = as_examples(data_rows(40, 1))
    clean = victim.probabilities([e.text for e in dev]).argmax(-1)
    accuracy = float((clean == torch.tensor([e.label for e in dev])).float().mean())
    assert accuracy >= 0.8, f"the tiny model did not learn the data ({accuracy:.2f})"
    return victim, dev


# -- candidates are legal ---------------------------------------------------------------------
def test_homophones_share_the_pinyin_and_come_in_frequency_order():
    transformation = Homophone(max_candidates=50)
    text = "这本书很好，长大了再说 hello"
    units = transformation.units(text)
    assert units.size == sum(1 for c in text if "\u4e00" <= c <= "\u9fff")
    assert units.editable, "no editable character"
    frequencies = character_frequencies()
    rng = random.Random(0)
    for index in units.editable:
        reading = units.notes[index]
        candidates = transformation.candidates(units, index, rng)
        assert candidates, f"no homophone of {units.pieces[index]}"
        for candidate in candidates:
            assert candidate != units.pieces[index] and len(candidate) == 1
            assert readings(candidate)[0] == reading, (units.pieces[index], candidate, reading)
        counts = [frequencies[c] for c in candidates]
        assert counts == sorted(counts, reverse=True)
    # the reading in context: 长 in 长大 is zhang3 (its first reading alone would do too)
    assert units.notes[text.index("长")] == "zhang3"
    assert "书" not in transformation.candidates(units, text.index("书"), rng)


def osa_distance(a: str, b: str) -> int:
    """Levenshtein distance where swapping two adjacent letters also counts as one edit."""
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


def test_typos_are_one_edit_away_and_stay_inside_words():
    transformation = Typo(max_candidates=1000)
    text = "The room, quite GOOD: I'd say so."
    units = transformation.units(text)
    assert units.size == 8  # The room quite GOOD I d say so
    words = [units.pieces[i] for i in units.editable]
    assert words == ["The", "room", "quite", "GOOD", "say", "so"]
    rng = random.Random(0)
    for index in units.editable:
        word = units.pieces[index]
        candidates = transformation.candidates(units, index, rng)
        assert len(candidates) >= len(word)
        for candidate in candidates:
            assert osa_distance(word, candidate) == 1, (word, candidate)
            assert candidate.isalpha()
            if len(candidate) == len(word) + 1:  # insertion: inside the word
                assert candidate[0] == word[0] and candidate[-1] == word[-1], (word, candidate)
            changed = [i for i, (a, b) in enumerate(zip(word, candidate, strict=False)) if a != b]
            if len(candidate) == len(word) and len(changed) == 1:  # substitution: a neighbour key
                i = changed[0]
                assert candidate[i].lower() in keyboard_neighbours()[word[i].lower()]
    sampled = Typo(max_candidates=5).candidates(units, units.editable[2], random.Random(0))
    assert len(sampled) == 5


def test_variants_map_back_to_the_original_under_opencc():
    transformation = Variant()
    text = "这本书后来很好，头发干了。"
    units = transformation.units(text)
    rng = random.Random(0)
    found = 0
    for index in units.editable:
        original = units.pieces[index]
        for candidate in transformation.candidates(units, index, rng):
            found += 1
            assert candidate != original and len(candidate) == 1
            assert simplified(candidate) == simplified(original) == original
    assert found >= 5
    assert "書" in transformation.candidates(units, text.index("书"), rng)
    assert "髮" in transformation.candidates(units, text.index("发"), rng)  # 头发: in context


def test_special_tokens_are_never_edited(trained):
    victim, _ = trained
    text = "[CLS] good [SEP] 很好 [UNK] delivery"
    protected = victim.special_spans(text)
    assert [text[a:b] for a, b in protected] == ["[CLS]", "[SEP]", "[UNK]"]
    for transformation in (Typo(), Homophone(), Neighbour(victim)):
        units = transformation.units(text, protected)
        for index in units.editable:
            start = len("".join(units.pieces[:index]))
            assert not any(a <= start < b for a, b in protected), (transformation.name, index)
    neighbour = Neighbour(victim, max_candidates=50)
    specials = set(victim.tokenizer.all_special_tokens)
    units = neighbour.units(text, protected)
    for index in units.editable:
        assert not specials & set(neighbour.candidates(units, index, random.Random(0)))
    examples = [Example(text, 1), Example("[SEP] 很差 [SEP] bad", 0)]
    for name in ("typo", "neighbour", "homophone"):
        result = attack(victim, examples, name, budget=1.0)
        for example in result.examples:
            for token in ("[CLS]", "[SEP]", "[UNK]"):
                assert example.adversarial_text.count(token) == example.text.count(token)


# -- constraints ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["homophone", "typo", "neighbour"])
def test_search_keeps_the_edit_budget_and_the_query_limit(trained, name):
    victim, dev = trained
    for budget, max_queries in ((0.1, 1000), (1.0, 1000), (1.0, 6)):
        before = victim.queries
        result = attack(victim, dev, name, budget=budget, max_queries=max_queries)
        assert victim.queries - before == result.queries == sum(e.queries for e in result.examples)
        for example in result.examples:
            assert example.queries <= max_queries
            allowed = max(1, int(budget * example.units + 1e-9))  # 10% of 25 units: 2
            assert example.edits <= allowed, (example.edits, example.units, budget)
            if example.outcome == "skipped":
                assert example.queries == 1 and example.edits == 0
        if budget == 1.0 and max_queries == 1000:
            assert any(e.edits > 1 for e in result.examples)  # the budget is not always 1
        if max_queries == 6:
            assert max(e.queries for e in result.examples) == 6  # the limit was reached


def test_edit_budget_by_hand():
    assert [edit_budget(0.1, n) for n in (0, 3, 10, 19, 20, 25)] == [1, 1, 1, 1, 2, 2]
    assert [edit_budget(0.5, n) for n in (1, 4, 7)] == [1, 2, 3]
    assert edit_budget(1.0, 7) == 7


class Constant(nn.Module):
    """Predicts class 0 whatever the input (its logits still depend on the embedding by 0 x)."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, 8)
        self.bias = nn.Parameter(torch.tensor([2.0, -1.0]))
        self.config = type("Config", (), {"id2label": {0: "neg", 1: "pos"}, "num_labels": 2})()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        e = self.embedding(input_ids)
        return self.bias + 0.0 * e.sum(dim=(1, 2)).unsqueeze(-1)


def test_a_constant_model_is_never_fooled():
    rows = data_rows(20, 3)
    tokenizer = tokenizer_for(data_rows(64, 0))
    victim = Victim(Constant(len(tokenizer)), tokenizer, max_length=32, device="cpu")
    examples = as_examples(rows)
    for name in ("homophone", "variant", "typo", "neighbour", "embedding"):
        result = attack(victim, examples, name, budget=0.5, radius=1.0)
        metrics = result.metrics
        assert metrics.clean_accuracy == 0.5  # half the rows are "neg"
        assert metrics.success_rate == 0.0, name
        assert metrics.accuracy_under_attack == metrics.clean_accuracy, name


# -- the attacks work, and say the truth -----------------------------------------------------
def test_adversarial_examples_fool_the_model_when_scored_again(trained):
    victim, dev = trained
    successes = 0
    for name in ("homophone", "typo", "neighbour"):
        result = attack(victim, dev, name, budget=0.5)
        metrics = result.metrics
        assert metrics.accuracy_under_attack <= metrics.clean_accuracy
        for example in result.examples:
            if example.outcome != "successful":
                continue
            successes += 1
            assert example.adversarial_text != example.text and example.edits >= 1
            again = victim.probabilities([example.adversarial_text])[0]  # alone, not in a batch
            assert LABELS[int(again.argmax())] != example.gold, (name, example)
            assert again.tolist() == pytest.approx(example.adversarial_probabilities, abs=1e-4)
    assert successes >= 3, "the attacks fooled the model on fewer than 3 examples"


def test_embedding_attack_radius_zero_is_clean_and_larger_radii_hurt(trained):
    victim, dev = trained
    accuracies = []
    for radius in (0.0, 0.5, 2.0):
        result = attack(victim, dev, "embedding", radius=radius, steps=5)
        metrics = result.metrics
        accuracies.append(metrics.accuracy_under_attack)
        if radius == 0:
            assert metrics.accuracy_under_attack == metrics.clean_accuracy
            assert metrics.success_rate == 0.0
            for example in result.examples:
                assert example.adversarial_probabilities == pytest.approx(
                    example.original_probabilities, abs=1e-5
                )
    assert accuracies[0] >= accuracies[1] >= accuracies[2]
    assert accuracies[2] < accuracies[0], accuracies


def test_same_seed_same_result(trained):
    victim, dev = trained

    def run(seed: int):
        result = attack(victim, dev, "typo", budget=0.5, max_candidates=3, seed=seed)
        return [e.to_json() for e in result.examples]

    assert run(0) == run(0)
    transformation = Typo(max_candidates=3)
    units = transformation.units("delivery awful")
    assert transformation.candidates(units, 0, random.Random("0/1")) == transformation.candidates(
        units, 0, random.Random("0/1")
    )


# -- metrics ----------------------------------------------------------------------------------
def _result(outcome: str, edits: int, units: int, queries: int) -> ExampleResult:
    return ExampleResult(0, "t", "t", "pos", "pos", "pos", [], [], outcome, edits, units, queries)


def test_metrics_match_counts_written_by_hand():
    examples = [
        _result("skipped", 0, 10, 1),
        _result("skipped", 0, 10, 1),
        _result("skipped", 0, 4, 1),
        _result("successful", 1, 10, 12),
        _result("successful", 2, 10, 20),
        _result("successful", 1, 5, 8),
        _result("successful", 3, 10, 40),
        _result("failed", 2, 10, 50),
        _result("failed", 1, 4, 30),
        _result("failed", 0, 10, 11),
    ]
    metrics = summarize(examples)
    assert (metrics.n, metrics.successful, metrics.failed, metrics.skipped) == (10, 4, 3, 3)
    assert metrics.clean_accuracy == pytest.approx(7 / 10)
    assert metrics.accuracy_under_attack == pytest.approx(3 / 10)
    assert metrics.success_rate == pytest.approx(4 / 7)
    assert metrics.mean_perturbed_fraction == pytest.approx((0.1 + 0.2 + 0.2 + 0.3) / 4)
    assert metrics.mean_queries == pytest.approx((12 + 20 + 8 + 40 + 50 + 30 + 11) / 7)
    empty = summarize([_result("skipped", 0, 3, 1)])
    assert empty.success_rate is None and empty.mean_queries is None
    assert empty.mean_perturbed_fraction is None and empty.accuracy_under_attack == 0.0
    embedding = summarize([_result("successful", 0, 0, 11), _result("failed", 0, 0, 11)])
    assert embedding.success_rate == 0.5 and embedding.mean_perturbed_fraction is None
