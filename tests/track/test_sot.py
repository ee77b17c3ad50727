"""SOT heads (cross-correlation and DCF) follow a target on feature maps whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidssl.errors import ConfigError
from vidssl.track.metrics import box_iou_xywh, success_auc
from vidssl.track.sot import SotConfig, track_object


def moving_target(frames: int = 12, h: int = 16, w: int = 20, step: float = 0.5):
    """A near-uniform static background (one feature vector plus a little noise: the context
    around the template carries no preference) and a 3x3-cell random target moving ``step``
    cells right per frame (stride 8); returns features and ground-truth boxes."""
    g = torch.Generator().manual_seed(0)
    bg = torch.randn(16, 1, 1, generator=g) + 0.1 * torch.randn(16, h, w, generator=g)
    target = torch.randn(16, 3, 3, generator=g) * 2
    feats, boxes = [], []
    for t in range(frames):
        f = bg.clone()
        x = 4 + int(round(step * t))
        f[:, 6:9, x:x + 3] = target
        feats.append(f)
        boxes.append([8 * x, 48, 24, 24])
    return torch.stack(feats), np.array(boxes, dtype=float)


@pytest.mark.parametrize("method", ["xcorr", "dcf"])
def test_sot_follows_a_moving_target(method):
    feats, gt = moving_target()
    boxes = track_object(feats, gt[0], (128, 160), stride=8, config=SotConfig(method=method))
    assert boxes.shape == gt.shape and (boxes[0] == gt[0]).all()
    iou = box_iou_xywh(boxes, gt)
    assert iou[-1] > 0.5, iou
    assert success_auc(boxes, gt) > 0.5


def test_sot_static_target_stays():
    feats, gt = moving_target(step=0.0)
    boxes = track_object(feats, gt[0], (128, 160), stride=8)
    assert np.abs(boxes[-1, :2] + boxes[-1, 2:] / 2 - gt[-1, :2] - gt[-1, 2:] / 2).max() < 8


@pytest.mark.parametrize("key,value,needle", [
    ("upsample", 0, "positive integer"), ("upsample", 2.5, "positive integer"),
    ("upsample", True, "positive integer"), ("context", -0.5, ">= 0"),
    ("padding", -2.0, ">= 0"), ("padding", float("nan"), ">= 0"), ("dcf_sigma", 0.0, "> 0"),
    ("dcf_lambda", 0.0, "> 0"), ("dcf_lambda", float("inf"), "> 0"),
    ("scale_penalty", 0.0, "(0, 1]"), ("scale_penalty", 1.5, "(0, 1]")])
def test_sot_settings_are_validated(key, value, needle):
    with pytest.raises(ConfigError, match=f"sot.{key}") as err:
        SotConfig(**{key: value}).validate()
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_sot_upsample_zero_is_a_one_line_cli_error(tiny_tracking, tmp_path, capsys):
    from vidssl.cli import main

    assert main(["track", "--task", "sot", "--pixels", "--data", str(tiny_tracking), "--quiet",
                 "--out", str(tmp_path), "sot.upsample=0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "sot.upsample" in err and "\n" not in err and "Traceback" not in err


def test_sot_bad_settings():
    with pytest.raises(ConfigError):
        SotConfig(method="siamrpn").validate()
    with pytest.raises(ConfigError):
        SotConfig(num_scales=2).validate()
    feats, gt = moving_target(frames=2)
    with pytest.raises(ConfigError):
        track_object(feats, [0, 0, 0, 5], (128, 160))
