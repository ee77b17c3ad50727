"""vidssl: self-supervised learning of video representations."""

__version__ = "0.1.0"
