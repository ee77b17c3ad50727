"""Loss functions: small stateless modules that validate their arguments and document ``Shape:``.

- :class:`InfoNCELoss` (``info_nce``): NT-Xent between two views, negatives gathered over ranks
  (CVRL; the instance part of TCLR). :func:`nt_xent` is the functional core.
- :class:`TCLRInstanceLoss`, :class:`LocalLocalLoss`, :class:`GlobalLocalLoss` (``tclr``):
  TCLR's instance, local-local and global-local temporal contrastive losses.
- :class:`DenseContrastiveLoss` (``dpc``): DPC's dense predictive loss (easy, spatial and
  temporal negatives, gathered over ranks).
- :func:`multi_positive_nce`, :func:`mine_positives` (``coclr``): CoCLR's multi-instance
  InfoNCE and its positives mined in the other modality.
- :func:`concept_distillation`, :func:`class_attribute_alignment`, :func:`entropy_alignment`
  (``lss``): LSS's losses on concept similarities.
"""

from vidssl.losses.coclr import mine_positives, multi_positive_nce, queue_positives
from vidssl.losses.dpc import DenseContrastiveLoss
from vidssl.losses.info_nce import InfoNCELoss, gather_batch, nt_xent, nt_xent_logits
from vidssl.losses.lss import (class_attribute_alignment, concept_alignment, concept_distillation,
                               entropy_alignment, update_center)
from vidssl.losses.tclr import GlobalLocalLoss, LocalLocalLoss, TCLRInstanceLoss, local_view_pairs

__all__ = [
    "InfoNCELoss",
    "nt_xent",
    "nt_xent_logits",
    "gather_batch",
    "TCLRInstanceLoss",
    "LocalLocalLoss",
    "GlobalLocalLoss",
    "local_view_pairs",
    "DenseContrastiveLoss",
    "multi_positive_nce",
    "mine_positives",
    "queue_positives",
    "concept_distillation",
    "concept_alignment",
    "class_attribute_alignment",
    "entropy_alignment",
    "update_center",
]
