"""LSS: two CPU steps with a tiny encoder and a tiny random-init CLIP text tower, the teacher's
EMA and momentum schedule, losses against hand-written references, any-encoder heads."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from vidssl.errors import ConfigError
from vidssl.losses.lss import class_attribute_alignment, concept_distillation, entropy_alignment
from vidssl.methods import create_method, method_params
from vidssl.models.encoders import create_encoder

LSS_SMALL = dict(crop_size=32, global_frames=4, global_stride=2, num_local=2, local_frames=2, local_stride=2,
                 local_crop_size=24, clip_model="vidssl-tiny-clip", clip_pretrained=None, vocabulary="synthetic",
                 attributes=None, concept_mode="separate", head_hidden_dim=32)


@pytest.fixture(scope="module", autouse=True)
def _attribute_file(tmp_path_factory):
    """A small attribute file for the synthetic vocabulary, written here (not the shipped one)."""
    from vidssl.data.synthetic.classes import SYNTHETIC_CLASSES

    path = tmp_path_factory.mktemp("attrs") / "synthetic_test.json"
    doc = {"vocabulary": "synthetic", "template_version": "v1", "source": "test", "note": "",
           "classes": {c: [f"a {c.lower()} object", "a moving shape", f"{c.lower()} motion", "a plain scene"]
                       for c in SYNTHETIC_CLASSES}}
    path.write_text(json.dumps(doc))
    LSS_SMALL["attributes"] = str(path)
    yield
    LSS_SMALL["attributes"] = None


def views(method, batch: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return {"views": [torch.randint(0, 256, (batch, t, 3, 40, 40), dtype=torch.uint8, generator=g)
                      for t in method.sampler.view_lengths], "targets": {}}


def test_two_cpu_steps_student_learns_teacher_follows():
    torch.manual_seed(0)
    m = create_method("lss", create_encoder("r3d_tiny"), LSS_SMALL)
    assert m.concepts.shape == (50, 32) and m.num_classes == 10          # 10 classes + 40 attributes
    assert m.sampler.view_names == ("global0", "global1", "local0", "local1")
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.1)
    t0 = {k: v.clone() for k, v in m.encoder_t.state_dict().items()}
    concepts0 = m.concepts.clone()
    for step in range(2):
        m.set_step(step, 2)
        out = m(views(m, seed=step))
        assert {"loss", "loss_distill", "loss_align", "teacher_entropy", "agreement", "momentum"} <= set(out)
        assert all(torch.isfinite(v) for v in out.values())
        opt.zero_grad()
        out["loss"].backward()
        assert all(p.grad is not None for p in m.encoder.parameters())
        assert all(p.grad is not None for p in m.head.parameters())
        assert not any(p.requires_grad for p in m.encoder_t.parameters())
        opt.step()
        m.after_step(step, 2)
    moved = [k for k, v in m.encoder_t.state_dict().items() if v.is_floating_point() and not torch.equal(v, t0[k])]
    assert moved, "the EMA teacher did not move"
    assert torch.equal(m.concepts, concepts0) and m.center.abs().sum() > 0
    assert out["loss"].item() == pytest.approx(out["loss_distill"].item() + out["loss_align"].item(), rel=1e-5)


def test_ema_and_momentum_schedule():
    torch.manual_seed(0)
    m = create_method("lss", create_encoder("r3d_tiny"), {**LSS_SMALL, "concept_mode": "classes",
                                                          "alignment": "entropy", "momentum": 0.9})
    m.set_step(0, 10)
    assert m._momentum == pytest.approx(0.9)
    m.set_step(5, 10)
    assert m._momentum == pytest.approx(0.95)
    m.set_step(10, 10)
    assert m._momentum == pytest.approx(1.0)
    m.set_step(0, 10)
    with torch.no_grad():
        for p in m.encoder.parameters():
            p.add_(1.0)
    before = [p.clone() for p in m.encoder_t.parameters()]
    m.after_step(0, 10)
    for b, s, t in zip(before, m.encoder.parameters(), m.encoder_t.parameters()):
        torch.testing.assert_close(t, 0.9 * b + 0.1 * s)


def test_clip_temporal_gets_an_identity_head_and_other_encoders_an_mlp():
    torch.manual_seed(0)
    m = create_method("lss", create_encoder("clip_temporal_tiny"), {**LSS_SMALL, "local_crop_size": None})
    assert isinstance(m.head, torch.nn.Identity)
    out = m(views(m, batch=2))
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
    m2 = create_method("lss", create_encoder("s3d_tiny"), {**LSS_SMALL, "head": "linear"})
    assert isinstance(m2.head, torch.nn.Linear) and m2.head.out_features == 32
    with pytest.raises(ConfigError, match="identity"):
        create_method("lss", create_encoder("r3d_tiny"), {**LSS_SMALL, "head": "identity"})
    # equal widths are not the same space (R3D-18's 512 = ViT-B's text width): still an MLP
    from vidssl.models.heads import concept_head

    assert isinstance(concept_head("auto", 512, 512, 64, 2), torch.nn.Sequential)
    assert isinstance(concept_head("auto", 512, 512, same_space=True), torch.nn.Identity)


def test_the_teacher_is_what_checkpoints_export():
    """export: teacher (default, DINO / SVT): the encoder object the trainer built and saves is
    the EMA teacher, the student a copy; export: student swaps them."""
    enc = create_encoder("r3d_tiny")
    m = create_method("lss", enc, LSS_SMALL)
    assert m.params.export == "teacher"
    assert m.encoder_t is enc and m.exported_encoder is enc and m.encoder is not enc
    assert not any(p.requires_grad for p in enc.parameters())
    assert all(p.requires_grad for p in m.encoder.parameters())
    enc2 = create_encoder("r3d_tiny")
    s = create_method("lss", enc2, {**LSS_SMALL, "export": "student"})
    assert s.encoder is enc2 and s.exported_encoder is enc2 and s.encoder_t is not enc2
    assert all(p.requires_grad for p in enc2.parameters())
    # after a step the exported (teacher) weights are the EMA, not the student
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.5)
    m.set_step(0, 10)
    m(views(m))["loss"].backward()
    opt.step()
    m.after_step(0, 10)
    moved = [(a, b) for a, b in zip(m.encoder.parameters(), enc.parameters()) if not torch.equal(a, b)]
    assert moved


def test_teacher_temperature_warm_up():
    """DINO's linear warm-up from warmup_teacher_temp to teacher_temp over the first
    warmup_teacher_temp_fraction of the steps; SVT's defaults (0.04 -> 0.04, 0) keep it constant."""
    m = create_method("lss", create_encoder("r3d_tiny"), LSS_SMALL)
    assert (m.params.warmup_teacher_temp, m.params.warmup_teacher_temp_fraction) == (0.04, 0.0)
    assert [m.teacher_temp_at(s, 100) for s in (0, 50, 99)] == [0.04] * 3
    w = create_method("lss", create_encoder("r3d_tiny"),
                      {**LSS_SMALL, "teacher_temp": 0.07, "warmup_teacher_temp": 0.04,
                       "warmup_teacher_temp_fraction": 0.3})
    got = [w.teacher_temp_at(s, 100) for s in (0, 15, 29, 30, 99)]
    assert got == pytest.approx([0.04, 0.055, 0.04 + 0.03 * 29 / 30, 0.07, 0.07])
    w.set_step(15, 100)
    assert w(views(w))["teacher_temp"].item() == pytest.approx(0.055)
    with pytest.raises(ConfigError, match="warmup_teacher_temp_fraction"):
        method_params("lss", {**LSS_SMALL, "warmup_teacher_temp_fraction": 1.5})
    with pytest.raises(ConfigError, match="export"):
        method_params("lss", {**LSS_SMALL, "export": "both"})


