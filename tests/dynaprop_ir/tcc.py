"""``tcc`` with the ``dynaprop`` pass registered, for the text-IR tests of this folder.

``passes/__init__.py`` registers the built-in passes; until it imports
:mod:`passes.dynaprop`, this entry point does (importing it twice is harmless).
Run as ``python -m tests.dynaprop_ir.tcc opt FILE -p 'dynaprop{...}'``.
"""

from __future__ import annotations

import sys

import passes.dynaprop  # noqa: F401  (registers the pass)
from tools.cli import main

if __name__ == "__main__":
    sys.exit(main())
