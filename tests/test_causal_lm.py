"""Causal language models (AutoModelForCausalLM fine-tuning): every registered method on a tiny
GPT-2 and a tiny Llama-style model with tied input/output embeddings, the loss on the response
tokens only (labels -100 on the prompt and the padding), padded on the left or the right.

The gradients equal the independent references of tests/reference.py in float64; the tied
output head reads the unperturbed matrix in every pass and every parameter is bit-identical
after ``backward``; the Trainer mixin gives the core method's gradients and weighs response
tokens as one big batch does under gradient accumulation."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

import advnlp  # noqa: E402

from . import reference  # noqa: E402
from .models import (  # noqa: E402
    BOS,
    EOS,
    HIDDEN,
    PAD,
    SETTINGS,
    VOCAB,
    Case,
    gpt2_lm,
    grad_capture,
    noiseless,
    trainer_args,
)

# AWP perturbs the weight matrices themselves (the tied head included, by design).
INPUT_METHODS = [name for name in advnlp.method_names() if name not in ("none", "awp")]


def prompt_response_batch(side: str, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """(ids, attention_mask, labels) of 4 prompt/response pairs of different lengths, padded
    with PAD on ``side``; labels are -100 on the prompt and the padding. Few distinct ids, so
    tokens repeat (token scope sums their rows)."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for prompt_length, response_length in ((3, 2), (2, 4), (4, 3), (1, 1)):
        prompt = [BOS, *torch.randint(3, 12, (prompt_length,), generator=generator).tolist()]
        response = [*torch.randint(3, 12, (response_length,), generator=generator).tolist(), EOS]
        rows.append((prompt + response, [-100] * len(prompt) + response))
    width = max(len(ids) for ids, _ in rows)
    batch_ids, batch_mask, batch_labels = [], [], []
    for ids, labels in rows:
        fill = width - len(ids)
        pad = ([PAD] * fill, [0] * fill, [-100] * fill)
        real = (ids, [1] * len(ids), labels)
        for out, p, r in zip((batch_ids, batch_mask, batch_labels), pad, real, strict=True):
            out.append(p + r if side == "left" else r + p)
    return tuple(torch.tensor(x) for x in (batch_ids, batch_mask, batch_labels))


def tiny_gpt2_lm(dtype: torch.dtype = torch.float64, *, seed: int = 0):
    # GPT-2's wte has no padding_idx: advnlp reads the config's pad_token_id
    model = gpt2_lm(dtype, seed=seed, pad_token_id=PAD)
    assert model.transformer.wte.padding_idx is None
    return model


def tiny_llama_lm(dtype: torch.dtype = torch.float64, *, seed: int = 0, tied: bool = True):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,  # grouped-query attention, as in Llama 2/3
        max_position_embeddings=32,
        tie_word_embeddings=tied,
        bos_token_id=BOS,
        eos_token_id=EOS,
        pad_token_id=PAD,
    )
    model = LlamaForCausalLM(config).to(dtype)
    assert (model.lm_head.weight is model.model.embed_tokens.weight) == tied
    return model


MODELS = {"gpt2": tiny_gpt2_lm, "llama": tiny_llama_lm}


class CausalCase(Case):
    """The lookup as the model's own embedding does it: GPT-2's has no padding row, so the
    PAD row gets gradients (R3F's KL reaches right-padded positions, which attend to the real
    tokens); the mask (padding gets no perturbation) still comes from the config's PAD."""

    def lookup(self, matrix: torch.Tensor | None = None) -> torch.Tensor:
        matrix = self.weight if matrix is None else matrix
        own = self.model.get_input_embeddings().padding_idx
        return torch.nn.functional.embedding(self.ids, matrix, padding_idx=own)


def causal_case(model_name: str, side: str, dtype: torch.dtype = torch.float64) -> Case:
    model = MODELS[model_name](dtype)
    ids, mask, labels = prompt_response_batch(side)
    return CausalCase.of_hf_model(f"{model_name}-{side}", model, ids, mask, labels, model.lm_head)


