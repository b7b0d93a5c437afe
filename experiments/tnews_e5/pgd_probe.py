"""Why PGD at the library defaults collapsed on TNEWS (PLAN.md, "Amendment: PGD's scope").

Prints, for one batch of 32 dev titles and a trained baseline, the loss of every forward pass
of PGD (example and token scope), FreeLB and FGM: how far each perturbation pushes the loss.

    python experiments/tnews_e5/pgd_probe.py [RUN_MODEL] [DEV_JSON]

RUN_MODEL defaults to none seed 0's best model of the sweep (/work/sweeps, outside git).
"""

from __future__ import annotations

import json
import sys

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import advnlp

MODEL = sys.argv[1] if len(sys.argv) > 1 else "/work/sweeps/tnews_e5/fgm_abs/runs/none-seed0/model"
DEV = sys.argv[2] if len(sys.argv) > 2 else "/work/shared/data/tnews/dev.json"

torch.manual_seed(0)
tokenizer = AutoTokenizer.from_pretrained(MODEL)
model = AutoModelForSequenceClassification.from_pretrained(MODEL).eval()
with open(DEV, encoding="utf-8") as f:
    rows = [json.loads(line) for line, _ in zip(f, range(32), strict=False)]
batch = tokenizer([r["sentence"] for r in rows], padding=True, truncation=True, max_length=64,
                  return_tensors="pt")  # fmt: skip
labels = torch.tensor([model.config.label2id[r["label"]] for r in rows])

embedded = model.get_input_embeddings().weight[batch["input_ids"]].detach()
mask = batch["attention_mask"].bool()
sys.stdout.write(
    f"token row norm (median) {embedded.norm(dim=-1)[mask].median():.2f}; example norm over "
    f"its tokens (median) {(embedded * mask[..., None]).flatten(1).norm(dim=1).median():.2f}\n"
)


def pass_losses(method: advnlp.AdversarialMethod) -> list[float]:
    """The loss of each forward pass the method makes in one step."""
    losses = []
    forward = method._forward

    def spy(closure, offset=None):
        run = forward(closure, offset)
        losses.append(round(run.loss.item(), 2))
        return run

    method._forward = spy
    model.zero_grad()
    method.backward(lambda: model(**batch, labels=labels).loss)
    return losses


for label, method in [
    ("PGD eps 1, alpha 0.3, example scope", advnlp.PGD(model, 1.0, 0.3, 3, scope="example")),
    ("PGD eps 1, alpha 0.3, token scope", advnlp.PGD(model, 1.0, 0.3, 3, scope="token")),
    ("FreeLB defaults", advnlp.FreeLB(model)),
    ("FGM eps 0.5, token scope", advnlp.FGM(model, epsilon=0.5)),
    ("FGM eps 1, token scope", advnlp.FGM(model, epsilon=1.0)),
]:
    sys.stdout.write(f"{label}: {pass_losses(method)}\n")
