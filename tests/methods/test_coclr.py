"""CoCLR: the multi-positive loss against a loop, positives mined from the *other* modality's
top-K around the *key* clip, never among same-video / same-group entries, training while the
queue fills (or no update until it is full, as an option; method and trainer), the self-positive
mask, shuffle BN over sub-batches, momentum/queue bookkeeping."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vidssl.errors import ConfigError
from vidssl.methods import create_method
from vidssl.data.transforms.functional import residual_frames
from vidssl.losses.coclr import mine_positives, multi_positive_nce
from vidssl.methods.coclr import mined_same_label
from vidssl.models.encoders import create_encoder
from vidssl.models.checkpoint import save_checkpoint

SMALL = dict(num_frames=4, crop_size=32, queue_size=8, topk=2, proj_dim=16)


def views(seed: int, b: int = 4) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (b, 5, 3, 40, 40), dtype=torch.uint8, generator=g) for _ in range(2)]


@pytest.fixture
def residual_checkpoint(tmp_path):
    """A stage-1 checkpoint of the residual network, as the trainer writes it."""
    torch.manual_seed(1)
    method = create_method("coclr", create_encoder("r3d_tiny"), {**SMALL, "train_modality": "residual"})
    path = tmp_path / "residual.pt"
    save_checkpoint({"model": method.state_dict(), "encoder": method.encoder.state_dict(),
                     "encoder_spec": {"name": "r3d_tiny", "kwargs": {}}, "step": 1}, path)
    return str(path)


def test_multi_positive_nce_matches_a_loop():
    torch.manual_seed(0)
    logits = torch.randn(3, 6)
    pos = torch.tensor([[1, 0, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0], [1, 1, 1, 0, 0, 1]], dtype=torch.bool)
    expect = sum(-math.log(sum(math.exp(logits[i, j]) for j in range(6) if pos[i, j])
                           / sum(math.exp(logits[i, j]) for j in range(6))) for i in range(3)) / 3
    assert multi_positive_nce(logits, pos).item() == pytest.approx(expect, rel=1e-5)
    single = multi_positive_nce(logits, torch.eye(3, 6, dtype=torch.bool))
    assert single.item() == pytest.approx(F.cross_entropy(logits, torch.arange(3)).item(), rel=1e-5)
    with pytest.raises(ValueError, match="at least one positive"):
        multi_positive_nce(logits, torch.zeros(3, 6, dtype=torch.bool))


def test_mined_positives_are_the_other_modalitys_top_k():
    """Queue entries 5 and 2 are nearest in the other modality; the own-modality similarity
    plays no part."""
    q_other = F.normalize(torch.tensor([[1.0, 0.0, 0.0]]), dim=1)
    queue_other = F.normalize(torch.tensor([[0.0, 1, 0], [-1, 0, 0], [0.8, 0.6, 0], [0, 0, 1],
                                            [0.1, 1, 0], [0.99, 0.1, 0]]), dim=1)
    mask = mine_positives(q_other, queue_other, 2)
    assert mask.nonzero()[:, 1].tolist() == [2, 5]


def test_residual_frames():
    x = torch.arange(4, dtype=torch.float32).view(1, 4, 1, 1, 1).expand(1, 4, 3, 2, 2) / 10
    r = residual_frames(x)
    assert r.shape == (1, 3, 3, 2, 2) and torch.allclose(r, torch.full_like(r, 0.1))
    with pytest.raises(ValueError):
        residual_frames(x[:, :1])


@pytest.mark.parametrize("modality", ["rgb", "residual"])
def test_infonce_stage_two_cpu_steps(modality):
    torch.manual_seed(0)
    method = create_method("coclr", create_encoder("r3d_tiny"), {**SMALL, "train_modality": modality})
    assert method.sampler.view_lengths == (5, 5)          # one extra frame for the residuals
    opt = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.05, momentum=0.9)
    before_q = [p.detach().clone() for p in method.encoder.parameters()]
    before_k = [p.detach().clone() for p in method.encoder_k.parameters()]
    for step in range(2):
        out = method({"views": views(step), "targets": {}})
        assert torch.isfinite(out["loss"]) and "skip_update" not in out
        assert out["num_positives"].item() == 1.0
        opt.zero_grad()
        out["loss"].backward()
        assert all(p.grad is None for p in method.encoder_k.parameters())
        opt.step()
        method.after_step(step, 2)
    assert any(not torch.equal(a, b) for a, b in zip(before_q, method.encoder.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(before_k, method.encoder_k.parameters()))  # momentum
    assert int(method.queue_count) == 8 and int(method.queue_ptr) == 0


def test_cotrain_waits_for_a_full_queue_then_mines(residual_checkpoint):
    """until_queue_full: skip (vidssl's option): no update until the queue is full."""
    torch.manual_seed(0)
    method = create_method("coclr", create_encoder("r3d_tiny"),
                           {**SMALL, "stage": "cotrain", "other_checkpoint": residual_checkpoint,
                            "until_queue_full": "skip", "self_positive_mask_prob": 0.0})
    assert not any(p.requires_grad for p in method.other.parameters())
    method.train()
    assert not method.other.training                         # frozen BN statistics
    for step in range(2):                                     # 2 x 4 keys fill the queue of 8
        out = method({"views": views(step), "targets": {}})
        assert out["skip_update"].item() == 1.0 and out["loss"].item() == 0.0
        method.after_step(step, 10)
    assert int(method.queue_count) == 8 and bool(method.queue_other.abs().sum(1).gt(0).all())
    out = method({"views": views(5), "targets": {}})
    assert "skip_update" not in out and out["loss"].item() > 0
    assert out["num_positives"].item() == 1 + SMALL["topk"]
    method.params.self_positive_mask_prob = 1.0        # always drop the own key once mined ones exist
    out = method({"views": views(6), "targets": {}})
    assert out["num_positives"].item() == SMALL["topk"]


def test_trainer_skips_the_update_while_the_queue_fills(residual_checkpoint):
    from vidssl.train.loop import train_step

    torch.manual_seed(0)
    method = create_method("coclr", create_encoder("r3d_tiny"),
                           {**SMALL, "stage": "cotrain", "other_checkpoint": residual_checkpoint,
                            "until_queue_full": "skip"})
    opt = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    weights = [p.detach().clone() for p in method.encoder.parameters()]
    for step in range(2):
        train_step(method, method, {"views": views(step), "targets": {}}, opt, sched,
                   clip_grad=None, amp_dtype=None, step=step, total=4)
    assert all(torch.equal(a, b) for a, b in zip(weights, method.encoder.parameters()))
    assert int(method.queue_count) == 8
    train_step(method, method, {"views": views(3), "targets": {}}, opt, sched,
               clip_grad=None, amp_dtype=None, step=2, total=4)
    assert any(not torch.equal(a, b) for a, b in zip(weights, method.encoder.parameters()))


def test_cotrain_trains_while_the_queue_fills(residual_checkpoint):
    """The authors' default: before the queue is full the step is plain InfoNCE on what the
    queue holds (the true key is the only positive, no mining) and the weights move."""
    torch.manual_seed(0)
    method = create_method("coclr", create_encoder("r3d_tiny"),
                           {**SMALL, "stage": "cotrain", "other_checkpoint": residual_checkpoint})
    assert method.params.until_queue_full == "train"
    opt = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.1)
    before = [p.detach().clone() for p in method.encoder.parameters()]
    out = method({"views": views(0), "targets": {}})
    assert "skip_update" not in out and out["loss"].item() > 0 and out["num_positives"].item() == 1.0
    opt.zero_grad()
    out["loss"].backward()
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, method.encoder.parameters()))