def response_only_loss(case: Case, labels: torch.Tensor) -> torch.Tensor:
    """The mean cross-entropy of the response tokens, computed by hand from the logits."""
    logits = case.model(input_ids=case.ids, attention_mask=(case.ids != PAD).long()).logits
    targets = labels[:, 1:]
    keep = targets != -100
    return torch.nn.functional.cross_entropy(logits[:, :-1][keep], targets[keep])


SIDES = ["right", "left"]


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("model_name", list(MODELS))
def test_the_batch_trains_on_response_tokens_only(model_name, side):
    case = causal_case(model_name, side)
    ids, _, labels = prompt_response_batch(side)
    assert int((labels != -100).sum()) == 2 + 4 + 3 + 1 + 4  # responses and their EOS
    # transformers computes the causal LM loss in float32 (logits.float()) whatever the model
    torch.testing.assert_close(case.closure(), response_only_loss(case, labels).float())


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("model_name", list(MODELS))
@pytest.mark.parametrize("name", list(SETTINGS))
def test_gradients_match_reference(model_name, side, name):
    """Every registered method at its test settings (tests/models.py); a float64 model (whose
    loss transformers computes in float32, hence the tolerance of the existing reference tests)."""
    reference.assert_step_matches(causal_case(model_name, side), name, SETTINGS[name])


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("model_name", list(MODELS))
def test_gradient_penalty_term_matches_reference(model_name, side):
    reference.assert_penalty_matches(causal_case(model_name, side))


def first_block(model_name: str, model):
    return (model.transformer.h if model_name == "gpt2" else model.model.layers)[0]


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("model_name", list(MODELS))
@pytest.mark.parametrize("name", INPUT_METHODS)
def test_tied_head_reads_the_unperturbed_matrix_and_nothing_changes(model_name, side, name):
    """The input of the first block is perturbed (but by the gradient penalty, which adds a
    loss term); the tied lm_head's weight is the original,
    bit for bit, in every pass and after ``backward``; so is every other parameter."""
    case = causal_case(model_name, side, torch.float32)
    model = case.model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    original_head = model.lm_head.weight.detach().clone()
    head_weights, block_inputs = [], []
    model.lm_head.register_forward_pre_hook(
        lambda m, args: head_weights.append(m.weight.detach().clone())
    )
    first_block(model_name, model).register_forward_pre_hook(
        lambda m, args, kwargs: block_inputs.append(
            (args[0] if args else kwargs["hidden_states"]).detach().clone()
        ),
        with_kwargs=True,
    )
    with torch.no_grad():
        case.closure()
    clean = block_inputs.pop()
    # a visible perturbation (the test settings' noise is tiny); two steps, as FreeFGM
    # perturbs from its second step on
    kwargs = advnlp.registry.accepted(name, {**SETTINGS[name], "epsilon": 1.0, "alpha": 1.0})
    adv = advnlp.build(name, model, **kwargs)
    for _ in range(2):
        adv.backward(case.closure)
    assert head_weights and all(torch.equal(w, original_head) for w in head_weights)
    assert torch.equal(model.lm_head.weight, original_head)
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]), n
    if name != "gp":  # the gradient penalty moves no input: it adds a loss term
        assert any(not torch.equal(x, clean) for x in block_inputs), "nothing was perturbed"


@pytest.mark.parametrize("tied", [True, False])
def test_find_embedding_finds_the_input_embedding(tied):
    gpt2 = tiny_gpt2_lm()
    assert advnlp.find_embedding(gpt2) == ("transformer.wte", gpt2.transformer.wte)
    llama = tiny_llama_lm(tied=tied)
    assert advnlp.find_embedding(llama) == ("model.embed_tokens", llama.model.embed_tokens)
    for model in (gpt2, llama):  # and a method built on it perturbs that one
        adv = advnlp.FGM(model, epsilon=0.5)
        assert adv.embedding is model.get_input_embeddings()
        assert adv.padding_idx == PAD


