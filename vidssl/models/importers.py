"""Weights their authors published, as vidssl encoders: ``--pretrained SOURCE:REF``.

=================================  ==============================================================
``torchvision:NAME``               torchvision's Kinetics-400 video models with their heads
                                   (``r3d_18 mc3_18 r2plus1d_18 s3d mvit_v1_b mvit_v2_s swin3d_t
                                   swin3d_s swin3d_b swin3d_b_22k``); downloaded through
                                   ``torch.hub`` (a copy in its cache is used offline)
``videomae:HUB_ID|FOLDER``         a Hugging Face VideoMAE checkpoint (pretraining or finetuned,
                                   ``MCG-NJU/videomae-base-finetuned-kinetics``), via transformers
``vjepa2:HUB_ID|FOLDER``           a V-JEPA 2 checkpoint (``facebook/vjepa2-vitl-fpc64-256``, or a
                                   classifier such as ``facebook/vjepa2-vitl-fpc16-256-ssv2``)
``tclr:FILE``                      TCLR's released R3D-18 (``DAVEISHAN/TCLR``, Google Drive)
``coclr:FILE``                     CoCLR's released S3D, RGB (``TengdaHan/CoCLR``)
=================================  ==============================================================

Each importer maps the published key layout onto a registered encoder, loads it **strictly**
and sets the input the weights expect (``encoder.preprocess``); a checkpoint with a classifier
keeps it (``forward_logits``, ``class_names``) for ``vidssl eval --protocol classify``. The
key mappings are written from the authors' model code (cited per importer) and tested on state
dicts with those names and shapes; where the reference architecture is installable
(torchvision, transformers) the outputs equal the reference's.

Not here: DPC's released weights (its 2D3D-ResNet backbone is added by another change; the
importer comes with it), TCLR's R(2+1)D-18 (its dilated variant's code is not released), CoCLR's
flow networks (2-channel input).
"""

from __future__ import annotations

import collections
import os
import re
from typing import Any, Callable, Mapping

import torch
from torch import nn

from vidssl.data.transforms.video import IMAGENET_MEAN, IMAGENET_STD
from vidssl.errors import ConfigError, MissingDependencyError, VidsslError
from vidssl.models.encoders.base import Preprocess
from vidssl.registry import Registry

__all__ = ["IMPORTERS", "load_published", "is_published_ref", "read_checkpoint_file", "tclr_state_dict",
           "coclr_state_dict", "TCLR_PREPROCESS", "COCLR_PREPROCESS"]

#: ``source -> importer(ref) -> encoder``.
IMPORTERS: Registry[Callable[[str], nn.Module]] = Registry("weights source")


def is_published_ref(ref: Any) -> bool:
    """Whether ``ref`` names published weights (``SOURCE:REF`` with a registered source)."""
    if not isinstance(ref, str) or ":" not in ref:
        return False
    return ref.split(":", 1)[0] in IMPORTERS.names()


def load_published(ref: str) -> nn.Module:
    """The encoder for ``SOURCE:REF`` (see the module docstring); one-line errors."""
    source, _, rest = str(ref).partition(":")
    if not rest:
        raise ConfigError(f"published weights are named SOURCE:REF ({', '.join(IMPORTERS.names())}), got {ref!r}")
    encoder = IMPORTERS[source](rest)
    encoder.published = ref
    return encoder


def _one_line(err: BaseException, limit: int = 200) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------- reading authors' files

def _grad_scaler_globals() -> list:
    """What unpickling a checkpoint that saved a ``GradScaler`` object needs (TCLR's ``amp_scaler``),
    under the class paths of current and older torch."""
    from torch.amp import grad_scaler as amp_gs

    out: list = [collections.defaultdict, amp_gs.GradScaler, amp_gs.OptState, amp_gs._refresh_per_optimizer_state]
    try:
        from torch.cuda.amp import grad_scaler as cuda_gs

        out.append(cuda_gs.GradScaler)
    except ImportError:  # pragma: no cover - CPU-only builds still ship the module
        pass
    for old in ("torch.cuda.amp.grad_scaler._refresh_per_optimizer_state",):
        out.append((amp_gs._refresh_per_optimizer_state, old))
    out.append((amp_gs.OptState, "torch.cuda.amp.grad_scaler.OptState"))
    return out


