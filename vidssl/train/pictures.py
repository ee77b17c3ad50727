"""Pictures a method draws of its own work at the end of a run (VideoMAE: input | mask |
reconstruction of a few held clips), written into the run folder as PNG files.

A method offers them with ``visualize(batch) -> {name: uint8 (3, H, W)}``; the held clips are
the first ``clips`` items of the training set (their clip positions come from the dataset's own
seed, so every run of a config draws the same clips).
"""

from __future__ import annotations

import logging
import os

import torch
from torch import nn

from vidssl.data.dataset import batch_to_device, collate_clips

__all__ = ["write_method_pictures"]

log = logging.getLogger("vidssl")


def write_method_pictures(method: nn.Module, dataset, out_dir: str, device: torch.device, *, clips: int = 4,
                          write: bool = True) -> list[str]:
    """Call ``method.visualize`` on ``clips`` held clips and save each picture as
    ``<out_dir>/<name>.png``; returns the paths (``[]`` for a method without pictures).

    Every rank calls it (a sharded method's forward is a collective); ``write`` only on the main one.
    """
    if not hasattr(method, "visualize"):
        return []
    from PIL import Image

    batch = batch_to_device(collate_clips([dataset[i] for i in range(min(clips, len(dataset)))]), device)
    was_training = method.training
    method.eval()
    sharded = hasattr(method, "unshard")     # FSDP: visualize is not forward, so gather the root's parameters
    if sharded:
        method.unshard()
    try:
        with torch.no_grad():
            pictures = method.visualize(batch)
    finally:
        method.train(was_training)
        if sharded:
            method.reshard()
    paths = []
    for name, image in pictures.items():
        path = os.path.join(out_dir, f"{name}.png")
        if write:
            Image.fromarray(image.permute(1, 2, 0).contiguous().numpy()).save(path)
            log.info("pretrain: %s of %d held clips in %s", name, min(clips, len(dataset)), path)
        paths.append(path)
    return paths
