"""The embedded synthetic action dataset (UCF101 layout) and tracking sequences (DAVIS / MOT17).

Ten action classes defined by irreversible temporal structure (``SYNTHETIC_CLASSES``), rendered
with appearance drawn independently of the class (or correlated with it, on request), written as
real MPEG-4/AVI and H.264/MP4 files. See ``docs/synthetic.md``.

>>> from vidssl.data.synthetic import make_synthetic
>>> summary = make_synthetic("data/synthetic")          # doctest: +SKIP
"""

from vidssl.data.synthetic.appearance import Appearance, clip_appearance
from vidssl.data.synthetic.classes import (
    SYNTHETIC_CLASSES,
    TRACKING_CLASSES,
    RenderedClip,
    render_clip,
)
from vidssl.data.synthetic.generate import SyntheticSummary, make_synthetic

__all__ = [
    "SYNTHETIC_CLASSES",
    "TRACKING_CLASSES",
    "Appearance",
    "RenderedClip",
    "SyntheticSummary",
    "clip_appearance",
    "make_synthetic",
    "render_clip",
]