def _fixed_modalities(method, b: int = 4, seed: int = 0):
    """Replace the augmentation by fixed model-layout inputs: clip c -> (rgb_c, residual_c)."""
    g = torch.Generator().manual_seed(seed)
    fixed = [tuple(torch.randn(b, 3, 4, 32, 32, generator=g) for _ in range(2)) for _ in range(2)]
    calls = iter(fixed * 100)
    method.modalities = lambda clip, paired=None: next(calls)
    return fixed


def _spy_on_mining(monkeypatch):
    import vidssl.methods.coclr as coclr_module

    captured = {}

    def spy_mine(anchor, queue_other, k, exclude=None):
        mined = mine_positives(anchor, queue_other, k, exclude)
        captured.update(anchor=anchor, exclude=exclude, mined=mined)
        return mined

    def spy_loss(logits, positives):
        captured.update(positives=positives)
        return multi_positive_nce(logits, positives)

    monkeypatch.setattr(coclr_module, "mine_positives", spy_mine)
    monkeypatch.setattr(coclr_module, "multi_positive_nce", spy_loss)
    return captured


def _full_queue(method, seed: int = 3):
    g = torch.Generator().manual_seed(seed)
    q = method.params.queue_size
    method.queue_other.copy_(F.normalize(torch.randn(q, method.params.proj_dim, generator=g), dim=1))
    method.queue_count.fill_(q)


