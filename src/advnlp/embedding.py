"""Find the token embedding of a model: the one module every method perturbs.

Order of preference: an explicit ``target`` (exact name, dotted suffix, or regex);
``model.get_input_embeddings()`` (every Hugging Face model has it); else the largest
``nn.Embedding`` whose name does not say it holds positions or segments.
"""

from __future__ import annotations

import re

from torch import nn

from .errors import EmbeddingNotFoundError

# Names that mark an embedding as positional or segment/type, never fed token ids.
_NOT_TOKEN_WORDS = ("position", "segment", "token_type")
_NOT_TOKEN_LAST = re.compile(r"(pos|wpe|seg|type)(_?emb\w*|_table)?", re.IGNORECASE)


def _looks_like_tokens(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    lowered = name.lower()
    return not any(w in lowered for w in _NOT_TOKEN_WORDS) and not _NOT_TOKEN_LAST.fullmatch(last)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel / DataParallel / torch.compile wrappers."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def _describe(candidates: list[tuple[str, nn.Embedding]]) -> str:
    if not candidates:
        return "the model has no nn.Embedding at all"
    return "candidates: " + ", ".join(
        f"{name!r} ({emb.num_embeddings} x {emb.embedding_dim})" for name, emb in candidates
    )


def _by_target(
    model: nn.Module, target: str, embeddings: list[tuple[str, nn.Embedding]]
) -> tuple[str, nn.Embedding]:
    modules = dict(model.named_modules())
    if target in modules:
        matches = [target]
    else:
        matches = [name for name in modules if name.endswith("." + target)]
        if not matches:
            try:
                pattern = re.compile(target)
            except re.error:
                pattern = None
            if pattern is not None:
                matches = [name for name in modules if name and pattern.fullmatch(name)]
    if not matches:
        raise EmbeddingNotFoundError(
            f"target={target!r} matches no module of {type(model).__name__} "
            f"(tried exact name, dotted suffix and regex); {_describe(embeddings)}"
        )
    found = [(name, modules[name]) for name in matches if isinstance(modules[name], nn.Embedding)]
    if not found:
        kinds = ", ".join(f"{n!r} is {type(modules[n]).__name__}" for n in matches[:5])
        raise EmbeddingNotFoundError(
            f"target={target!r} matches no nn.Embedding ({kinds}); {_describe(embeddings)}"
        )
    if len(found) > 1:
        names = ", ".join(repr(name) for name, _ in found)
        raise EmbeddingNotFoundError(
            f"target={target!r} matches {len(found)} embeddings ({names}); "
            "pass the exact name of the token embedding"
        )
    return found[0]


def find_embedding(model: nn.Module, target: str | None = None) -> tuple[str, nn.Embedding]:
    """Return ``(qualified_name, module)`` of the token embedding of ``model``.

    Args:
        model: any ``nn.Module``; DDP / DataParallel / compiled wrappers are looked through.
        target: exact module name (``"bert.embeddings.word_embeddings"``), a dotted suffix
            (``"word_embeddings"``) or a regex matched against the full name.

    Raises:
        EmbeddingNotFoundError: nothing matches, the match is not an ``nn.Embedding``, or the
            choice is ambiguous. The message lists the candidate embeddings with their shapes.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    model = unwrap(model)
    embeddings = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Embedding)]
    if target is not None:
        if not isinstance(target, str) or not target:
            raise EmbeddingNotFoundError(f"target must be a non-empty string, got {target!r}")
        return _by_target(model, target, embeddings)

    getter = getattr(model, "get_input_embeddings", None)
    if callable(getter):
        try:
            module = getter()
        except (NotImplementedError, AttributeError):
            module = None
        if isinstance(module, nn.Embedding):
            for name, candidate in embeddings:
                if candidate is module:
                    return name, module

    tokens = [(n, m) for n, m in embeddings if _looks_like_tokens(n)]
    if len(tokens) == 1:
        return tokens[0]
    if tokens:
        tokens.sort(key=lambda item: item[1].num_embeddings, reverse=True)
        if tokens[0][1].num_embeddings > tokens[1][1].num_embeddings:
            return tokens[0]
        reason = "several token embeddings of the same size"
    else:
        reason = "no embedding that looks like a token embedding"
    raise EmbeddingNotFoundError(
        f"cannot choose the token embedding of {type(model).__name__}: {reason}; "
        f"{_describe(embeddings)}. Pass target='<name>'"
    )
