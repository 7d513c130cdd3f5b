"""artprobe: which pretrained vision model represents art best?

All workflow logic lives in this package; ``scripts/*.py`` are thin adapters
from Snakemake's ``snakemake`` object to the functions here.
"""

__version__ = "0.1.0"