def read_checkpoint_file(path: str | os.PathLike, what: str) -> dict[str, Any]:
    """A training checkpoint an author published, read with ``torch.load(weights_only=True)``;
    a pickled ``GradScaler`` (TCLR's files) is allowed through an explicit allow-list, nothing
    else runs code."""
    path = os.fspath(os.path.expanduser(str(path)))
    if not os.path.isfile(path):
        raise VidsslError(f"{what} checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals(_grad_scaler_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - pickle / zip / unsafe-global errors
        raise VidsslError(f"cannot read the {what} checkpoint {path}: {_one_line(err)}") from None
    if not isinstance(obj, Mapping):
        raise VidsslError(f"{path} is not a {what} checkpoint (a dict with a state_dict)")
    return dict(obj)


def _state(obj: Mapping[str, Any], keys: tuple[str, ...], path: str, what: str) -> dict[str, torch.Tensor]:
    for key in keys:
        if isinstance(obj.get(key), Mapping):
            return {k: v for k, v in obj[key].items() if isinstance(v, torch.Tensor)}
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj)
    raise VidsslError(f"{path}: no state dict in the {what} checkpoint (looked for {', '.join(keys)})")


# ---------------------------------------------------------------------- torchvision

TORCHVISION_NAMES = ("r3d_18", "mc3_18", "r2plus1d_18", "s3d", "mvit_v1_b", "mvit_v2_s", "swin3d_t", "swin3d_s",
                     "swin3d_b", "swin3d_b_22k")


def torchvision_weights(name: str):
    """torchvision's ``*_Weights`` entry of ``name`` (``swin3d_b_22k``: the ImageNet-22K one)."""
    from torchvision.models import video as tvv

    enums = {"r3d_18": tvv.R3D_18_Weights, "mc3_18": tvv.MC3_18_Weights, "r2plus1d_18": tvv.R2Plus1D_18_Weights,
             "s3d": tvv.S3D_Weights, "mvit_v1_b": tvv.MViT_V1_B_Weights, "mvit_v2_s": tvv.MViT_V2_S_Weights,
             "swin3d_t": tvv.Swin3D_T_Weights, "swin3d_s": tvv.Swin3D_S_Weights, "swin3d_b": tvv.Swin3D_B_Weights}
    if name == "swin3d_b_22k":
        return tvv.Swin3D_B_Weights.KINETICS400_IMAGENET22K_V1
    return enums[name].KINETICS400_V1


@IMPORTERS.register("torchvision")
def import_torchvision(name: str) -> nn.Module:
    """torchvision's Kinetics-400 weights of ``name``, classifier kept (400 classes)."""
    from vidssl.models.encoders import create_encoder
    from vidssl.models.encoders.weights import download_state_dict, load_state_dict_strict

    if name not in TORCHVISION_NAMES:
        raise ConfigError(f"torchvision has no video model {name!r}; known: {', '.join(TORCHVISION_NAMES)}")
    weights = torchvision_weights(name)
    if name == "swin3d_b_22k":
        state = download_state_dict(weights.url, "torchvision swin3d_b Kinetics-400 (ImageNet-22K) weights")
        encoder = create_encoder("swin3d_b", num_classes=400)
        load_state_dict_strict(encoder, state, weights.url)
    else:
        encoder = create_encoder(name, pretrained="default", num_classes=400)
    encoder.class_names = list(weights.meta["categories"])
    return encoder


# ---------------------------------------------------------------------- transformers

def _hf_config(config_cls_name: str, ref: str, what: str) -> Any:
    try:
        import transformers
    except ImportError:
        raise MissingDependencyError(package="transformers", extra="vit", feature=what) from None
    cls = getattr(transformers, config_cls_name)
    try:
        return cls.from_pretrained(ref)
    except Exception as err:  # noqa: BLE001 - offline, 404, bad folder
        raise VidsslError(f"cannot read the {what} config of {ref!r} ({_one_line(err, 140)}); offline, "
                          f"download it elsewhere (huggingface-cli download {ref}) and pass the folder") from None


