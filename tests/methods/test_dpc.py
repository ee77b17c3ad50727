"""DPC: dense loss against a hand-written reference and on a case with a known match, ConvGRU
against a per-position loop, the autoregressive rollout, the curriculum and CPU training steps."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vidssl.data.samplers import DPCBlockSampler
from vidssl.errors import ConfigError
from vidssl.losses.dpc import DenseContrastiveLoss
from vidssl.methods import create_method
from vidssl.methods.dpc import DPCParams
from vidssl.models.encoders import create_encoder
from vidssl.models.heads import ConvGRU

SMALL = dict(num_blocks=5, block_len=4, frame_step=1, crop_size=32, pred_steps=2)


def reference_dense_loss(pred, target, cosine=False, tau=1.0):
    """The loss written as loops: every (video, step, position) against every candidate."""
    n, k, d, h, w = pred.shape
    rows, labels = [], []
    cands = [(j, m, y, x) for j in range(n) for m in range(k) for y in range(h) for x in range(w)]
    for i in range(n):
        for s in range(k):
            for y in range(h):
                for x in range(w):
                    q = pred[i, s, :, y, x]
                    scores = []
                    for (j, m, yy, xx) in cands:
                        t = target[j, m, :, yy, xx]
                        scores.append(F.cosine_similarity(q, t, dim=0) / tau if cosine else q @ t)
                    rows.append(torch.stack(scores))
                    labels.append(cands.index((i, s, y, x)))
    return F.cross_entropy(torch.stack(rows), torch.tensor(labels))


@pytest.mark.parametrize("cosine", [False, True])
def test_dense_loss_matches_loops(cosine):
    torch.manual_seed(0)
    pred, target = torch.randn(2, 3, 4, 2, 2), torch.randn(2, 3, 4, 2, 2)
    loss = DenseContrastiveLoss("cosine" if cosine else "dot", temperature=0.5)(pred, target)
    torch.testing.assert_close(loss, reference_dense_loss(pred, target, cosine, 0.5), rtol=1e-5, atol=1e-5)


def test_dense_loss_known_match_and_stats():
    """One-hot features: prediction = its own target gives accuracy 1 and a loss near 0; a
    prediction copied from another step of the same video fails only the temporal check."""
    n, k, h, w = 2, 3, 2, 2
    d = n * k * h * w
    target = torch.eye(d).view(n, k, h, w, d).permute(0, 1, 4, 2, 3) * 20
    crit = DenseContrastiveLoss()
    loss, stats = crit(target.clone(), target, return_stats=True)
    assert loss.item() < 1e-6 and stats["acc"].item() == 1.0
    assert stats["acc_easy"].item() == 1.0 and stats["acc_temporal"].item() == 1.0
    shifted = target.roll(1, dims=1) + 0.5 * target      # closer to step s-1 than to step s
    loss2, stats2 = crit(shifted, target, return_stats=True)
    assert stats2["acc"].item() == 0.0 and stats2["acc_temporal"].item() == 0.0
    assert stats2["acc_easy"].item() == 1.0              # still never another video
    assert loss2.item() > 5


def test_dense_loss_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(N, K, D, H, W\)"):
        DenseContrastiveLoss()(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="similarity"):
        DenseContrastiveLoss("l2")


def test_convgru_kernel1_is_a_per_position_gru():
    torch.manual_seed(0)
    gru = ConvGRU(3, 4, kernel_size=1).eval()
    x = torch.randn(2, 5, 3, 2, 2)
    out, last = gru(x)
    wg, bg = gru.gates.weight[:, :, 0, 0], gru.gates.bias
    wc, bc = gru.candidate.weight[:, :, 0, 0], gru.candidate.bias
    for b in range(2):
        for y in range(2):
            for xx in range(2):
                hidden = torch.zeros(4)
                for t in range(5):
                    v = x[b, t, :, y, xx]
                    r, u = torch.sigmoid(wg @ torch.cat([v, hidden]) + bg).chunk(2)
                    c = torch.tanh(wc @ torch.cat([v, r * hidden]) + bc)
                    hidden = (1 - u) * hidden + u * c
                    torch.testing.assert_close(out[b, t, :, y, xx], hidden)
                torch.testing.assert_close(last[b, :, y, xx], hidden)


def test_two_cpu_steps_and_outputs():
    torch.manual_seed(0)
    method = create_method("dpc", create_encoder("r3d_tiny"), SMALL)
    assert isinstance(method.sampler, DPCBlockSampler) and method.sampler.view_lengths == (20,)
    method.train()
    opt = torch.optim.SGD(method.parameters(), lr=0.01, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    before = [p.detach().clone() for p in method.encoder.parameters()]
    for _ in range(2):
        out = method({"views": [torch.randint(0, 256, (3, 20, 3, 40, 40), dtype=torch.uint8, generator=g)],
                      "targets": {}})
        assert {"loss", "acc", "acc_easy", "acc_temporal", "pred_steps"} <= set(out)
        assert torch.isfinite(out["loss"]) and out["pred_steps"].item() == 2
        opt.zero_grad()
        out["loss"].backward()
        for part in (method.encoder, method.agg, method.head):
            assert all(p.grad is not None for p in part.parameters())
        opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, method.encoder.parameters()))
    with pytest.raises(ValueError, match="one view of 5 x 4 frames"):
        method({"views": [torch.zeros(3, 16, 3, 40, 40, dtype=torch.uint8)], "targets": {}})


def test_rollout_feeds_predictions_back():
    """The k-th prediction is the predictor applied to the GRU state after feeding ReLU of the
    previous prediction; checked by recomputing the rollout by hand."""
    torch.manual_seed(0)
    method = create_method("dpc", create_encoder("r3d_tiny"), {**SMALL, "pred_steps": 3, "gru_dropout": 0.0})
    method.eval()
    z = torch.randn(2, 5, method.encoder.num_features, 2, 2)
    method.block_features = lambda seq: z
    seen = {}

    class Spy(DenseContrastiveLoss):
        def forward(self, pred, target, return_stats=False):
            seen.update(pred=pred, target=target)
            return super().forward(pred, target, return_stats)

    method.criterion = Spy()
    method({"views": [torch.zeros(2, 20, 3, 8, 8, dtype=torch.uint8)], "targets": {}})
    _, h = method.agg(torch.relu(z[:, :2]))
    p1 = method.head(h)
    _, h = method.agg(torch.relu(p1).unsqueeze(1), h)
    p2 = method.head(h)
    _, h = method.agg(torch.relu(p2).unsqueeze(1), h)
    p3 = method.head(h)
    torch.testing.assert_close(seen["pred"], torch.stack([p1, p2, p3], 1))
    torch.testing.assert_close(seen["target"], z[:, 2:])


def test_curriculum_predicts_further_from_less_context():
    p = DPCParams(num_blocks=8, pred_steps=3, curriculum=[[0.5, 4], [0.8, 5]])
    assert [p.pred_steps_at(f) for f in (0.0, 0.49, 0.5, 0.79, 0.8, 1.0)] == [3, 3, 4, 4, 5, 5]
    method = create_method("dpc", create_encoder("r3d_tiny"), {**SMALL, "curriculum": [[0.5, 3]]})
    method.set_step(4, 10)
    assert method.pred_steps == 2
    method.set_step(5, 10)
    assert method.pred_steps == 3
    method.set_step(0, 10)                 # e.g. a fresh run: back to the first stage
    assert method.pred_steps == 2


@pytest.mark.parametrize("params,key", [({"pred_steps": 8}, "pred_steps"), ({"curriculum": [[0.5, 9]]}, "pred_steps"),
                                        ({"curriculum": [[1.5, 2]]}, "curriculum"), ({"similarity": "l1"}, "similarity"),
                                        ({"gru_kernel": 2}, "gru_kernel"), ({"block_len": 0}, "dpc"),
                                        ({"targets": "post_relu"}, "targets")])
def test_bad_params_are_config_errors(params, key):
    with pytest.raises(ConfigError, match=key):
        DPCParams(**params)


# ---------------------------------------------------------------- targets: pre-activation (issue 21)


def test_two_cpu_steps_with_dpcs_own_backbone():
    """r2d3d_tiny (DPC's 2D3D-ResNet, tiny): the targets are its pre-activation output, the GRU
    reads their ReLU, and two SGD steps train it."""
    torch.manual_seed(0)
    params = {**SMALL, "crop_size": 64}                             # 2 x 2 positions at stride 32
    method = create_method("dpc", create_encoder("r2d3d_tiny"), params)
    assert method.target_kind == "pre_activation"
    method.train()
    opt = torch.optim.SGD(method.parameters(), lr=0.01, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    before = [p.detach().clone() for p in method.encoder.parameters()]
    for _ in range(2):
        seq = torch.randint(0, 256, (3, 20, 3, 72, 72), dtype=torch.uint8, generator=g)
        out = method({"views": [seq], "targets": {}})
        assert torch.isfinite(out["loss"]) and out["pred_steps"].item() == 2
        opt.zero_grad()
        out["loss"].backward()
        missing = [n for n, p in method.named_parameters() if p.grad is None]
        assert not missing, missing[:3]
        opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, method.encoder.parameters()))
    with torch.no_grad():
        z = method.eval().block_features(seq)
    assert z.shape == (3, 5, 64, 2, 2) and (z < 0).any()                # pre-activation: signed


@pytest.mark.parametrize("encoder", ["r3d_tiny", "r2d3d_tiny"])
def test_targets_are_the_map_before_the_final_relu(encoder):
    torch.manual_seed(0)
    seq = torch.randint(0, 256, (2, 20, 3, 40, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    zs = {}
    for targets in ("pre_activation", "feature_map"):
        torch.manual_seed(0)
        method = create_method("dpc", create_encoder(encoder, use_final_relu=True) if encoder == "r2d3d_tiny"
                               else create_encoder(encoder), {**SMALL, "targets": targets}).eval()
        torch.manual_seed(5)                                           # the same augmentation draws
        with torch.no_grad():
            zs[targets] = method.block_features(seq)
    assert (zs["pre_activation"] < 0).any() and (zs["feature_map"] >= 0).all()
    # ReLU and the temporal mean do not commute, so compare on a one-slice map: here T' = 1
    torch.testing.assert_close(zs["pre_activation"].relu(), zs["feature_map"])


def test_encoders_without_a_pre_activation_map_keep_their_map():
    method = create_method("dpc", create_encoder("s3d_tiny"), SMALL)
    assert method.target_kind == "feature_map"


def test_old_post_relu_targets_keep_their_pinned_losses():
    """``targets: feature_map`` is vidssl's DPC before issue 21: the same three losses as then."""
    from tests.methods.test_methods import DPC_SMALL, check_pinned, pinned_run

    check_pinned("dpc_feature_map", pinned_run("dpc", {**DPC_SMALL, "targets": "feature_map"}))