@pytest.mark.parametrize("mine_with", ["key", "query"])
def test_mining_uses_the_key_clips_other_modality(residual_checkpoint, monkeypatch, mine_with):
    """The authors mine with the key clip's other-modality embedding (``kf = sampler(f2)``);
    ``mine_with: query`` uses the query clip's."""
    torch.manual_seed(0)
    method = create_method("coclr", create_encoder("r3d_tiny"),
                           {**SMALL, "stage": "cotrain", "other_checkpoint": residual_checkpoint,
                            "mine_with": mine_with})
    fixed = _fixed_modalities(method)
    _full_queue(method)
    captured = _spy_on_mining(monkeypatch)
    method({"views": views(0), "targets": {}})
    with torch.no_grad():
        key_other = method.embed(method.other.encoder, method.other.head, fixed[1][1])
        query_other = method.embed(method.other.encoder, method.other.head, fixed[0][1])
    want, other = (key_other, query_other) if mine_with == "key" else (query_other, key_other)
    torch.testing.assert_close(captured["anchor"], want)
    assert not torch.allclose(captured["anchor"], other, atol=1e-3)
    expect = (want @ method.queue_other.T).topk(SMALL["topk"], dim=1).indices.sort(1).values
    assert captured["mined"].nonzero()[:, 1].view(4, -1).tolist() == expect.tolist()


@pytest.mark.parametrize("mode", ["positive", "ignore", "negative"])
def test_same_video_and_group_entries_are_never_mined(residual_checkpoint, monkeypatch, mode):
    """Queue slot 0 holds row 0's own video and slot 1 its group, both the nearest entries in
    the other modality: they are excluded before top-K (the authors' ``mask_sim[mask_source] =
    -inf``), so row 0 still gets ``topk`` new positives, and a same-video entry is never a
    positive unless ``queue_same_video: positive`` makes it one."""
    torch.manual_seed(0)
    method = create_method("coclr", create_encoder("r3d_tiny"),
                           {**SMALL, "stage": "cotrain", "other_checkpoint": residual_checkpoint,
                            "queue_same_video": mode, "group_positives": True,
                            "self_positive_mask_prob": 0.0})
    fixed = _fixed_modalities(method)
    _full_queue(method)
    with torch.no_grad():
        key_other = method.embed(method.other.encoder, method.other.head, fixed[1][1])
    method.queue_other[0] = key_other[0]
    method.queue_other[1] = key_other[0]
    method.queue_video[0], method.queue_group[1] = 10, 7
    captured = _spy_on_mining(monkeypatch)
    method({"views": views(0), "targets": {}, "index": torch.tensor([10, 11, 12, 13]),
            "group": torch.tensor([7, -1, -1, -1])})
    mined, pos = captured["mined"], captured["positives"]
    assert not mined[0, :2].any() and int(mined[0].sum()) == SMALL["topk"]
    assert pos[0, 1].item() == (mode == "positive") and pos[0, 2].item()   # slot 0 video, slot 1 group
    assert int(pos[0].sum()) == 1 + SMALL["topk"] + 1 + (mode == "positive")


def test_mined_same_label_by_hand():
    mined = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 1]], dtype=torch.bool)
    queue_label = torch.tensor([3, 5, -1, 3])
    # row 0 (label 3): slots 0 (3, same) and 1 (5); row 1 (label 5): slots 1 (5, same), 2 (unknown), 3 (3)
    assert mined_same_label(mined, torch.tensor([3, 5]), queue_label).item() == pytest.approx(2 / 4)
    assert mined_same_label(mined, torch.tensor([-1, 5]), queue_label).item() == pytest.approx(1 / 2)
    assert mined_same_label(mined, torch.tensor([-1, -1]), queue_label).item() == 0.0
    assert mined_same_label(mined, torch.tensor([3, 5]), torch.full((4,), -1)) is None


