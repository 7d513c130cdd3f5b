"""Make this checkout's ``artprobe`` package importable in a rule's script.

Snakemake runs a ``script:`` with the script's own folder (``scripts/``) on ``sys.path``; in a
``--software-deployment-method conda`` env nothing else installs ``artprobe``. Importing this
module first puts the checkout (the folder above ``scripts/``) in front, so every script runs
the package of the workflow it belongs to, with or without conda, PYTHONPATH or an install.
"""

import sys
from pathlib import Path

CHECKOUT = str(Path(__file__).resolve().parents[1])
if CHECKOUT not in sys.path:
    sys.path.insert(0, CHECKOUT)
