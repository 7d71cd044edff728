"""The IEC 62056-21 tests share helpers in ``iec21_kit.py``; the test tree has no packages
(pytest runs with ``--import-mode=importlib``), so this directory is put on ``sys.path``."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
