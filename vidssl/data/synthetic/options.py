"""Settings of ``vidssl make-synthetic`` (YAML: ``configs/synthetic.yaml``; CLI: ``key=value``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SyntheticOptions:
    """``make-synthetic`` settings (YAML: ``configs/synthetic.yaml``; CLI: ``key=value``)."""

    num_classes: int = 10
    groups_per_class: int = 24
    clips_per_group: int = 2
    num_frames: int = 48
    size: int = 64
    fps: int = 16
    container: str = "mixed"
    appearance_correlation: float = 0.0
    tracking_sequences: int = 4
    seed: int = 0
    time_cue: float = 0.0   # the frame dims by this fraction over the clip (order pretexts); 0 = off
