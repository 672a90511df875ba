"""Bulk generation of synthetic training data (``cosynth generate-dataset``).

:mod:`.plan` decides which pairs, seeds and processes; :mod:`.sources` gives each pair its point
layout; :mod:`.run` generates, writes, resumes and assembles the exports (docs/bulk-generation.md).
"""

from .plan import derive_seed, pair_name
from .run import EXPORTS, BulkProgress, generate_dataset, parse_exports
from .sources import open_source

__all__ = ["EXPORTS", "BulkProgress", "derive_seed", "generate_dataset", "open_source", "pair_name",
           "parse_exports"]
