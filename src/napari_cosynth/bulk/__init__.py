"""Bulk generation of synthetic training data (``cosynth generate-dataset``).

:mod:`.plan` decides which pairs each process draws in which batch; :mod:`.sources` gives each pair
its point layout; :mod:`.run` generates, writes and resumes; :mod:`.folder` names the run folder's
files and checks its recipe; :mod:`.finish` writes the manifest and the exports (docs/bulk-generation.md).
Pair seeds follow the one rule of :mod:`napari_cosynth.seeds`.
"""

from .plan import pair_name
from .run import EXPORTS, BulkProgress, generate_dataset, parse_exports
from .sources import open_source

__all__ = ["EXPORTS", "BulkProgress", "generate_dataset", "open_source", "pair_name", "parse_exports"]
