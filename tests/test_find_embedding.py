"""find_embedding: explicit target first, then get_input_embeddings(), then structure;
never a position or segment embedding; errors list the candidates with their shapes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import advnlp

from .models import PoolClassifier, tiny_bert, tiny_gpt2


def test_huggingface_models_use_get_input_embeddings():
    assert advnlp.find_embedding(tiny_bert().model)[0] == "bert.embeddings.word_embeddings"
    assert advnlp.find_embedding(tiny_gpt2().model)[0] == "transformer.wte"


def test_plain_module_skips_positions_even_when_larger():
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.position_embeddings = nn.Embedding(512, 8)
            self.segment = nn.Embedding(2, 8)
            self.emb = nn.Embedding(100, 8)
            self.pos = nn.Embedding(1024, 8)

    name, module = advnlp.find_embedding(Model())
    assert name == "emb" and module.num_embeddings == 100


def test_largest_token_like_embedding_wins():
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.chars = nn.Embedding(30, 8)
            self.words = nn.Embedding(300, 8)

    assert advnlp.find_embedding(Model())[0] == "words"


@pytest.mark.parametrize(
    "target",
    [
        "bert.embeddings.word_embeddings",
        "word_embeddings",
        "embeddings.word_embeddings",
        r".*word_emb.*",
    ],
)
def test_target_exact_suffix_or_regex(target):
    model = tiny_bert().model
    name, module = advnlp.find_embedding(model, target)
    assert name == "bert.embeddings.word_embeddings"
    assert module is model.bert.embeddings.word_embeddings


def test_target_wins_over_get_input_embeddings():
    name, _ = advnlp.find_embedding(tiny_bert().model, "position_embeddings")
    assert name == "bert.embeddings.position_embeddings"  # the user asked for it explicitly


def test_wrappers_are_looked_through():
    model = PoolClassifier()
    wrapped = nn.DataParallel(model)
    assert advnlp.find_embedding(wrapped) == ("tokens", model.tokens)


def test_target_not_found_lists_candidates():
    with pytest.raises(advnlp.EmbeddingNotFoundError) as info:
        advnlp.find_embedding(PoolClassifier(), "Embedding-Token")
    message = str(info.value)
    assert "'Embedding-Token'" in message
    assert "'tokens' (50 x 16)" in message and "'positions' (32 x 16)" in message


def test_target_that_is_not_an_embedding():
    with pytest.raises(advnlp.EmbeddingNotFoundError, match=r"target='head'.*'head' is Linear"):
        advnlp.find_embedding(PoolClassifier(), "head")


def test_ambiguous_target():
    with pytest.raises(advnlp.EmbeddingNotFoundError, match="matches 3 embeddings"):
        advnlp.find_embedding(tiny_bert().model, r".*_embeddings")


def test_ambiguous_structure_asks_for_target():
    class Siamese(nn.Module):
        def __init__(self):
            super().__init__()
            self.left = nn.Embedding(10, 4)
            self.right = nn.Embedding(10, 4)

    with pytest.raises(
        advnlp.EmbeddingNotFoundError, match=r"same size.*'left' \(10 x 4\).*target="
    ):
        advnlp.find_embedding(Siamese())


def test_model_without_embedding():
    with pytest.raises(advnlp.EmbeddingNotFoundError, match="has no nn.Embedding at all"):
        advnlp.find_embedding(nn.Linear(3, 3))
    with pytest.raises(advnlp.EmbeddingNotFoundError):
        advnlp.FGM(nn.Sequential(nn.Linear(3, 3)))


def test_not_a_module():
    with pytest.raises(TypeError, match="torch.nn.Module, got dict"):
        advnlp.find_embedding({"weight": torch.zeros(3)})