def test_params_validation():
    for bad, match in [({"alignment": "bogus"}, "alignment"), ({"concept_mode": "pooled"}, "class_attribute"),
                       ({"concept_mode": "separate", "attributes": None}, "attributes"),
                       ({"teacher_temp": 0.0}, "teacher_temp"), ({"num_global": 1, "num_local": 0}, "two views"),
                       ({"bogus_key": 1}, "bogus_key")]:
        with pytest.raises(ConfigError, match=match):
            method_params("lss", {**LSS_SMALL, **bad})


def _ce(p, logp):
    return -(p * logp).sum(-1).mean()


def test_concept_distillation_reference():
    torch.manual_seed(0)
    t = [torch.randn(3, 5) for _ in range(2)]
    s = [torch.randn(3, 5) for _ in range(4)]
    center = torch.randn(5) * 0.1
    got = concept_distillation(t, s, center, 0.04, 0.1)
    terms = []
    for i in range(2):
        p = F.softmax((t[i] - center) / 0.04, dim=-1)
        for j in range(4):
            if j != i:
                terms.append(_ce(p, F.log_softmax(s[j] / 0.1, dim=-1)))
    torch.testing.assert_close(got, sum(terms) / len(terms))


def test_alignment_references():
    torch.manual_seed(0)
    # 2 classes, attributes: 3 for class 0, 1 for class 1
    class_index = torch.tensor([0, 1, 0, 0, 0, 1])
    s, t = torch.randn(4, 6), torch.randn(4, 6)
    center = torch.zeros(6)
    got = class_attribute_alignment(s, t, class_index, 2, center, 0.5, 1.0)
    p_t = F.softmax(t[:, :2] / 0.5, dim=-1)
    a = F.softmax(s[:, 2:] / 1.0, dim=-1)
    pooled = torch.stack([a[:, :3].sum(1), a[:, 3]], dim=1)
    torch.testing.assert_close(got, _ce(p_t, pooled.log()))
    e = entropy_alignment(s, 0.1)
    p = F.softmax(s / 0.1, dim=-1)
    h = -(p * p.log()).sum(-1).mean()
    mbar = p.mean(0)
    torch.testing.assert_close(e, h + (mbar * mbar.log()).sum())
    # a collapsed batch (every sample the same sharp distribution) is penalised, a spread one is not
    collapsed = torch.zeros(6, 6)
    collapsed[:, 0] = 10
    spread = torch.eye(6) * 10
    assert entropy_alignment(collapsed) > entropy_alignment(spread) + math.log(6) - 0.1


def test_concept_space_errors_are_one_line(tmp_path):
    vocab = tmp_path / "classes.txt"
    vocab.write_text("Juggle\nSwim\n")
    with pytest.raises(ConfigError, match="shipped vocabulary") as err:
        create_method("lss", create_encoder("r3d_tiny"), {**LSS_SMALL, "vocabulary": str(vocab),
                                                          "attributes": "curated"})
    assert "\n" not in str(err.value)
    attrs = tmp_path / "a.json"
    attrs.write_text('{"classes": {"Juggle": ["three balls"]}}')
    with pytest.raises(ConfigError, match="without attributes"):
        create_method("lss", create_encoder("r3d_tiny"), {**LSS_SMALL, "vocabulary": str(vocab),
                                                          "attributes": str(attrs)})
    # a custom vocabulary with its own attribute file works
    attrs.write_text('{"classes": {"Juggle": ["three balls"], "Swim": ["a pool"]}}')
    m = create_method("lss", create_encoder("r3d_tiny"), {**LSS_SMALL, "vocabulary": str(vocab),
                                                          "attributes": str(attrs)})
    assert m.concept_names == ["Juggle", "Swim", "Juggle/three balls", "Swim/a pool"]
