"""Old checkpoints still load: every method's state-dict keys and shapes outside its encoder are
pinned to those written before the heads moved to ``vidssl.models.heads`` (a method's ``model``
entry is loaded strictly on ``--resume``, CoCLR's ``init_checkpoint`` and zero-shot's LSS head).
The momentum / teacher copies (``encoder_k``, ``encoder_t``) mirror the encoder and are left out."""

from __future__ import annotations

import pytest

from vidssl.methods import create_method
from vidssl.models.encoders import create_encoder

TINY_LSS = {"crop_size": 32, "local_crop_size": 32, "clip_model": "vidssl-tiny-clip", "clip_pretrained": None,
            "vocabulary": "synthetic"}
CASES = {
    "cvrl": ("cvrl", {}, {"crop_size": 32, "hidden_dim": 16, "num_hidden_layers": 2}),
    "tclr": ("tclr", {"temporal_dilation_last_stage": True}, {"crop_size": 32, "num_frames": 16, "global_stride": 2}),
    "dpc": ("dpc", {}, {"crop_size": 32}),
    "coclr": ("coclr", {}, {"crop_size": 32, "queue_size": 8, "topk": 2}),
    "supervised": ("supervised", {}, {"num_classes": 5}),
    "vcop": ("vcop", {}, {"crop_size": 32}),
    "o3n": ("o3n", {}, {"crop_size": 32}),
    "lss": ("lss", {}, {**TINY_LSS, "head_hidden_dim": 16}),
    "lss_linear": ("lss", {}, {**TINY_LSS, "head": "linear"}),
}
PINNED = {
    "cvrl": {
        "head.mlp.0.weight": (16, 128), "head.mlp.0.bias": (16,), "head.mlp.1.weight": (16,),
        "head.mlp.1.bias": (16,), "head.mlp.1.running_mean": (16,), "head.mlp.1.running_var": (16,),
        "head.mlp.1.num_batches_tracked": (), "head.mlp.3.weight": (16, 16), "head.mlp.3.bias": (16,),
        "head.mlp.4.weight": (16,), "head.mlp.4.bias": (16,), "head.mlp.4.running_mean": (16,),
        "head.mlp.4.running_var": (16,), "head.mlp.4.num_batches_tracked": (),
        "head.mlp.6.weight": (128, 16), "head.mlp.6.bias": (128,),
    },
    "tclr": {
        "head.fc1.weight": (128, 128), "head.fc1.bias": (128,), "head.bn1.weight": (128,),
        "head.bn1.bias": (128,), "head.bn1.running_mean": (128,), "head.bn1.running_var": (128,),
        "head.bn1.num_batches_tracked": (), "head.fc2.weight": (128, 128), "head.bn2.weight": (128,),
        "head.bn2.bias": (128,), "head.bn2.running_mean": (128,), "head.bn2.running_var": (128,),
        "head.bn2.num_batches_tracked": (),
    },
    "dpc": {
        "agg.gates.weight": (256, 256, 1, 1), "agg.gates.bias": (256,),
        "agg.candidate.weight": (128, 256, 1, 1), "agg.candidate.bias": (128,),
        "head.0.weight": (128, 128, 1, 1), "head.0.bias": (128,), "head.2.weight": (128, 128, 1, 1),
        "head.2.bias": (128,),
    },
    "coclr": {
        "queue": (8, 128), "queue_other": (8, 128), "queue_ptr": (), "queue_count": (),
        "queue_video": (8,), "queue_group": (8,), "head.0.weight": (128, 128), "head.0.bias": (128,),
        "head.2.weight": (128, 128), "head.2.bias": (128,), "head_k.0.weight": (128, 128),
        "head_k.0.bias": (128,), "head_k.2.weight": (128, 128), "head_k.2.bias": (128,),
    },
    "supervised": {
        "head.1.weight": (5, 128), "head.1.bias": (5,),
    },
    "vcop": {
        "head.pair_fc.weight": (512, 256), "head.pair_fc.bias": (512,), "head.fc.weight": (6, 1536),
        "head.fc.bias": (6,),
    },
    "o3n": {
        "head.element.0.weight": (512, 128), "head.element.0.bias": (512,), "head.fc.weight": (6, 512),
        "head.fc.bias": (6,),
    },
    "lss": {
        "concepts": (50, 32), "class_index": (50,), "center": (50,), "head.0.weight": (16, 128),
        "head.0.bias": (16,), "head.2.weight": (16, 16), "head.2.bias": (16,),
        "head.4.weight": (32, 16), "head.4.bias": (32,), "head_t.0.weight": (16, 128),
        "head_t.0.bias": (16,), "head_t.2.weight": (16, 16), "head_t.2.bias": (16,),
        "head_t.4.weight": (32, 16), "head_t.4.bias": (32,),
    },
    "lss_linear": {
        "concepts": (50, 32), "class_index": (50,), "center": (50,), "head.weight": (32, 128),
        "head.bias": (32,), "head_t.weight": (32, 128), "head_t.bias": (32,),
    },
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_state_dict_keys_outside_the_encoder_are_unchanged(case):
    method, encoder_kwargs, params = CASES[case]
    state = create_method(method, create_encoder("r3d_tiny", **encoder_kwargs), params).state_dict()
    got = {k: tuple(v.shape) for k, v in state.items() if not k.startswith(("encoder.", "encoder_k.", "encoder_t."))}
    assert got == PINNED[case]
    assert any(k.startswith("encoder.") for k in state)
