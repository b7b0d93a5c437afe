"""One file per method; each is a subclass of :class:`advnlp.base.AdversarialMethod`."""

from .baseline import Baseline
from .fgm import FGM
from .freelb import FreeLB
from .gradient_penalty import GradientPenalty
from .pgd import PGD

__all__ = ["Baseline", "FGM", "FreeLB", "GradientPenalty", "PGD"]
