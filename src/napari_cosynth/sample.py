"""The one sample type every reader returns, every writer takes, and the engine produces.

A :class:`Sample` is an annotated patch: an RGB image, an instance map, a class per instance, the class
vocabulary, the tissue and the magnification. A generated pair is the same type with its semantic and
distance maps filled in and its provenance (seed, prompt, model id, sampler, version) recorded, so a
pair written by the engine and a patch read from CoNSeP travel through the same code.

Points-only samples (EndoNuke keypoints) have ``instances is None`` and carry their ``points`` table
instead: they can condition generation and fit layout models, but cannot train the joint model or be
scored with mask metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .labels.points import PointTable, centroid_table


@dataclass(frozen=True)
class Vocabulary:
    """Class names of a dataset; id 0 is always background, nuclei classes are 1..K-1."""

    names: tuple[str, ...]

    def __post_init__(self):
        names = tuple(str(n) for n in self.names)
        if len(names) < 2 or names[0] != "background":
            raise ValueError(
                f"a vocabulary lists 'background' first and at least one nucleus class, got {names}"
            )
        if len(set(names)) != len(names):
            raise ValueError(f"class names must be unique, got {names}")
        object.__setattr__(self, "names", names)

    @classmethod
    def of(cls, *nucleus_classes: str) -> Vocabulary:
        return cls(("background", *nucleus_classes))

    @property
    def n_classes(self) -> int:
        """K, the number of classes including background."""
        return len(self.names)

    @property
    def nucleus_classes(self) -> tuple[str, ...]:
        return self.names[1:]

    def id_of(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise ValueError(
                f"unknown class {name!r}; this vocabulary has {', '.join(self.nucleus_classes)}"
            ) from None

    def check_ids(self, ids: np.ndarray, where: str = "class ids") -> None:
        """Raise if any id is not a nucleus class (1..K-1)."""
        ids = np.asarray(ids)
        bad = ids[(ids < 1) | (ids >= self.n_classes)]
        if bad.size:
            raise ValueError(
                f"{where}: class id {int(bad[0])} is outside 1..{self.n_classes - 1} "
                f"({', '.join(self.nucleus_classes)})"
            )


@dataclass
class Sample:
    """An annotated (or generated) patch. See the module docstring."""

    image: np.ndarray | None
    instances: np.ndarray | None
    classes: np.ndarray
    vocabulary: Vocabulary
    tissue: str = "unknown"
    magnification: float = 40.0
    name: str = "sample"
    points: PointTable | None = None
    semantic: np.ndarray | None = None
    distance: np.ndarray | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.classes = np.asarray(self.classes, dtype=np.int64).reshape(-1)
        if self.image is not None:
            self.image = np.asarray(self.image)
            if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
                raise ValueError(
                    f"{self.name}: image must be RGB uint8 (H, W, 3), got "
                    f"{self.image.dtype} {self.image.shape}"
                )
        if self.instances is None:
            if self.points is None:
                raise ValueError(f"{self.name}: a sample needs an instance map or a point table")
            return
        self.instances = np.asarray(self.instances)
        if self.instances.ndim != 2 or not np.issubdtype(self.instances.dtype, np.integer):
            raise ValueError(
                f"{self.name}: instance map must be a 2-D integer array, got "
                f"{self.instances.dtype} {self.instances.shape}"
            )
        self.instances = self.instances.astype(np.int32, copy=False)
        if self.image is not None and self.image.shape[:2] != self.instances.shape:
            raise ValueError(
                f"{self.name}: image is {self.image.shape[0]}x{self.image.shape[1]} but the "
                f"instance map is {self.instances.shape[0]}x{self.instances.shape[1]}"
            )
        n = int(self.instances.max(initial=0))
        if len(self.classes) != n:
            raise ValueError(
                f"{self.name}: the instance map holds ids up to {n} but the class table has "
                f"{len(self.classes)} entries (instances must be numbered 1..N)"
            )
        if n:
            self.vocabulary.check_ids(self.classes, f"{self.name}: class table")

    @property
    def shape(self) -> tuple[int, int]:
        if self.instances is not None:
            return self.instances.shape
        if self.image is not None:
            return self.image.shape[:2]
        raise ValueError(f"{self.name}: a points-only sample without an image has no known size")

    @property
    def has_masks(self) -> bool:
        return self.instances is not None

    @property
    def n_nuclei(self) -> int:
        return len(self.classes) if self.has_masks else len(self.points)

    def point_table(self) -> PointTable:
        """The stored points, or the centroids of the instances (toolkit's definition)."""
        if self.points is not None:
            return self.points
        return centroid_table(self.instances, self.classes)

    def semantic_map(self) -> np.ndarray:
        """The stored semantic map, or the one the instances and classes imply."""
        if self.semantic is not None:
            return self.semantic
        from .labels.semantic import semantic_map

        return semantic_map(self.instances, self.classes)

    def distance_map(self) -> np.ndarray:
        if self.distance is not None:
            return self.distance
        from .labels.distance import distance_map

        return distance_map(self.instances)

    def with_(self, **changes) -> Sample:
        return replace(self, **changes)