def _is_classifier(config: Any) -> bool:
    return any("ForVideoClassification" in a for a in (getattr(config, "architectures", None) or []))


@IMPORTERS.register("videomae")
def import_videomae(ref: str) -> nn.Module:
    """A VideoMAE checkpoint on the hub or in a ``save_pretrained`` folder: its own config picks
    the size (ViT-S/B/L/H, else ``videomae_tiny`` with its widths), frames, image size, pooling
    and (finetuned checkpoints) the classifier. Input normalisation: ImageNet's mean / std, as
    VideoMAE's ``run_class_finetuning.py`` trains (transformers' processor defaults to 0.5 / 0.5)."""
    from vidssl.models.encoders import create_encoder
    from vidssl.models.encoders.video_vit import _VIT_SIZES

    cfg = _hf_config("VideoMAEConfig", ref, "VideoMAE")
    kwargs: dict[str, Any] = {"num_frames": int(cfg.num_frames), "image_size": int(cfg.image_size),
                              "use_mean_pooling": bool(cfg.use_mean_pooling)}
    if _is_classifier(cfg):
        kwargs["num_classes"] = int(cfg.num_labels)
    size = next((s for s, (h, n, heads, mlp) in _VIT_SIZES.items()
                 if (h, n, heads, mlp) == (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads,
                                           cfg.intermediate_size)), None)
    if size is not None:
        encoder = create_encoder(f"videomae_vit_{size}", pretrained=ref, **kwargs)
    elif cfg.intermediate_size != 4 * cfg.hidden_size or cfg.patch_size != 16 or cfg.tubelet_size != 2:
        raise ConfigError(f"{ref}: VideoMAE size {cfg.hidden_size}/{cfg.num_hidden_layers} layers is not one vidssl "
                          f"builds (ViT-S/B/L/H, or patch 16, tubelet 2, MLP 4x)")
    else:
        encoder = create_encoder("videomae_tiny", pretrained=ref, hidden_size=int(cfg.hidden_size),
                                 num_hidden_layers=int(cfg.num_hidden_layers),
                                 num_attention_heads=int(cfg.num_attention_heads), **kwargs)
    # VideoMAE's evaluation (kinetics.py, test mode): short side = crop (224), 16 frames at step 4
    encoder.preprocess = Preprocess(mean=IMAGENET_MEAN, std=IMAGENET_STD, num_frames=int(cfg.num_frames), stride=4,
                                    crop_size=int(cfg.image_size), resize_size=int(cfg.image_size))
    return encoder


@IMPORTERS.register("vjepa2")
def import_vjepa2(ref: str) -> nn.Module:
    """A V-JEPA 2 checkpoint (hub or folder): size, frames and crop from its config, the
    attentive classifier when it is a ``VJEPA2ForVideoClassification``; ImageNet mean / std
    (``VJEPA2VideoProcessor``'s)."""
    from vidssl.models.encoders import create_encoder
    from vidssl.models.encoders.vjepa2 import _SIZES

    cfg = _hf_config("VJEPA2Config", ref, "V-JEPA 2")
    kwargs: dict[str, Any] = {"num_frames": int(cfg.frames_per_clip), "image_size": int(cfg.crop_size)}
    if _is_classifier(cfg):
        kwargs["num_classes"] = int(cfg.num_labels)
    size = next((s for s, (h, n, heads, mlp) in _SIZES.items()
                 if (h, n, heads) == (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads)
                 and abs(mlp - cfg.mlp_ratio) < 1e-6), None)
    if size is not None and cfg.num_pooler_layers == 3:
        return create_encoder(f"vjepa2_vit_{size}", pretrained=ref, **kwargs)
    return create_encoder("vjepa2_tiny", pretrained=ref, hidden_size=int(cfg.hidden_size),
                          num_hidden_layers=int(cfg.num_hidden_layers), num_attention_heads=int(cfg.num_attention_heads),
                          num_pooler_layers=int(cfg.num_pooler_layers), **kwargs)


