"""Loading labelled text: local files, Hugging Face datasets, and the embedded demo corpus."""

from .files import Split, check_labels, label_names, load_split

__all__ = ["Split", "check_labels", "label_names", "load_split"]
