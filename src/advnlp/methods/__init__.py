"""One file per method: a subclass of :class:`advnlp.base.AdversarialMethod` and the dataclass
of its hyperparameters (its ``config_class``)."""

from .awp import AWP, AWPConfig
from .baseline import Baseline, BaselineConfig
from .fgm import FGM, FGMConfig
from .fgm_free import FreeFGM, FreeFGMConfig
from .freelb import FreeLB, FreeLBConfig
from .gradient_penalty import GradientPenalty, GradientPenaltyConfig
from .neftune import NEFTune, NEFTuneConfig
from .pgd import PGD, PGDConfig
from .r3f import R3F, R3FConfig
from .smart import SMART, SMARTConfig
from .vat import VAT, VATConfig

__all__ = [
    "AWP",
    "AWPConfig",
    "Baseline",
    "BaselineConfig",
    "FGM",
    "FGMConfig",
    "FreeFGM",
    "FreeFGMConfig",
    "FreeLB",
    "FreeLBConfig",
    "GradientPenalty",
    "GradientPenaltyConfig",
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
]
