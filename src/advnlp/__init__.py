"""advnlp: embedding-space adversarial training for any PyTorch text model, in one line.

    adv = advnlp.FGM(model, epsilon=0.5)
    loss = adv.backward(lambda: model(**batch).loss)   # replaces loss.backward()

Importing advnlp imports torch only; integrations (``advnlp.hf``, ...) load their
dependencies when imported.
"""

from .base import AdversarialMethod
from .embedding import find_embedding
from .errors import ClosureError, ConfigError, EmbeddingNotFoundError
from .methods import (
    AWP,
    FGM,
    PGD,
    R3F,
    SMART,
    VAT,
    AWPConfig,
    Baseline,
    BaselineConfig,
    FGMConfig,
    FreeFGM,
    FreeFGMConfig,
    FreeLB,
    FreeLBConfig,
    GradientPenalty,
    GradientPenaltyConfig,
    NEFTune,
    NEFTuneConfig,
    PGDConfig,
    R3FConfig,
    SMARTConfig,
    VATConfig,
)
from .registry import METHODS, build, hyperparameters, method_names

__version__ = "0.1.0"

__all__ = [
    "AWP",
    "AWPConfig",
    "AdversarialMethod",
    "Baseline",
    "BaselineConfig",
    "ClosureError",
    "ConfigError",
    "EmbeddingNotFoundError",
    "FGM",
    "FGMConfig",
    "FreeFGM",
    "FreeFGMConfig",
    "FreeLB",
    "FreeLBConfig",
    "GradientPenalty",
    "GradientPenaltyConfig",
    "METHODS",
    "NEFTune",
    "NEFTuneConfig",
    "PGD",
    "PGDConfig",
    "R3F",
    "R3FConfig",
    "SMART",
    "SMARTConfig",
    "VAT",
    "VATConfig",
    "build",
    "find_embedding",
    "hyperparameters",
    "method_names",
]
