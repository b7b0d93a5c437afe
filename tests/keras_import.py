"""`import advnlp.keras` in a fresh interpreter; test_keras.py runs this file as a program.

    python tests/keras_import.py          # import advnlp.keras first
    python tests/keras_import.py keras    # import keras first, on the backend KERAS_BACKEND names

Prints the backend keras runs on (exit status 0), or the ImportError's message (exit status 1).
"""

from __future__ import annotations

import sys


def main(first: str | None) -> int:
    import advnlp  # noqa: F401

    assert "keras" not in sys.modules, "import advnlp imported keras"
    if first == "keras":
        import keras  # noqa: F401
    try:
        import advnlp.keras  # noqa: F401
    except ImportError as error:
        print(error)
        return 1
    import keras

    print(keras.backend.backend())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