# ---------------------------------------------------------------------- TCLR

#: TCLR's input: BGR frames in [0, 1] (no mean / std), 16 frames at stride 2, 112 px; test crop
#: = the centre 192 x 192 of the 320 x 240 frame resized to 112, i.e. short side 140, crop 112.
#: (The importer swaps the first convolution's input channels, so vidssl feeds RGB.)
TCLR_PREPROCESS = Preprocess(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), num_frames=16, stride=2, crop_size=112,
                             resize_size=140)


def tclr_state_dict(state: Mapping[str, torch.Tensor], path: str = "TCLR checkpoint") -> dict[str, torch.Tensor]:
    """TCLR's keys (``module.0.stem.0.weight`` ... of ``nn.Sequential(backbone, mlp)`` under
    DataParallel, or ``0.*``, or the bare backbone) -> vidssl ``r3d_18`` keys: the MLP (``1.*``)
    and a linear-evaluation ``fc`` are dropped, as TCLR's ``build_r3d_classifier`` does
    (``linear_eval/model.py``); the stem's input channels are reversed (BGR -> RGB)."""
    out = {}
    for key, value in state.items():
        k = key[len("module."):] if key.startswith("module.") else key
        if k.startswith("1."):
            continue
        k = k[2:] if k.startswith("0.") else k
        if k.startswith("fc.") or k.startswith("avgpool"):
            continue
        out[k] = value
    if "stem.0.weight" not in out:
        raise VidsslError(f"{path}: no R3D backbone keys (expected module.0.stem.0.weight or stem.0.weight)")
    if "stem.3.weight" in out:
        raise VidsslError(f"{path}: an R(2+1)D-18 backbone; TCLR's R(2+1)D variant (its dilated last stage) "
                          f"has no released code, only the R3D-18 importer exists")
    out["stem.0.weight"] = out["stem.0.weight"].flip(1)      # BGR-trained filters applied to RGB input
    return out


@IMPORTERS.register("tclr")
def import_tclr(path: str) -> nn.Module:
    """TCLR's released R3D-18 (``tclr_pretraining/train_gen_all_step.py`` checkpoint: ``state_dict``
    or ``bb_state_dict``) as ``r3d_18(temporal_dilation_last_stage=True)`` with TCLR's input spec."""
    from vidssl.models.encoders import create_encoder
    from vidssl.models.encoders.weights import load_state_dict_strict

    obj = read_checkpoint_file(path, "TCLR")
    state = tclr_state_dict(_state(obj, ("state_dict", "bb_state_dict"), path, "TCLR"), path)
    encoder = create_encoder("r3d_18", temporal_dilation_last_stage=True)
    load_state_dict_strict(encoder, state, path)
    encoder.preprocess = TCLR_PREPROCESS
    return encoder


# ---------------------------------------------------------------------- CoCLR

#: CoCLR's input: ImageNet mean / std, 32 consecutive frames (ds 1), the centre 224 of the
#: 240-px frame scaled to 128 (= short side 137, crop 128).
COCLR_PREPROCESS = Preprocess(mean=IMAGENET_MEAN, std=IMAGENET_STD, num_frames=32, stride=1, crop_size=128,
                              resize_size=137)

# backbone/s3dg.py names -> index in torchvision's S3D.features
_COCLR_BLOCKS = {"Conv_1a": 0, "Conv_2b": 2, "Conv_2c": 3, "Mixed_3b": 5, "Mixed_3c": 6, "Mixed_4b": 8,
                 "Mixed_4c": 9, "Mixed_4d": 10, "Mixed_4e": 11, "Mixed_4f": 12, "Mixed_5b": 14, "Mixed_5c": 15}
_ST = {"conv1": "0.0", "bn1": "0.1", "conv2": "1.0", "bn2": "1.1"}     # STConv3d -> TemporalSeparableConv
_BASIC = {"conv": "0", "bn": "1"}                                        # BasicConv3d -> Conv3dNormActivation


