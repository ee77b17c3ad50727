"""Concept spaces and the zero-shot text classifier against open_clip's own utilities (tiny
random-init CLIP), the on-disk cache, offline errors and attribute files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vidssl.errors import ConfigError, VidsslError
from vidssl.eval.zeroshot import ZeroShotSpec, class_weights, topk_accuracy, zeroshot_logits
from vidssl.language.attributes import (VOCABULARIES, load_attributes, resolve_vocabulary,
                                        validate_attributes)
from vidssl.language.clip_models import TINY_CLIP, clip_tokenizer, count_clip_tokens, load_clip
from vidssl.language.concept_space import (VIDEO_TEMPLATES, build_concept_space, concept_prompts,
                                           text_classifier)
from vidssl.language.prompts import humanize

CLASSES = ["ApplyEyeMakeup", "Basketball", "brush_hair", "JumpRope", "YoYo", "Surfing", "PlayingGuitar"]


@pytest.fixture(scope="module")
def tiny_clip():
    return load_clip(TINY_CLIP, None, init_seed=3), clip_tokenizer(TINY_CLIP)


def test_classifier_and_logits_match_open_clip_to_1e5(tiny_clip):
    import open_clip
    from open_clip import SIMPLE_IMAGENET_TEMPLATES, build_zero_shot_classifier

    clip, tok = tiny_clip
    names = [humanize(c) for c in CLASSES]
    # open_clip's shipped templates (callables) and string templates: both against ours
    ref = build_zero_shot_classifier(clip, tok, names, SIMPLE_IMAGENET_TEMPLATES, num_classes_per_batch=3)
    strings = [t("{}") for t in SIMPLE_IMAGENET_TEMPLATES]
    ours = text_classifier(clip, tok, names, strings)
    assert ours.shape == ref.shape == (32, len(CLASSES))
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    ref_video = build_zero_shot_classifier(clip, tok, names, list(VIDEO_TEMPLATES), num_classes_per_batch=None)
    spec = ZeroShotSpec(torch.nn.Identity(), TINY_CLIP, None, 3)
    torch.testing.assert_close(class_weights(CLASSES, spec), ref_video, atol=1e-5, rtol=0)
    # logits: open_clip's zero-shot eval is 100 * normalised image features @ classifier
    images = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        feats = clip.encode_image(images)
        ref_logits = 100.0 * clip.encode_image(images, normalize=True) @ ref
    torch.testing.assert_close(zeroshot_logits(feats, ours), ref_logits, atol=1e-5, rtol=0)
    assert open_clip.__version__  # the utility under comparison is the installed open_clip's


def test_concept_space_modes_and_cache(tmp_path):
    attrs = {c: [f"{humanize(c)} thing", "a place"] for c in CLASSES}
    kw = dict(model=TINY_CLIP, pretrained=None, init_seed=1, cache_dir=tmp_path)
    pooled = build_concept_space(CLASSES, attributes=attrs, mode="pooled", **kw)
    sep = build_concept_space(CLASSES, attributes=attrs, mode="separate", **kw)
    cls = build_concept_space(CLASSES, mode="classes", **kw)
    assert len(pooled) == len(cls) == len(CLASSES) and len(sep) == 3 * len(CLASSES)
    assert sep.class_index.tolist() == list(range(7)) + [i for i in range(7) for _ in range(2)]
    torch.testing.assert_close(sep.vectors[:7], cls.vectors)
    for s in (pooled, sep, cls):
        torch.testing.assert_close(s.vectors.norm(dim=1), torch.ones(len(s)))
    assert not torch.allclose(pooled.vectors, cls.vectors)
    # cached on disk: the second call reads the file (same vectors, no model built)
    files = sorted(tmp_path.glob("*.pt"))
    assert len(files) == 3
    import vidssl.language.clip_models as cm

    def no_model(*a, **k):
        raise AssertionError("the cache should have answered")

    orig = cm.load_clip
    cm.load_clip = no_model
    try:
        again = build_concept_space(CLASSES, attributes=attrs, mode="pooled", **kw)
    finally:
        cm.load_clip = orig
    torch.testing.assert_close(again.vectors, pooled.vectors, atol=0, rtol=0)
    # another seed / prompt is another key
    other = build_concept_space(CLASSES, mode="classes", **{**kw, "init_seed": 2})
    assert not torch.allclose(other.vectors, cls.vectors) and len(list(tmp_path.glob("*.pt"))) == 4
    # a damaged entry is rebuilt
    for f in tmp_path.glob("*.pt"):
        f.write_bytes(b"junk")
    torch.testing.assert_close(build_concept_space(CLASSES, mode="classes", **kw).vectors, cls.vectors)


def test_prompts_and_mode_errors():
    names, index, prompts = concept_prompts(["YoYo"], {"YoYo": ["a spinning toy"]}, ["a video of {}."], "pooled")
    assert prompts == [["a video of yo yo.", "a video of yo yo: a spinning toy."]] and index == [0]
    with pytest.raises(ConfigError, match="needs attributes"):
        concept_prompts(["YoYo"], None, mode="separate")
    with pytest.raises(ConfigError, match="mode"):
        concept_prompts(["YoYo"], None, mode="bogus")


def test_missing_weights_are_one_line_errors(tmp_path):
    with pytest.raises(VidsslError, match="not available") as err:
        load_clip("ViT-B-32", str(tmp_path / "missing.bin"))
    assert "\n" not in str(err.value)
    with pytest.raises(VidsslError, match="unknown open_clip model"):
        load_clip("ViT-Nope", None)
    with pytest.raises(VidsslError, match="no published weights"):
        load_clip(TINY_CLIP, "openai")


def test_topk_accuracy():
    logits = torch.tensor([[0.0, 1.0, 2.0], [3.0, 2.0, 1.0]])
    assert topk_accuracy(logits, [2, 1]) == {"top1": 0.5, "top5": 1.0}


def _write(tmp_path: Path, doc) -> Path:
    p = tmp_path / "a.json"
    p.write_text(json.dumps(doc))
    return p


def test_attribute_files_are_validated(tmp_path):
    good = {"vocabulary": "x", "template_version": "v1", "source": "curated", "note": "",
            "classes": {"A": ["a ball"], "B": ["a bat", "a field"]}}
    doc = load_attributes(_write(tmp_path, good))
    validate_attributes(doc, ["A", "B"])
    with pytest.raises(ConfigError, match="without attributes"):
        validate_attributes(doc, ["A", "B", "C"])
    with pytest.raises(ConfigError, match="unknown class"):
        validate_attributes(doc, ["A"])
    long = {**good, "classes": {"A": ["word " * 80], "B": ["x"]}}
    with pytest.raises(ConfigError, match="77 CLIP tokens"):
        validate_attributes(load_attributes(_write(tmp_path, long)), ["A", "B"])
    with pytest.raises(ConfigError, match="not valid JSON"):
        (tmp_path / "bad.json").write_text("{")
        load_attributes(tmp_path / "bad.json")


@pytest.mark.parametrize("name", [v for v in VOCABULARIES if v != "kinetics600"])
def test_shipped_attribute_files(name):
    doc = load_attributes(name)  # shipping them is part of the feature: a missing one fails
    classes = resolve_vocabulary(name)
    assert doc["template_version"] == "v1" and doc["source"] == "curated"
    validate_attributes(doc, classes, where=name)   # every class 1+ phrases, each <= 77 CLIP tokens
    assert all(count_clip_tokens(p) <= 77 for ps in doc["classes"].values() for p in ps)


def test_cli_encode(tmp_path, capsys):
    from vidssl.cli import main

    out = tmp_path / "space.pt"
    rc = main(["concepts", "encode", "--vocabulary", "synthetic", "--model", TINY_CLIP, "--pretrained", "none",
               "--cache", str(tmp_path / "cache"), "--out", str(out)])
    assert rc == 0 and "50 concepts x 32 dims" in capsys.readouterr().out
    saved = torch.load(out, weights_only=True)
    space = build_concept_space(resolve_vocabulary("synthetic"), attributes=load_attributes("synthetic")["classes"],
                                mode="separate", model=TINY_CLIP, pretrained=None, cache_dir=tmp_path / "cache")
    torch.testing.assert_close(saved["vectors"], space.vectors, atol=0, rtol=0)
    assert main(["concepts", "encode", "--vocabulary", "nope"]) == 2


def test_non_utf8_vocabulary_and_attribute_files_are_one_line_errors(tmp_path):
    from vidssl.errors import ConfigError

    bad = tmp_path / "classes.txt"
    bad.write_bytes(b"Juggle\n\xff\xfeSwim\n")
    with pytest.raises(ConfigError, match="not UTF-8") as err:
        resolve_vocabulary(str(bad))
    assert str(bad) in str(err.value)
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_attributes(bad)
