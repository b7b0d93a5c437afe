"""The README's quick start runs as written (the '+' side of its diff), so it cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

import torch

import advnlp

from .models import tiny_bert

README = Path(__file__).resolve().parents[1] / "README.md"


def _after_side_of_diff() -> str:
    block = re.search(r"```diff\n(.*?)```", README.read_text(encoding="utf-8"), re.S).group(1)
    return "\n".join(line[1:] for line in block.splitlines() if line[:1] in " +")


def test_quick_start_trains():
    case = tiny_bert(torch.float32)
    model = case.model
    batch = {"input_ids": case.ids, "labels": torch.arange(4) % 3}
    loader = [batch] * 3
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.classifier.weight.detach().clone()
    namespace = {"model": model, "loader": loader, "optimizer": optimizer}
    exec(_after_side_of_diff(), namespace)
    assert isinstance(namespace["adv"], advnlp.FGM)
    assert torch.isfinite(namespace["loss"])
    assert not torch.equal(model.classifier.weight, before)  # it trained


def test_method_table_lists_the_registry():
    text = README.read_text(encoding="utf-8")
    for name in advnlp.method_names():
        assert f"| `{name}` |" in text, name


def _commands() -> list[str]:
    block = re.search(r"## Two commands\n\n```bash\n(.*?)```", README.read_text("utf-8"), re.S)
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_ci_runs_the_readme_test_command():
    install_and_demo, tests = _commands()
    assert install_and_demo.endswith("advnlp demo")
    ci = (README.parent / ".ci" / "run").read_text("utf-8")
    assert tests in ci.splitlines()
    assert "pip install --quiet torch==2.13.0" in ci  # before anything can pull a CUDA build