# -- the Trainer mixin ----------------------------------------------------------------------
def causal_rows(side: str) -> list[dict[str, torch.Tensor]]:
    ids, mask, labels = prompt_response_batch(side)
    return [
        {"input_ids": i, "attention_mask": m, "labels": y}
        for i, m, y in zip(ids, mask, labels, strict=True)
    ]


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("name", list(SETTINGS))
def test_trainer_step_matches_core(tmp_path, name, side):
    """One AdversarialTrainer step on the tiny Llama gives the core method's gradients."""
    from advnlp.hf import AdversarialTrainer

    model = tiny_llama_lm(torch.float32)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    capture = grad_capture()
    settings = noiseless(name, SETTINGS[name])
    trainer = AdversarialTrainer(
        model=model,
        args=trainer_args(tmp_path, max_grad_norm=0),  # the gradients before clipping
        train_dataset=causal_rows(side),
        method=name,
        method_kwargs=settings,
        callbacks=[capture],
    )
    trainer.train()
    (trainer_grads,) = capture.grads

    case = causal_case("llama", side, torch.float32)
    case.model.load_state_dict(state)
    advnlp.build(name, case.model, **settings).backward(case.closure)
    for param, p in case.model.named_parameters():
        torch.testing.assert_close(trainer_grads[param], p.grad, rtol=1e-5, atol=1e-7, msg=param)


@pytest.mark.parametrize("name", ["none", "fgm", "gp"])
def test_gradient_accumulation_weighs_tokens_as_one_batch(tmp_path, name):
    """2 micro-batches of 2 == 1 batch of 4, though the micro-batches hold 8 and 6 response
    tokens: the causal LM keeps the Trainer's num_items_in_batch (a mean per micro-batch
    divided by 2 would weigh the tokens of the second micro-batch 8/6 times more)."""
    from advnlp.hf import AdversarialTrainer

    grads_by_batch = []
    for batch, accumulate in ((4, 1), (2, 2)):
        model = tiny_gpt2_lm(torch.float32, seed=1)
        capture = grad_capture()
        kwargs = {"epsilon": 0.5, "scope": "example"} if name == "fgm" else {}
        trainer = AdversarialTrainer(
            model=model,
            train_dataset=causal_rows("right"),
            callbacks=[capture],
            args=trainer_args(
                tmp_path / str(batch),
                per_device_train_batch_size=batch,
                gradient_accumulation_steps=accumulate,
                max_grad_norm=0,
            ),
            method=name,
            method_kwargs=kwargs,
        )
        assert trainer.model_accepts_loss_kwargs
        trainer.train()
        grads_by_batch.append(capture.grads[0])
    whole, accumulated = grads_by_batch
    for param in whole:
        torch.testing.assert_close(accumulated[param], whole[param], rtol=1e-5, atol=1e-7)


# -- advnlp train --task causal-lm ---------------------------------------------------------
def write_pairs(path, pairs) -> str:
    path.write_text("".join(json.dumps({"prompt": p, "response": r}) + "\n" for p, r in pairs))
    return str(path)


def arithmetic_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for a, b in torch.randint(0, 10, (n, 2), generator=generator).tolist():
        rows.append((f"add {a} and {b} :", f"{a + b} is the sum"))
    return rows