def test_mined_same_label_is_logged_from_queued_labels_and_never_changes_the_loss(residual_checkpoint,
                                                                                monkeypatch):
    """The labels of enqueued keys travel with the queue; the diagnostic reads the mined slots'
    labels against the query's; the loss is the same with or without labels."""
    params = {**SMALL, "stage": "cotrain", "other_checkpoint": residual_checkpoint, "self_positive_mask_prob": 0.0}
    torch.manual_seed(0)
    method = create_method("coclr", create_encoder("r3d_tiny"), params)
    for step in range(2):                       # 2 x 4 keys with labels 0..3 fill the queue of 8
        out = method({"views": views(step), "targets": {}, "label": torch.arange(4)})
        assert "mined_same_label" not in out     # nothing mined before the queue is full
        method.after_step(step, 10)
    assert method.queue_label.tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    assert "queue_label" not in method.state_dict()     # not saved: checkpoints keep their keys
    captured = _spy_on_mining(monkeypatch)
    label = torch.tensor([0, 0, 1, 2])
    state = torch.get_rng_state()
    out = method({"views": views(5), "targets": {}, "label": label})
    same = captured["mined"] & (label[:, None] == method.queue_label[None])
    assert out["mined_same_label"].item() == pytest.approx(same.sum().item() / (4 * SMALL["topk"]))
    torch.set_rng_state(state)
    unlabelled = method({"views": views(5), "targets": {}})
    assert unlabelled["mined_same_label"].item() == 0.0   # queue labelled, queries not
    torch.testing.assert_close(unlabelled["loss"], out["loss"])
    method.queue_label.fill_(-1)
    assert "mined_same_label" not in method({"views": views(5), "targets": {}, "label": label})


def test_oracle_mining_mines_only_the_querys_label(residual_checkpoint, monkeypatch):
    """The diagnostic upper bound: every mined positive carries the query's label (the label
    queue's), still the other modality's nearest among them; unlabelled data is an error."""
    torch.manual_seed(0)
    method = create_method("coclr", create_encoder("r3d_tiny"),
                           {**SMALL, "stage": "cotrain", "other_checkpoint": residual_checkpoint,
                            "oracle_mining": True, "self_positive_mask_prob": 0.0})
    for step in range(2):
        method({"views": views(step), "targets": {}, "label": torch.tensor([0, 1, 0, 1])})
        method.after_step(step, 10)
    captured = _spy_on_mining(monkeypatch)
    label = torch.tensor([0, 1, 1, 0])
    out = method({"views": views(5), "targets": {}, "label": label})
    mined = captured["mined"]
    assert out["mined_same_label"].item() == 1.0
    assert mined.sum(1).tolist() == [SMALL["topk"]] * 4     # 4 entries of each label: 2 mined each
    assert bool((method.queue_label[None].expand(4, -1)[mined] == label.repeat_interleave(SMALL["topk"])).all())
    with pytest.raises(ConfigError, match="oracle_mining needs labelled data"):
        method({"views": views(6), "targets": {}})


def test_mine_positives_skips_excluded_entries():
    anchor = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=1)
    queue = F.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.5, 0.5], [0.0, 1.0]]), dim=1)
    exclude = torch.tensor([[True, False, False, False], [True, True, True, False]])
    mined = mine_positives(anchor, queue, 2, exclude)
    assert mined[0].nonzero().flatten().tolist() == [1, 2]
    assert mined[1].nonzero().flatten().tolist() == [3]          # only one entry left
    assert not (mined & exclude).any()


def test_self_positive_is_masked_on_most_steps(residual_checkpoint, monkeypatch):
    """main_coclr.py: with probability 0.9 per step, rows that have other positives lose the
    true key from their positive set (one draw for the whole batch)."""
    torch.manual_seed(0)
    method = create_method("coclr", create_encoder("r3d_tiny"),
                           {**SMALL, "stage": "cotrain", "other_checkpoint": residual_checkpoint})
    assert method.params.self_positive_mask_prob == 0.9
    _fixed_modalities(method)
    _full_queue(method)
    captured = _spy_on_mining(monkeypatch)
    kept = []
    for _ in range(40):
        method({"views": views(0), "targets": {}})
        row_keeps = captured["positives"][:, 0]
        assert row_keeps.all() or not row_keeps.any()              # one draw per step
        kept.append(bool(row_keeps.all()))
    assert 0 < sum(kept) < 12                                       # ~10% of 40 steps


