"""pytest plugin for mutation runs only (``-p mutation_pytest_plugin``, see mutation_report.py).

A killed mutant should cost as little as possible: hypothesis runs at most
``MUTATION_MAX_EXAMPLES`` examples per property test (default 50; the suite's own settings
ask for 900 and 150), does not shrink a failure (the first failing example is enough to kill),
and keeps no example database (every mutant starts from the same derandomized examples).

It also imports the transformers models the tests build: mutmut forks each mutant's test run
from a server process that has loaded this plugin, so the import (seconds) is paid once, not
once per mutant.
"""

from __future__ import annotations

import contextlib
import os

import pytest
from hypothesis import Phase, settings

with contextlib.suppress(ImportError):  # the tests that need it skip without it
    import transformers.models.bert.modeling_bert  # noqa: F401
    import transformers.models.gpt2.modeling_gpt2  # noqa: F401

settings.register_profile(
    "mutation",
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    database=None,
    print_blob=False,
)
settings.load_profile("mutation")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # MUTATION_DESELECT=path: leave that file's tests out (the baseline run, without the
    # contract tests written to kill its survivors).
    deselect = os.environ.get("MUTATION_DESELECT")
    if deselect:
        dropped = [item for item in items if item.nodeid.startswith(deselect)]
        if dropped:
            items[:] = [item for item in items if item not in dropped]
            config.hook.pytest_deselected(items=dropped)
    # A test's own @settings(max_examples=...) wins over any profile, so cap it where
    # hypothesis reads it when the test runs.
    cap = int(os.environ.get("MUTATION_MAX_EXAMPLES", "50"))
    for item in items:
        test = getattr(item, "obj", None)
        current = getattr(test, "_hypothesis_internal_use_settings", None)
        if current is not None and current.max_examples > cap:
            test._hypothesis_internal_use_settings = settings(current, max_examples=cap)
    # Fast, targeted tests first and property tests last: with -x most mutants die early.
    items.sort(
        key=lambda item: (
            hasattr(getattr(item, "obj", None), "hypothesis"),
            "test_core_contracts" not in item.nodeid,
        )
    )
