"""Tracking plugin: UniTrack's training-free heads on any vidssl encoder.

- :mod:`~vidssl.track.adapter`: encoder -> one stride-8 feature map per frame, streamed clip by
  clip from frames read on demand (:class:`~vidssl.track.datasets.FrameSequence`);
- :mod:`~vidssl.track.propagation` (VOS masks, pose keypoints), :mod:`~vidssl.track.association`
  (MOT / MOTS) with :mod:`~vidssl.track.kalman`, :mod:`~vidssl.track.sot` (xcorr, DCF);
- :mod:`~vidssl.track.datasets` (DAVIS, MOT, OTB, synthetic), :mod:`~vidssl.track.metrics`
  (J&F, success AUC, MOTA / IDF1);
- :func:`run_tracking` (``vidssl track``) and :mod:`~vidssl.track.unitrack_export` (load a vidssl
  encoder into the original UniTrack code).
"""

from vidssl.track.adapter import AppearanceAdapter, build_adapter
from vidssl.track.run import TrackConfig, run_tracking

__all__ = ["AppearanceAdapter", "build_adapter", "TrackConfig", "run_tracking"]