@pytest.fixture(scope="module")
def lm_folder(tmp_path_factory):
    """A tiny GPT-2 and a word-level tokenizer without a padding token, saved to a folder."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-lm")
    words = Tokenizer(models.WordLevel(unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    texts = [f"{p} {r}" for p, r in arithmetic_pairs(200, seed=9)]
    words.train_from_iterator(
        texts, trainers.WordLevelTrainer(special_tokens=["<unk>", "<s>", "</s>"])
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=words, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=16,
        n_layer=2,
        n_head=2,
        n_positions=64,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


@pytest.fixture
def data(tmp_path):
    return (
        write_pairs(tmp_path / "train.jsonl", arithmetic_pairs(24, seed=1)),
        write_pairs(tmp_path / "dev.jsonl", arithmetic_pairs(6, seed=2)),
    )


def dev_loss_by_hand(model_folder, dev_file) -> tuple[float, int]:
    """Mean NLL of the dev response tokens (and their EOS), one example at a time."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_folder)
    model = AutoModelForCausalLM.from_pretrained(model_folder).eval()
    total, count = 0.0, 0
    for line in Path(dev_file).read_text().splitlines():
        row = json.loads(line)
        prompt = tokenizer(row["prompt"])["input_ids"]
        response = tokenizer(row["response"], add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt + response + [tokenizer.eos_token_id]])
        with torch.no_grad():
            logp = model(input_ids=ids).logits.log_softmax(-1)[0]
        for position in range(len(prompt), ids.shape[1]):
            total -= float(logp[position - 1, ids[0, position]])
            count += 1
    return total / count, count


def test_cli_trains_and_scores_the_dev_responses(tmp_path, lm_folder, data, capsys):
    from advnlp.cli import main
    from advnlp.experiment.results import RunResult

    train_file, dev_file = data
    out = tmp_path / "run"
    code = main(
        ["train", "--task", "causal-lm", "--train", train_file, "--dev", dev_file]
        + ["--model", str(lm_folder), "--method", "fgm", "--epsilon", "0.5", "--epochs", "2"]
        + ["--batch-size", "8", "--lr", "3e-3", "--output", str(out)]
    )
    assert code == 0
    printed = capsys.readouterr()
    assert "dev perplexity" in printed.out and "best epoch" in printed.out
    result = RunResult.load(out / "results.json")
    assert result.config.task == "causal-lm" and result.config.method == "fgm"
    assert [e.epoch for e in result.epochs] == [1, 2]
    assert all(e.dev_loss is not None and e.train_loss is not None for e in result.epochs)
    best = min(result.epochs, key=lambda e: e.dev_loss)
    assert result.best_epoch == best.epoch
    # the saved best model's dev loss, computed independently, is the one recorded
    loss, tokens = dev_loss_by_hand(out / "model", dev_file)
    assert result.dev.tokens == tokens and result.dev.n == 6
    assert result.dev.loss == pytest.approx(loss, rel=1e-5)
    assert result.dev.loss == pytest.approx(best.dev_loss, rel=1e-6)
    assert result.dev.perplexity == pytest.approx(math.exp(loss), rel=1e-5)
    assert 0 <= result.dev.accuracy <= 1
    assert result.labels == [] and not result.collapsed


def test_cli_start_step_reaches_the_causal_method(tmp_path, lm_folder, data):
    """FGM at a large epsilon whose warm-up covers the whole run trains exactly as `none`."""
    from advnlp.cli import main
    from advnlp.experiment.results import RunResult

    train_file, dev_file = data
    base = ["train", "--task", "causal-lm", "--train", train_file, "--dev", dev_file]
    base += ["--model", str(lm_folder), "--epochs", "1", "--batch-size", "8", "--lr", "3e-3"]
    assert main([*base, "--method", "none", "--output", str(tmp_path / "none")]) == 0
    fgm = ["--method", "fgm", "--epsilon", "5", "--start-step", "1000"]
    assert main([*base, *fgm, "--output", str(tmp_path / "fgm")]) == 0
    none, warm = (RunResult.load(tmp_path / n / "results.json") for n in ("none", "fgm"))
    assert warm.config.start_step == 1000
    assert warm.dev.loss == none.dev.loss
    assert [e.train_loss for e in warm.epochs] == [e.train_loss for e in none.epochs]