def test_shuffle_bn_encodes_sub_batches_keys_permuted():
    """bn_splits 2: the query encoder sees rows [0, 1] and [2, 3]; the key encoder sees two
    sub-batches of a random permutation, and the keys come back in row order."""
    torch.manual_seed(0)
    method = create_method("coclr", create_encoder("r3d_tiny"), SMALL)
    assert method.params.bn_splits == 2
    fixed = _fixed_modalities(method)
    seen = {"q": [], "k": []}
    for name, enc in (("q", method.encoder), ("k", method.encoder_k)):
        fwd = enc.forward_features

        def record(x, _fwd=fwd, _name=name):
            seen[_name].append(x)
            return _fwd(x)
        enc.forward_features = record
    method({"views": views(0), "targets": {}})

    def rows(batches, full):
        return [[int(torch.nonzero((full == r).flatten(1).all(1))[0]) for r in x] for x in batches]

    assert rows(seen["q"], fixed[0][0]) == [[0, 1], [2, 3]]
    key_rows = rows(seen["k"], fixed[1][0])
    assert [len(r) for r in key_rows] == [2, 2] and sorted(sum(key_rows, [])) == [0, 1, 2, 3]
    method.eval()                 # BN on running statistics: the split changes nothing
    x = fixed[1][0]
    whole = method.embed(method.encoder_k, method.head_k, x)
    torch.testing.assert_close(method.embed_split(method.encoder_k, method.head_k, x, torch.tensor([2, 0, 3, 1])),
                               whole, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("params,key", [({"stage": "cotrain"}, "other_checkpoint"),
                                        ({"train_modality": "flow"}, "train_modality"),
                                        ({"topk": 8}, "topk"), ({"momentum": 1.0}, "momentum"),
                                        ({"stage": "moco"}, "stage"), ({"mine_with": "both"}, "mine_with"),
                                        ({"until_queue_full": "wait"}, "until_queue_full"),
                                        ({"bn_splits": 0}, "bn_splits")])
def test_bad_params_are_config_errors(params, key):
    with pytest.raises(ConfigError, match=key):
        create_method("coclr", create_encoder("r3d_tiny"), {**SMALL, **params})


@pytest.mark.parametrize("mode", ["positive", "ignore", "negative"])
def test_queued_keys_of_the_same_video_and_group(mode):
    """Step 1 queues keys of videos 0-3 (groups 3, 7, 8, 9). At step 2, video 0 (now tagged
    group 7) finds its own queued key in slot 0 (treated per ``queue_same_video``) and a key of
    its group in slot 1 (a positive with group_positives)."""
    import vidssl.methods.coclr as coclr_module

    torch.manual_seed(0)
    method = create_method("coclr", create_encoder("r3d_tiny"),
                           {**SMALL, "queue_same_video": mode, "group_positives": True})
    method({"views": views(0), "targets": {}, "index": torch.tensor([0, 1, 2, 3]),
            "group": torch.tensor([3, 7, 8, 9])})
    method.after_step(0, 2)
    assert method.queue_video[:4].tolist() == [0, 1, 2, 3] and method.queue_group[:4].tolist() == [3, 7, 8, 9]
    captured = {}

    def spy(logits, positives):
        captured.update(logits=logits, positives=positives)
        return multi_positive_nce(logits, positives)

    saved, coclr_module.multi_positive_nce = coclr_module.multi_positive_nce, spy
    try:
        method({"views": views(1), "targets": {}, "index": torch.tensor([0, 5, 6, 8]),
                "group": torch.tensor([7, -1, -1, 4])})
    finally:
        coclr_module.multi_positive_nce = saved
    pos, logits = captured["positives"], captured["logits"]   # column 1 + j = queue slot j
    assert pos[0, 2].item()                                     # group 7
    assert pos[0, 1].item() == (mode == "positive")
    assert (logits[0, 1].item() == float("-inf")) == (mode == "ignore")
    assert not pos[1:, 1:].any()                                # other videos, no shared group


def test_init_checkpoint_continues_the_same_network(residual_checkpoint):
    start = torch.load(residual_checkpoint, weights_only=True)["model"]
    method = create_method("coclr", create_encoder("r3d_tiny"),
                           {**SMALL, "train_modality": "residual", "init_checkpoint": residual_checkpoint})
    for name in ("encoder", "head", "encoder_k", "head_k"):
        for k, v in getattr(method, name).state_dict().items():
            torch.testing.assert_close(v, start[f"{name}.{k}"])
    with pytest.raises(Exception, match="does not fit"):
        create_method("coclr", create_encoder("r3d_tiny", widths=(8, 16, 32, 64)),
                      {**SMALL, "init_checkpoint": residual_checkpoint})
