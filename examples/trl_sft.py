"""Supervised fine-tuning with TRL's SFTTrainer, with adversarial training through the mixin.

    pip install "advnlp[trl]"
    python examples/trl_sft.py                                   # a tiny Llama built in code
    python examples/trl_sft.py --model Qwen/Qwen2.5-0.5B --train pairs.jsonl --method freelb

Data: JSON lines of {"prompt", "response"} (advnlp's reader, the format of ``advnlp train
--task causal-lm``), renamed to TRL's prompt/completion so that SFTTrainer puts the loss on the
completion tokens only. Without --train, synthetic arithmetic pairs, so it runs offline.

The method perturbs the output of the input embedding; SFTTrainer's fused LM head reads the
(tied) output matrix as it is, unperturbed. R3F needs the logits, which the fused head does not
build: use the other methods here, or ``advnlp train --task causal-lm``.
"""

from __future__ import annotations

import argparse
import random
import tempfile
from typing import Any

import torch
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

import advnlp
from advnlp.data import load_pairs
from advnlp.hf import AdversarialTrainerMixin


class AdversarialSFTTrainer(AdversarialTrainerMixin, SFTTrainer):
    """SFTTrainer whose training step runs the method (``method=``, ``method_kwargs=``)."""

    def training_step(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        # SFTTrainer's own training_step only adds this context around Trainer's; the mixin's
        # step replaces Trainer's, so keep the context here.
        with self.maybe_activation_offload_context:
            return super().training_step(*args, **kwargs)


def arithmetic_pairs(n: int, seed: int = 0) -> list[dict[str, str]]:
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        a, b = rng.randrange(10), rng.randrange(10)
        pairs.append({"prompt": f"add {a} and {b} :", "completion": f" {a + b} is the sum"})
    return pairs


def tiny_llama(texts: list[str]) -> tuple[Any, Any]:
    """A 2-layer Llama with tied embeddings and a word-level tokenizer trained on ``texts``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = Tokenizer(models.WordLevel(unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    words.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=specials))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=words,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
    )
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config), tokenizer


def build(args: argparse.Namespace, output_dir: str) -> AdversarialSFTTrainer:
    if args.train:
        pairs = load_pairs(args.train, flag="--train").dataset
        rows = [{"prompt": row["prompt"], "completion": row["response"]} for row in pairs]
    else:
        rows = arithmetic_pairs(args.examples)
    torch.manual_seed(args.seed)
    if args.model:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(args.model)
        tokenizer = AutoTokenizer.from_pretrained(args.model)
    else:
        model, tokenizer = tiny_llama([r["prompt"] + r["completion"] for r in rows])
    config = SFTConfig(
        output_dir=output_dir,
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr,
        max_length=128,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=args.seed,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
    )
    return AdversarialSFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        method=args.method,
        method_kwargs=advnlp.registry.accepted(args.method, {"epsilon": args.epsilon}),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a causal LM name or folder (default: a tiny Llama)")
    parser.add_argument("--train", metavar="FILE", help='JSON lines of {"prompt", "response"}')
    parser.add_argument("--method", default="fgm", choices=advnlp.method_names())
    parser.add_argument("--epsilon", type=float, default=0.1)
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--examples", type=int, default=256, help="synthetic pairs (no --train)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as output_dir:
        trainer = build(args, output_dir)
        trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    print(
        f"done: {args.method} for {trainer.state.global_step} steps; loss {losses[0]:.4f} -> "
        f"{losses[-1]:.4f}"
    )


if __name__ == "__main__":
    main()
