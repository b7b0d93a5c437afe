"""``python -m advnlp`` is the ``advnlp`` command."""

import sys

from .cli import main

sys.exit(main())