def test_cli_causal_lm_with_two_processes(tmp_path, lm_folder):
    """torchrun, 2 ranks: rank 0 alone writes, and the dev loss is over every dev response once.
    5 dev pairs, odd on purpose: a distributed evaluation that pads its last batch with a
    repeated example would count its tokens twice."""
    from advnlp.experiment.results import RunResult

    from .launch import torchrun

    train_file = write_pairs(tmp_path / "train.jsonl", arithmetic_pairs(24, seed=1))
    dev_file = write_pairs(tmp_path / "dev.jsonl", arithmetic_pairs(5, seed=2))
    out = tmp_path / "run"
    result = torchrun(
        *("-m", "advnlp", "train", "--task", "causal-lm", "--train", train_file, "--dev"),
        *(dev_file, "--model", str(lm_folder), "--method", "fgm", "--epsilon", "0.5"),
        *("--epochs", "2", "--batch-size", "4", "--lr", "3e-3", "--output", str(out)),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("best epoch") == 1  # printed by rank 0 only
    saved = RunResult.load(out / "results.json")
    assert saved.world_size == 2
    assert saved.steps == 2 * 24 // (4 * 2)  # 2 epochs of a global batch of 8
    loss, tokens = dev_loss_by_hand(out / "model", dev_file)
    assert saved.dev.n == 5 and saved.dev.tokens == tokens
    assert saved.dev.loss == pytest.approx(loss, rel=1e-5)


ERRORS = {
    "missing-field": (
        lambda p: [
            *p.base,
            "--train",
            p.file("t.jsonl", '{"prompt": "a", "response": "b"}\n{"prompt": "c"}\n'),
        ],
        't.jsonl:2: no "response" field',
    ),
    "not-a-string": (
        lambda p: [*p.base, "--dev", p.file("d.jsonl", '{"prompt": 3, "response": "b"}\n')],
        'd.jsonl:1: "prompt" is a int',
    ),
    "empty-file": (
        lambda p: [*p.base, "--train", p.file("e.jsonl", "")],
        "e.jsonl: the file is empty",
    ),
    "label-column": (lambda p: [*p.base, "--label-column", "y"], "--label-column: a text-classif"),
    "text-column": (lambda p: [*p.base, "--text-column", "prompt"], "--text-column: a text-cl"),
    "vocab-size": (lambda p: [*p.base, "--vocab-size", "8000"], "--vocab-size: a text-classif"),
    "layers": (lambda p: [*p.base, "--layers", "1"], "--layers: a text-classification"),
    "no-model": (lambda p: [a for a in p.base if a not in ("--model", p.model)], "--model: --task"),
    "scratch-model": (lambda p: [*p.base, "--model", "scratch-small"], "--model: scratch-small"),
    "csv": (lambda p: [*p.base, "--train", p.file("t.csv", "prompt,response\na,b\n")], "t.csv: "),
    "bad-task": (lambda p: [*p.base, "--task", "seq2seq"], "--task: invalid choice"),
    "not-causal": (lambda p: [*p.base, "--model", p.saved("distilbert")], "not loadable as a c"),
    "vocab-mismatch": (lambda p: [*p.base, "--model", p.saved("bert")], "only 20 rows"),
    "no-such-folder": (lambda p: [*p.base, "--model", "./nowhere"], "--model ./nowhere: no such"),
}


class Place:
    def __init__(self, root, model, data):
        self.root, self.model = root, str(model)
        self.out = root / "out"
        self.base = ["train", "--task", "causal-lm", "--train", data[0], "--dev", data[1]]
        self.base += ["--model", self.model, "--output", str(self.out)]

    def saved(self, kind):
        """A folder with the tiny LM's tokenizer and a model that does not fit it: a BERT
        (AutoModelForCausalLM makes a BertLMHeadModel) of 20 tokens, or a DistilBERT (no
        causal LM)."""
        from transformers import AutoModel, BertConfig, DistilBertConfig

        if kind == "bert":
            config = BertConfig(
                vocab_size=20,
                hidden_size=8,
                num_hidden_layers=1,
                num_attention_heads=2,
                intermediate_size=8,
            )
        else:
            config = DistilBertConfig(vocab_size=20, dim=8, n_layers=1, n_heads=2, hidden_dim=8)
        folder = self.root / kind
        AutoModel.from_config(config).save_pretrained(folder)
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(Path(self.model) / name, folder / name)
        return str(folder)

    def file(self, name, text):
        path = self.root / name
        path.write_text(text)
        return str(path)


@pytest.mark.parametrize("case", list(ERRORS))
def test_cli_mistakes_exit_2_with_one_line(tmp_path, lm_folder, data, capsys, case):
    from advnlp.cli import main

    place = Place(tmp_path, lm_folder, data)
    args, needle = ERRORS[case]
    argv = args(place)
    capsys.readouterr()  # what making the files printed
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert needle in err, err
    assert "Traceback" not in err
    assert not place.out.exists()


# -- TRL's SFTTrainer through the mixin (examples/trl_sft.py) -------------------------------
def test_trl_sft_example_runs_the_method(tmp_path):
    """Two steps of the example's AdversarialSFTTrainer on its tiny Llama: the first step's
    gradients are the core method's on the batch TRL built (completion-only labels), with
    SFTTrainer's own loss (its fused LM head: the loss equals the model's own to float32
    rounding, its gradients differ from the model's by ~0.2% even with no method)."""
    pytest.importorskip("trl", reason="TRL is not installed (pip install advnlp[trl])")
    import argparse
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "examples" / "trl_sft.py"
    spec = importlib.util.spec_from_file_location("trl_sft", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    args = argparse.Namespace(
        model=None,
        train=None,
        method="fgm",
        epsilon=0.5,
        steps=2,
        batch_size=4,
        lr=1e-3,
        examples=16,
        seed=0,
    )
    trainer = example.build(args, str(tmp_path))
    trainer.args.max_grad_norm = 0  # the gradients before clipping
    model = trainer.model
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    batches = []
    compute_loss = trainer.compute_loss

    def spy(model, inputs, **kwargs):
        kept = {k: inputs[k].clone() for k in ("input_ids", "attention_mask", "labels")}
        batches.append((kept, kwargs))
        return compute_loss(model, inputs, **kwargs)

    trainer.compute_loss = spy
    capture = grad_capture()
    trainer.add_callback(capture)
    trainer.train()
    assert trainer.state.global_step == 2 and len(capture.grads) == 2
    batch, kwargs = batches[0]
    assert (batch["labels"] == -100).any() and (batch["labels"] != -100).any()  # prompts masked
    assert not all(torch.equal(initial[k], v) for k, v in model.state_dict().items())

    model.load_state_dict(initial)
    model.zero_grad(set_to_none=True)
    model.train()
    torch.testing.assert_close(
        compute_loss(model, dict(batch), **kwargs), model(**batch).loss, rtol=1e-6, atol=0
    )
    model.zero_grad(set_to_none=True)
    advnlp.FGM(model, epsilon=0.5).backward(lambda: compute_loss(model, dict(batch), **kwargs))
    for name, p in model.named_parameters():
        torch.testing.assert_close(capture.grads[0][name], p.grad, rtol=1e-5, atol=1e-7, msg=name)


def test_readme_causal_example_runs(tmp_path, monkeypatch):
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Causal language models", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)  # its output_dir
    namespace: dict = {}
    exec(code, namespace)
    trainer = namespace["trainer"]
    assert trainer.state.global_step == 2
    assert type(trainer.adversary(trainer.model)).__name__ == "FreeLB"


def test_causal_results_round_trip(tmp_path):
    from advnlp.experiment.results import Epoch, RunResult, Scores
    from advnlp.experiment.run_config import RunConfig

    result = RunResult(
        config=RunConfig("t.jsonl", "d.jsonl", "out", model="m", method="fgm", task="causal-lm"),
        epochs=[Epoch(1, train_loss=2.0, dev_accuracy=0.5, dev_loss=1.5)],
        best_epoch=1,
        dev=Scores(0.5, n=3, loss=1.5, perplexity=math.exp(1.5), tokens=12),
        test=Scores(0.25, n=2, loss=2.0, perplexity=math.exp(2.0), tokens=8),
    )
    result.save(tmp_path / "results.json")
    assert RunResult.load(tmp_path / "results.json") == result
