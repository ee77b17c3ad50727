"""CoCLR: self-supervised co-training for video representation learning (Han et al., NeurIPS 2020).

Two views of a video (:class:`~vidssl.data.samplers.CoTrainingPairSampler`: two clips, half of
the time one clip twice), each seen in two modalities: RGB and a second one: **residual
frames** (differences of consecutive frames, computed on the device from one extra frame per
clip; the default), **flow** (torchvision's RAFT on the device, frozen) or **flow_video**
(optical flow precomputed by ``tools/precompute_flow.py`` and read through
``data.paired_root``), flow encoded as the paper's 3-channel image. The spatial augmentation
(crop, flip) is drawn once per clip and shared by its RGB and second-modality frames; colour
jitter touches RGB only.

One network is trained per stage, MoCo style: query encoder + projection MLP, a momentum copy
for the keys (``m = 0.999``), a queue of past keys (2048, 128-d), ``tau = 0.07``.

- ``stage: infonce`` (initialisation): plain InfoNCE, the key of the other clip of the same
  video is the only positive.
- ``stage: cotrain``: the other modality's network, frozen (``other_checkpoint``, from its own
  InfoNCE stage), embeds the same clips; its embeddings of the queued keys sit in a second queue.
  Once the queue is full, the ``topk`` (5) queue entries most similar *in the other modality*
  to the key's clip (``mine_with``), among those not already positives of the query (its own
  video, its group), join the true key as positives
  (:func:`~vidssl.losses.coclr.mine_positives`), multi-instance InfoNCE
  (:func:`~vidssl.losses.coclr.multi_positive_nce`); on 90% of the steps the true key then
  leaves the positive set of rows that have others. Until the queue is full the step trains on
  what the queue holds without mining, as the authors (``until_queue_full: skip`` returns
  ``skip_update`` instead and only enqueues).
- BatchNorm (``bn_splits``): each process's batch is encoded as that many sub-batches, the
  queries in order and the keys after a random permutation (MoCo's shuffle BN, which the
  authors run across GPUs), so a key is normalised with a random set of clips, not with the
  sub-batch of its query.

``schedule`` runs the paper's alternation from one config: e.g. ``["infonce:rgb",
"infonce:residual", "cotrain:rgb", "cotrain:residual"]``. :func:`plan_stages` describes the
stages as data (:class:`~vidssl.methods.Stage`); the trainer runs each for the config's
``train`` budget into ``OUT_DIR/stageN_STAGE_MODALITY``, a co-training stage taking the latest
checkpoint of the other modality from an earlier stage; ``--resume`` skips finished stages.
Either stage can train the RGB network (``train_modality: rgb``, the exported ``encoder``) or
the second-modality one.

Reference code: ``TengdaHan/CoCLR`` (model/pretrain.py ``InfoNCE``/``CoCLR``, main_coclr.py
``train_one_epoch``).
See ``docs/methods.md``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from vidssl.data.samplers import CoTrainingPairSampler
from vidssl.data.transforms import (ColorJitter, Compose, Normalize, RandomGrayscale, RandomHorizontalFlip,
                                    RandomResizedCrop, ToModelLayout)
from vidssl.data.transforms.functional import residual_frames
from vidssl.errors import ConfigError
from vidssl.losses.coclr import mine_positives, multi_positive_nce, queue_positives
from vidssl.methods import (Pretext, Stage, building_parts, check_choice, check_ints, check_range,
                            param_error, register_method)
from vidssl.methods.common import ema_update, norm_kwargs
from vidssl.models.checkpoint import load_checkpoint, load_encoder, load_submodule, submodule_state
from vidssl.models.heads import moco_head
from vidssl.runtime import dist

__all__ = ["CoCLRParams", "CoCLR", "plan_stages"]

SECOND_MODALITIES: tuple[str, ...] = ("residual", "flow", "flow_video")
STAGES: tuple[str, ...] = ("infonce", "cotrain")
SAME_VIDEO: tuple[str, ...] = ("positive", "ignore", "negative")
MINE_WITH: tuple[str, ...] = ("key", "query")
UNTIL_FULL: tuple[str, ...] = ("train", "skip")


@dataclass
class CoCLRParams:
    """CoCLR's parameters (defaults: the paper / authors' code, UCF101 at 128 px).

    Sampling: num_frames (32), stride (1), same_clip_prob (0.5), short_video.
    Second modality: ``"residual"`` (frame differences, default), ``"flow"`` (RAFT on the fly:
        flow_model, flow_weights ``"default"`` | path | ``None``, flow_bound in pixels) or
        ``"flow_video"`` (precomputed flow videos paired through ``data.paired_root``).
    Stage: stage ``"infonce"`` | ``"cotrain"``; train_modality ``"rgb"`` or the second modality;
        other_checkpoint: the frozen other-modality network (``cotrain`` only): a vidssl
        checkpoint whose ``encoder`` was trained on the other modality.
        init_checkpoint: start this network (query and key encoders and heads) from an earlier
        CoCLR stage of the same modality (a schedule sets it: each co-training stage continues
        the network it trains, as in the paper).
    Augmentation: crop_size (128), crop_scale (0.3-1), colour jitter on RGB (p 0.8).
    MoCo: proj_dim (128), momentum (0.999), queue_size (2048), temperature (0.07).
    Mining (``cotrain``): topk (5) positives from the other modality, the queue entries nearest
        to the other-modality embedding of ``mine_with``: ``"key"`` (default, the authors: the
        key clip) or ``"query"`` (the query clip); entries already positive (same video, same
        group) are skipped so ``topk`` new ones are found. until_queue_full: ``"train"``
        (default, the authors: until it is full, the loss on what the queue holds with
        no mined positives, only the true key and same-video / group entries) or ``"skip"`` (no update until it is full). self_positive_mask_prob (0.9): on
        this fraction of the steps (one draw per step, as main_coclr.py), rows with other
        positives drop their own key from the positive set (it stays in the denominator);
        0 = off.
    BatchNorm: bn_splits (2): the batch of each process is encoded as this many sub-batches,
        queries in order and keys shuffled (MoCo's shuffle BN; the authors shuffle across
        GPUs); 1 = one batch for both (queries and their keys share BN statistics).
    Queue entries of the query's own video (keys of earlier clips of it): queue_same_video
        ``"positive"`` (they are the same instance), ``"ignore"`` (out of the denominator) or
        ``"negative"`` (plain MoCo). group_positives: entries of the same dataset group (UCF101's
        ``gGG``: clips cut from one longer video) count as positives too.
    oracle_mining (False): a diagnostic upper bound, not CoCLR: mine only among queue entries
        whose label is the query's (the batch's ``label``), so every mined positive is of the
        query's class; it needs labelled data. It asks whether a co-training stage fails for its
        positives or for its optimisation (docs/compare.md, CoCLR ablation).
    """

    num_frames: int = 32
    stride: int = 1
    same_clip_prob: float = 0.5
    short_video: str = "pad"
    stage: str = "infonce"
    train_modality: str = "rgb"
    second_modality: str = "residual"
    flow_model: str = "raft_small"
    flow_weights: Optional[str] = "default"
    flow_bound: float = 20.0
    other_checkpoint: Optional[str] = None
    init_checkpoint: Optional[str] = None
    crop_size: int = 128
    crop_scale: tuple[float, float] = (0.3, 1.0)
    color_jitter_prob: float = 0.8
    proj_dim: int = 128
    momentum: float = 0.999
    queue_size: int = 2048
    temperature: float = 0.07
    topk: int = 5
    mine_with: str = "key"
    until_queue_full: str = "train"
    self_positive_mask_prob: float = 0.9
    bn_splits: int = 2
    queue_same_video: str = "positive"
    group_positives: bool = False
    oracle_mining: bool = False
    schedule: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        def bad(key: str, msg: str) -> ConfigError:
            return param_error("coclr", key, msg)

        check_choice("coclr", "queue_same_video", self.queue_same_video, SAME_VIDEO)
        check_choice("coclr", "mine_with", self.mine_with, MINE_WITH)
        check_choice("coclr", "until_queue_full", self.until_queue_full, UNTIL_FULL)
        check_choice("coclr", "stage", self.stage, STAGES)
        check_choice("coclr", "second_modality", self.second_modality, SECOND_MODALITIES)
        plan_stages(self)  # a schedule that cannot run is an error now, not at its stage
        if self.train_modality not in ("rgb", self.second_modality):
            raise bad("train_modality", f"must be 'rgb' or the second modality "
                                        f"({self.second_modality!r}), got {self.train_modality!r}")
        if self.stage == "cotrain" and not self.other_checkpoint and not self.schedule:
            raise bad("other_checkpoint", "stage 'cotrain' needs the frozen other-modality network's "
                                          "checkpoint (from its 'infonce' stage)")
        check_ints("coclr", self, {"crop_size": 1, "proj_dim": 1, "queue_size": 1, "topk": 1, "bn_splits": 1})
        if self.topk >= self.queue_size:
            raise bad("topk", f"must be smaller than queue_size ({self.queue_size}), got {self.topk}")
        check_range("coclr", self, {"self_positive_mask_prob": "[0, 1]", "momentum": "[0, 1)", "temperature": "> 0"})
        with building_parts("coclr"):
            build_sampler(self)
            RandomResizedCrop(self.crop_size, scale=tuple(self.crop_scale))


def build_sampler(p: CoCLRParams) -> CoTrainingPairSampler:
    return CoTrainingPairSampler(num_frames=p.num_frames, stride=p.stride, same_clip_prob=p.same_clip_prob,
                                 modality=p.second_modality, extra_frame=True, short_video=p.short_video)


def plan_stages(p: CoCLRParams) -> list[Stage]:
    """The stages of ``p.schedule`` (none without one), each named ``stageN_STAGE_MODALITY``; a
    co-training stage's ``other_checkpoint`` is the other modality's latest earlier stage (or
    the given ``other_checkpoint``), and a modality trained before continues from its latest
    checkpoint (``init_checkpoint``). A malformed entry, or a co-training stage with no trained
    other network, is a one-line ``ConfigError`` naming ``schedule[i]``."""
    other = {"rgb": p.second_modality, p.second_modality: "rgb"}
    latest: dict[str, tuple[str, str]] = {}  # modality -> ("path", file) or ("stage", stage name)
    if p.other_checkpoint and p.train_modality in other:
        latest[other[p.train_modality]] = ("path", p.other_checkpoint)
    stages = []
    for i, entry in enumerate(p.schedule):
        stage, _, modality = str(entry).partition(":")
        if stage not in STAGES or modality not in other:
            raise param_error("coclr", f"schedule[{i}]", f"must be 'STAGE:MODALITY' with STAGE in {STAGES} and "
                                                         f"MODALITY in {tuple(other)}, got {entry!r}")
        if stage == "cotrain" and other[modality] not in latest:
            raise param_error("coclr", f"schedule[{i}]", f"{entry!r} needs a trained {other[modality]} network: "
                                                         f"an earlier stage that trains it, or other_checkpoint")
        name = f"stage{i + 1}_{stage}_{modality}"
        params, refs = {"schedule": [], "stage": stage, "train_modality": modality}, {}
        wanted = ([("other_checkpoint", other[modality])] if stage == "cotrain" else []) + (
            [("init_checkpoint", modality)] if modality in latest else [])
        for key, source in wanted:
            kind, value = latest[source]
            (params if kind == "path" else refs)[key] = value
        stages.append(Stage(name, params, refs))
        latest[modality] = ("stage", name)
    return stages


@register_method("coclr", CoCLRParams)
class CoCLR(nn.Module):
    """CoCLR (one stage, one trained modality) around an encoder of the vidssl protocol.

    ``forward(batch)``: ``batch["views"]`` = ``[clip0, clip1]`` uint8 ``(B, T + 1, C, H, W)``.
    Returns ``loss``, ``acc`` (the true key ranks first), ``num_positives`` (mean positives per
    query), ``queue_fill`` (fraction of the queue holding real keys), once a ``cotrain`` stage
    mines and the data has labels ``mined_same_label`` (:func:`mined_same_label`) and, while a
    ``cotrain`` queue is filling under ``until_queue_full: skip``, ``skip_update = 1`` (the
    trainer then skips the optimiser step).
    ``after_step`` updates the momentum encoder and enqueues the step's keys.
    """

    stages = staticmethod(plan_stages)

    @staticmethod
    def pretext(params) -> Pretext:
        return Pretext("acc", "instance accuracy against the queue")

    def __init__(self, encoder: nn.Module, params: CoCLRParams):
        super().__init__()
        self.params = p = params
        self.encoder = encoder
        self.sampler = build_sampler(params)
        self.head = moco_head(encoder.num_features, p.proj_dim)
        self.encoder_k = copy.deepcopy(encoder).requires_grad_(False)
        self.head_k = copy.deepcopy(self.head).requires_grad_(False)
        self.spatial = Compose([RandomResizedCrop(p.crop_size, scale=tuple(p.crop_scale)), RandomHorizontalFlip()])
        self.rgb_aug = Compose([ColorJitter(0.4, 0.4, 0.4, 0.1, p=p.color_jitter_prob), RandomGrayscale(p=0.2),
                                Normalize(**norm_kwargs(encoder)), ToModelLayout()])
        self.layout = ToModelLayout()
        self.flow = None
        if p.second_modality == "flow":
            from vidssl.models.flow import load_raft

            self.flow = load_raft(p.flow_model, p.flow_weights)
        self.other: Optional[nn.Module] = None
        if p.stage == "cotrain":  # the other modality's network, frozen: no gradient, BN in eval mode
            self.other = nn.Module()
            self.other.encoder = load_encoder(p.other_checkpoint)
            self.other.head = moco_head(self.other.encoder.num_features, p.proj_dim)
            model_state = load_checkpoint(p.other_checkpoint)["model"]
            if submodule_state(model_state, "head"):
                self.other.head.load_state_dict(submodule_state(model_state, "head"))
            self.other.requires_grad_(False).eval()
        if p.init_checkpoint:
            state = load_checkpoint(p.init_checkpoint)["model"]
            for name in ("encoder", "head", "encoder_k", "head_k"):
                load_submodule(getattr(self, name), state, name, f"init_checkpoint {p.init_checkpoint}")
        self.register_buffer("queue", F.normalize(torch.randn(p.queue_size, p.proj_dim), dim=1))
        self.register_buffer("queue_other", torch.zeros(p.queue_size, p.proj_dim))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("queue_count", torch.zeros((), dtype=torch.long))
        self.register_buffer("queue_video", torch.full((p.queue_size,), -2, dtype=torch.long))
        self.register_buffer("queue_group", torch.full((p.queue_size,), -2, dtype=torch.long))
        # labels of the queued keys, for the mined_same_label diagnostic and the oracle_mining
        # upper bound (CoCLR itself never reads them); not saved: after a resume it refills with
        # the queue (until then oracle_mining finds fewer entries to mine)
        self.register_buffer("queue_label", torch.full((p.queue_size,), -1, dtype=torch.long), persistent=False)
        self._pending: Optional[tuple] = None

    def train(self, mode: bool = True):
        super().train(mode)
        if self.other is not None:
            self.other.eval()  # frozen BN statistics
        return self

    def modalities(self, clip: torch.Tensor, paired: Optional[torch.Tensor] = None):
        """uint8 ``(B, T + 1, C, H, W)`` (and its paired flow video) -> model-layout RGB and
        second-modality inputs under one crop."""
        t = clip.shape[1] - 1
        if paired is not None:  # flow video: crop the RGB and flow frames together
            x = self.spatial(torch.cat([clip, paired], dim=1))
            return self.rgb_aug(x[:, :t]), self.layout(x[:, t + 1: 2 * t + 1])
        x = self.spatial(clip)                                  # float (B, T + 1, C, S, S)
        if self.flow is not None:
            from vidssl.models.flow import compute_flow, flow_to_image

            second = flow_to_image(compute_flow(self.flow, x), self.params.flow_bound)
        else:
            second = residual_frames(x)
        return self.rgb_aug(x[:, :-1]), self.layout(second)

    def embed(self, encoder: nn.Module, head: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(head(encoder.forward_features(x)).float(), dim=1)

    def embed_split(self, encoder: nn.Module, head: nn.Module, x: torch.Tensor,
                    perm: Optional[torch.Tensor] = None) -> torch.Tensor:
        """:meth:`embed` on ``bn_splits`` sub-batches (each its own BN statistics): the rows in
        order, or those of ``perm`` (CPU indices) with the result put back in row order."""
        n = min(self.params.bn_splits, x.shape[0])
        if perm is None:
            return torch.cat([self.embed(encoder, head, part) for part in x.tensor_split(n)])
        perm = perm.to(x.device)
        z = torch.cat([self.embed(encoder, head, x[idx]) for idx in perm.tensor_split(n)])
        return torch.empty_like(z).index_copy_(0, perm, z)

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        views = batch["views"]
        p = self.params
        want = 4 if p.second_modality == "flow_video" else 2
        if len(views) != want:
            hint = " (two clips + their flow videos: set data.paired_root)" if want == 4 else ""
            raise ValueError(f"CoCLR with second_modality {p.second_modality!r} expects {want} views{hint}, "
                             f"got {len(views)}")
        own = 0 if p.train_modality == "rgb" else 1
        b = views[0].shape[0]
        with torch.no_grad():
            paired = views[2:] if want == 4 else [None, None]
            m0, m1 = self.modalities(views[0], paired[0]), self.modalities(views[1], paired[1])
            shuffle = torch.randperm(b) if min(p.bn_splits, b) > 1 else None   # shuffle BN
            k = self.embed_split(self.encoder_k, self.head_k, m1[own], shuffle)
            k_other = anchor = None
            if self.other is not None:   # frozen, BN in eval mode: one call
                k_other = self.embed(self.other.encoder, self.other.head, m1[1 - own])
                anchor = k_other if p.mine_with == "key" else self.embed(
                    self.other.encoder, self.other.head, m0[1 - own])
        video = batch.get("index", torch.full((b,), -1, dtype=torch.long)).to(k.device).long()
        group = batch.get("group", torch.full((b,), -1, dtype=torch.long)).to(k.device).long()
        label = batch.get("label", torch.full((b,), -1, dtype=torch.long)).to(k.device).long()
        ids = _gather(torch.stack([video, group, label], 1).double()).long()   # one collective
        self._pending = (_gather(k), None if k_other is None else _gather(k_other), *ids.unbind(1))
        full = int(self.queue_count) >= p.queue_size
        q = self.embed_split(self.encoder, self.head, m0[own])
        logits = torch.cat([(q * k).sum(1, keepdim=True), q @ self.queue.T], 1) / p.temperature
        positives, same_video = queue_positives(video, self.queue_video, group, self.queue_group,
                                                same_video=p.queue_same_video, group_positives=p.group_positives)
        out: dict[str, torch.Tensor] = {}
        if self.other is not None and full:   # new positives only: same video / group excluded
            exclude = positives[:, 1:] | same_video[:, 1:]
            if p.oracle_mining:
                if bool((label < 0).any()):
                    raise ConfigError("coclr oracle_mining needs labelled data: a batch has clips "
                                      "without a label (-1)")
                exclude |= label[:, None] != self.queue_label[None]
            mined = mine_positives(anchor, self.queue_other, p.topk, exclude=exclude)
            positives[:, 1:] |= mined
            same_label = mined_same_label(mined, label, self.queue_label)
            if same_label is not None:
                out["mined_same_label"] = same_label
        elif self.other is not None and p.until_queue_full == "skip":
            out["skip_update"] = torch.tensor(1.0)
        if p.queue_same_video == "ignore":  # out of the denominator, and so never a positive
            logits = logits.masked_fill(same_video, float("-inf"))
            positives &= ~same_video
        if self.other is not None and p.self_positive_mask_prob > 0 \
                and float(torch.rand(())) < p.self_positive_mask_prob:   # one draw per step
            positives[:, 0] &= ~positives[:, 1:].any(1)
        loss = multi_positive_nce(logits, positives)
        if "skip_update" in out:
            loss = loss * 0.0
        with torch.no_grad():
            out.update(acc=(logits.argmax(1) == 0).float().mean(),
                       chance=(1.0 / torch.isfinite(logits).sum(1).clamp(min=1).float()).mean(),
                       num_positives=positives.sum(1).float().mean(),
                       queue_fill=torch.tensor(min(1.0, float(self.queue_count) / p.queue_size)))
        return {"loss": loss, **out}

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        """Momentum update of the key encoder, then enqueue the last forward's keys."""
        ema_update([(self.encoder, self.encoder_k), (self.head, self.head_k)], self.params.momentum)
        if self._pending is None:
            return
        keys, keys_other, video, group, label = self._pending
        self._pending = None
        size = self.params.queue_size
        keys = keys[-size:]
        n = keys.shape[0]
        idx = (int(self.queue_ptr) + torch.arange(n, device=keys.device)) % size
        self.queue[idx] = keys
        self.queue_video[idx] = video[-size:]
        self.queue_group[idx] = group[-size:]
        self.queue_label[idx] = label[-size:]
        if keys_other is not None:
            self.queue_other[idx] = keys_other[-size:]
        self.queue_ptr.fill_((int(self.queue_ptr) + n) % size)
        self.queue_count.add_(n)


def mined_same_label(mined: torch.Tensor, label: torch.Tensor, queue_label: torch.Tensor) -> Optional[torch.Tensor]:
    """Fraction of the mined positives whose label is the query's (labels < 0: unknown, left
    out): how often the other modality's neighbours are the same class. A diagnostic: it does
    not touch the loss. ``None`` when the queue holds no known label (the same on every
    rank: the queue is shared, so every rank logs the metric or none does); 0 for a rank whose
    own queries have no known label."""
    if not bool((queue_label >= 0).any()):
        return None
    known = mined & (label[:, None] >= 0) & (queue_label[None] >= 0)
    same = known & (label[:, None] == queue_label[None])
    return same.sum().float() / known.sum().clamp(min=1).float()


def _gather(z: torch.Tensor) -> torch.Tensor:
    """Keys from every rank (no gradient), rank order: every rank enqueues the same keys."""
    if dist.world_size() == 1:
        return z
    return dist.gather_with_grad(z).detach()
