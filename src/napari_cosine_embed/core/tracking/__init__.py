"""Tracking: link instances over time into tracks with divisions, the CTC way.

Two layers share one track builder, so the segmentation of a frame may come from anywhere:

- :func:`link_labels` links per-frame instance labels by overlap alone: a one-to-one
  assignment (Hungarian) on the IoU of the instances of frames ``t`` and ``t + 1``, and a
  division where two instances of ``t + 1`` both lie mostly inside one of ``t``.
- :func:`track_pairs` is the tracking of Payer et al. (2018): pixels of two consecutive
  frames are clustered together (embeddings plus scaled coordinates), so an instance seen in
  both frames is one cluster; a cluster of frame ``t`` whose pixels in ``t + 1`` form two
  separate pieces is a division. Pair ``(t, t + 1)`` is joined to pair ``(t + 1, t + 2)`` by the
  highest-IoU instance on the frame they share. Instances a pair leaves unlinked (a daughter
  whose embedding differs from her mother's, say) fall back to the overlap linking.

The overlap linking can also move a division seen late back in time (``split_back``):
daughters that still touch after mitosis are often one instance for a few frames, so the
mother is cut along her daughters' masks, frame by frame backwards, while the cut runs
through a neck; two nuclei that touched for a while and part again are separated the same way.

Both then clean up the tracks: a division whose child is much smaller than its sibling, or
whose child ends (without children) within ``min_split_frames`` frames, is merged back into
one track; tracks shorter than ``min_track_length`` are dropped; a track that ends and one
that starts near it at most ``max_gap`` frames later are joined. A CTC label covers
consecutive frames only, so a bridged gap keeps the continuation's own label and records the
earlier piece as its parent (as :func:`~..io.lineage.split_track_gaps` does); the gap frames
are not filled.

Both keep pinned links (:mod:`.pins`): links and divisions a user made or confirmed, held by a
point inside each object so that they survive a new segmentation.
"""

from ._table import TrackingResult
from .overlap import link_labels, link_pair
from .pairs import track_pairs
from .pins import Pin, pins_from_tracks

__all__ = [
    "Pin",
    "TrackingResult",
    "link_labels",
    "link_pair",
    "pins_from_tracks",
    "track_pairs",
]
