"""Class vocabularies and tissue names of the datasets the readers know, and the class colours.

Each format's stain, magnification and masks-or-points live in its registry entry, beside its reader
(:data:`napari_cosynth.data.registry.REGISTRY`).

Ids follow each dataset's own numbering where it has one, shifted so that 0 is background: PanNuke's
mask channels 0..4 become classes 1..5, EndoNuke's keypoint classes 0..2 become 1..3.
"""

from .sample import Vocabulary

# HoVer-Net's merged 4-class scheme for CoNSeP (the 7 original classes folded into 4).
CONSEP = Vocabulary.of("other", "inflammatory", "epithelial", "spindle-shaped")
# CoNSeP's original 7 classes and the merge HoVer-Net applies (original id -> merged id).
CONSEP_ORIGINAL = Vocabulary.of(
    "other", "inflammatory", "healthy epithelial", "malignant epithelial",
    "fibroblast", "muscle", "endothelial",
)
CONSEP_MERGE = {1: 1, 2: 2, 3: 3, 4: 3, 5: 4, 6: 4, 7: 4}

PANNUKE = Vocabulary.of("neoplastic", "inflammatory", "connective", "dead", "epithelial")
LIZARD = Vocabulary.of(
    "neutrophil", "epithelial", "lymphocyte", "plasma", "eosinophil", "connective"
)
ENDONUKE = Vocabulary.of("stroma", "epithelium", "other")

# PanNuke's 19 tissue types, spelled as in its types.npy.
PANNUKE_TISSUES = (
    "Adrenal_gland", "Bile-duct", "Bladder", "Breast", "Cervix", "Colon", "Esophagus",
    "HeadNeck", "Kidney", "Liver", "Lung", "Ovarian", "Pancreatic", "Prostate", "Skin",
    "Stomach", "Testis", "Thyroid", "Uterus",
)


def tissue_display_name(tissue: str) -> str:
    """'Adrenal_gland' -> 'adrenal gland', 'HeadNeck' -> 'head and neck' (for prompts)."""
    special = {"HeadNeck": "head and neck", "Bile-duct": "bile duct"}
    if tissue in special:
        return special[tissue]
    return tissue.replace("_", " ").replace("-", " ").lower()


# Class colours shared by napari layers, PNG grids and overlays (background transparent). Chosen to be
# distinguishable on H&E: red/green/blue/yellow first, as HoVer-Net's overlays use.
_PALETTE = (
    (0, 0, 0, 0), (255, 0, 0, 255), (0, 255, 0, 255), (0, 90, 255, 255), (255, 255, 0, 255),
    (255, 0, 255, 255), (0, 255, 255, 255), (255, 128, 0, 255), (140, 80, 255, 255),
)


def class_colors(n_classes: int) -> list[tuple[int, int, int, int]]:
    """RGBA (0-255) colour per class id 0..n_classes-1; background is fully transparent."""
    if n_classes > len(_PALETTE):
        raise ValueError(f"only {len(_PALETTE) - 1} nucleus class colours are defined, got {n_classes - 1}")
    return list(_PALETTE[:n_classes])