def _coclr_key(k: str) -> str | None:
    """One ``backbone/s3dg.py`` key -> torchvision ``S3D.features`` key (``None``: a duplicate
    under ``blockN``, registered twice in CoCLR's S3D)."""
    if re.match(r"block\d\.", k):
        return None
    head, _, rest = k.partition(".")
    if head not in _COCLR_BLOCKS:
        raise VidsslError(f"unexpected CoCLR S3D key {k!r}")
    n = _COCLR_BLOCKS[head]
    if head.startswith("Mixed"):
        if "gating" in rest:
            raise VidsslError("an S3D-G checkpoint (self-gating); only CoCLR's S3D (gating=False) is supported")
        m = re.match(r"branch0\.0\.(conv|bn)\.(.+)", rest)
        if m:
            return f"features.{n}.branch0.{_BASIC[m[1]]}.{m[2]}"
        m = re.match(r"(branch[12])\.0\.(conv|bn)\.(.+)", rest)
        if m:
            return f"features.{n}.{m[1]}.0.{_BASIC[m[2]]}.{m[3]}"
        m = re.match(r"(branch[12])\.1\.(conv1|bn1|conv2|bn2)\.(.+)", rest)
        if m:
            return f"features.{n}.{m[1]}.1.{_ST[m[2]]}.{m[3]}"
        m = re.match(r"branch3\.1\.(conv|bn)\.(.+)", rest)
        if m:
            return f"features.{n}.branch3.1.{_BASIC[m[1]]}.{m[2]}"
        raise VidsslError(f"unexpected CoCLR S3D key {k!r}")
    part, _, tail = rest.partition(".")
    table = _BASIC if head == "Conv_2b" else _ST
    if part not in table:
        raise VidsslError(f"unexpected CoCLR S3D key {k!r}")
    return f"features.{n}.{table[part]}.{tail}"


def coclr_state_dict(state: Mapping[str, torch.Tensor], path: str = "CoCLR checkpoint") -> dict[str, torch.Tensor]:
    """CoCLR's keys -> vidssl ``s3d`` keys. Pretraining checkpoints (``main_coclr.py`` /
    ``main_nce.py``) hold the query encoder as ``encoder_q.0.*`` (its projection ``encoder_q.2/4``,
    the key encoder, the sampler and the queues are dropped); evaluation checkpoints
    (``eval/main_classifier.py``) hold ``backbone.*``; a ``module.`` prefix is removed."""
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}
    for prefix in ("encoder_q.0.", "backbone."):
        picked = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if picked:
            break
    else:
        raise VidsslError(f"{path}: no CoCLR S3D backbone (expected encoder_q.0.* or backbone.* keys)")
    out = {}
    for k, v in picked.items():
        new = _coclr_key(k)
        if new is not None:
            out[new] = v
    if out.get("features.0.0.0.weight") is not None and out["features.0.0.0.weight"].shape[1] != 3:
        raise VidsslError(f"{path}: a {out['features.0.0.0.weight'].shape[1]}-channel input (CoCLR's flow network); "
                          f"only the RGB network imports")
    return out


@IMPORTERS.register("coclr")
def import_coclr(path: str) -> nn.Module:
    """CoCLR's released S3D (RGB; ``backbone/s3dg.py``, PyTorch BatchNorm defaults) as
    ``s3d(bn_eps=1e-5, bn_momentum=0.1)`` with CoCLR's input spec."""
    from vidssl.models.encoders import create_encoder
    from vidssl.models.encoders.weights import load_state_dict_strict

    obj = read_checkpoint_file(path, "CoCLR")
    state = coclr_state_dict(_state(obj, ("state_dict",), path, "CoCLR"), path)
    encoder = create_encoder("s3d", bn_eps=1e-5, bn_momentum=0.1)
    load_state_dict_strict(encoder, state, path)
    encoder.preprocess = COCLR_PREPROCESS
    return encoder
