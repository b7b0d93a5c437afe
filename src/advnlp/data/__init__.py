"""Loading labelled text (local files, Hugging Face datasets, the embedded demo corpus) and
prompt/response pairs."""

from .files import Split, check_labels, label_names, load_split
from .pairs import Pairs, load_pairs

__all__ = ["Pairs", "Split", "check_labels", "label_names", "load_pairs", "load_split"]
