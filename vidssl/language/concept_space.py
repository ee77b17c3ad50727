"""Concept spaces: CLIP text embeddings of action classes (and their attributes), on disk.

A concept is a class name, optionally joined by its attribute descriptions
(:mod:`vidssl.language.attributes`). Its vector is a **prompt ensemble**: every prompt goes
through open_clip's text tower (``encode_text(normalize=True)``), the per-concept mean of those
unit vectors is L2-normalised again (the same arithmetic as open_clip's
``build_zero_shot_classifier``, tested to 1e-5).

``mode``:

- ``"classes"``: one concept per class, prompts = the class name in every template;
- ``"pooled"`` (default): one concept per class, prompts = templates + one prompt per attribute
  (``ATTRIBUTE_TEMPLATE``), all in one ensemble;
- ``"separate"``: the class concepts of ``"classes"`` followed by one concept per attribute
  (``class_index`` says which class each belongs to).

Results are cached in ``$VIDSSL_CACHE_DIR/concepts`` (default ``~/.cache/vidssl/concepts``),
keyed by the SHA-256 of (model, pretrained tag, init seed for random towers, every prompt), and
written atomically. Offline without the weights: one line saying so (see
:func:`vidssl.language.clip_models.load_clip`).
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F

from vidssl.errors import ConfigError
from vidssl.language.cache import atomic_write_bytes, cache_key, default_cache_dir
from vidssl.language.prompts import humanize

log = logging.getLogger("vidssl")

#: Video prompt templates (vidssl's own set, version v1). ``{}`` is the humanised class name.
VIDEO_TEMPLATES: tuple[str, ...] = (
    "a video of a person {}.",
    "a video of someone {}.",
    "a photo of a person {}.",
    "a clip of a person {}.",
    "a person is {}.",
    "footage of {}.",
    "an example of {}.",
    "{}",
)
ATTRIBUTE_TEMPLATE = "a video of {action}: {attribute}."
MODES: tuple[str, ...] = ("classes", "pooled", "separate")


@dataclass
class ConceptSpace:
    """``vectors``: float32 ``(K, E)`` unit rows; ``names``: K concept names; ``class_index``:
    int64 ``(K,)`` class of each concept; ``class_names``: the vocabulary; ``meta``: provenance."""

    vectors: torch.Tensor
    names: list[str]
    class_index: torch.Tensor
    class_names: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.vectors.shape[0]

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]


def encode_texts(clip, tokenizer, texts: Sequence[str], batch_size: int = 256,
                 device: str | torch.device = "cpu") -> torch.Tensor:
    """``(N, E)`` unit-norm text embeddings of ``texts`` (``clip.encode_text(normalize=True)``)."""
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            tokens = tokenizer(list(texts[i:i + batch_size])).to(device)
            out.append(clip.encode_text(tokens, normalize=True).float())
    return torch.cat(out) if out else torch.empty(0)


def ensemble(embeddings: torch.Tensor) -> torch.Tensor:
    """``(P, E)`` unit vectors of one concept's prompts -> ``(E,)``: mean, L2-normalised."""
    return F.normalize(embeddings.mean(dim=0), dim=-1)


def text_classifier(clip, tokenizer, class_texts: Sequence[str], templates: Sequence[str],
                    device: str | torch.device = "cpu", batch_size: int = 256) -> torch.Tensor:
    """Zero-shot weights ``(E, C)``: for each class text, the ensemble of ``templates``
    (``str.format`` strings with one ``{}``), as open_clip's ``build_zero_shot_classifier``."""
    if not templates or not class_texts:
        raise ConfigError("a text classifier needs at least one class and one template")
    texts = [t.format(c) for c in class_texts for t in templates]
    emb = encode_texts(clip, tokenizer, texts, batch_size, device).view(len(class_texts), len(templates), -1)
    return F.normalize(emb.mean(dim=1), dim=-1).T.contiguous()


def concept_prompts(class_names: Sequence[str], attributes: Optional[dict[str, list[str]]] = None,
                    templates: Sequence[str] = VIDEO_TEMPLATES, mode: str = "pooled",
                    attribute_template: str = ATTRIBUTE_TEMPLATE) -> tuple[list[str], list[int], list[list[str]]]:
    """``(concept names, class index per concept, prompts per concept)`` for ``mode``."""
    if mode not in MODES:
        raise ConfigError(f"concept mode must be one of {MODES}, got {mode!r}")
    if mode != "classes" and attributes is None:
        raise ConfigError(f"concept mode {mode!r} needs attributes (an attribute file); use mode 'classes' without")
    names, index, prompts = [], [], []
    for i, c in enumerate(class_names):
        action = humanize(c)
        ps = [t.format(action) for t in templates]
        attrs = list((attributes or {}).get(c, []))
        if mode == "pooled":
            ps += [attribute_template.format(action=action, attribute=a) for a in attrs]
        names.append(c)
        index.append(i)
        prompts.append(ps)
    if mode == "separate":
        for i, c in enumerate(class_names):
            for a in (attributes or {}).get(c, []):
                names.append(f"{c}/{a}")
                index.append(i)
                prompts.append([attribute_template.format(action=humanize(c), attribute=a)])
    return names, index, prompts


def _weights_id(pretrained: Optional[str], init_seed: int) -> Any:
    if not pretrained:
        return {"random_init_seed": int(init_seed)}
    if os.path.isfile(pretrained):
        st = os.stat(pretrained)
        return {"file": os.path.abspath(pretrained), "size": st.st_size, "mtime": int(st.st_mtime)}
    return pretrained


def build_concept_space(class_names: Sequence[str], *, attributes: Optional[dict[str, list[str]]] = None,
                        mode: str = "pooled", templates: Sequence[str] = VIDEO_TEMPLATES,
                        attribute_template: str = ATTRIBUTE_TEMPLATE, model: str = "ViT-B-16",
                        pretrained: Optional[str] = "openai", init_seed: int = 0,
                        cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
                        device: str | torch.device = "cpu") -> ConceptSpace:
    """Encode the concepts of ``class_names`` with open_clip ``model`` / ``pretrained`` (see module).

    ``pretrained=None`` builds a random-init text tower from ``init_seed`` (tests and the
    synthetic dataset only: its vectors carry no language knowledge).
    """
    if not class_names:
        raise ConfigError("a concept space needs at least one class")
    names, index, prompts = concept_prompts(class_names, attributes, templates, mode, attribute_template)
    key = cache_key(model=model, weights=_weights_id(pretrained, init_seed), prompts=prompts, names=names)
    folder = default_cache_dir("concepts") if cache_dir is None else os.fspath(cache_dir)
    path = os.path.join(folder, f"{key}.pt")
    meta = {"model": model, "pretrained": pretrained or None, "init_seed": int(init_seed), "mode": mode,
            "num_prompts": sum(len(p) for p in prompts), "key": key}
    if use_cache and os.path.isfile(path):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            return ConceptSpace(state["vectors"], list(state["names"]), state["class_index"], list(class_names),
                                {**meta, "cache": path})
        except Exception as err:  # noqa: BLE001 - a damaged cache entry is rebuilt
            log.warning("concept cache %s unreadable (%s); rebuilding", path, " ".join(str(err).split())[:80])
    from vidssl.language.clip_models import clip_tokenizer, load_clip

    clip = load_clip(model, pretrained, init_seed=init_seed, device=device)
    tokenizer = clip_tokenizer(model)
    flat = [p for ps in prompts for p in ps]
    emb = encode_texts(clip, tokenizer, flat, device=device).cpu()
    vectors, start = [], 0
    for ps in prompts:
        vectors.append(ensemble(emb[start:start + len(ps)]))
        start += len(ps)
    space = ConceptSpace(torch.stack(vectors), names, torch.tensor(index, dtype=torch.long), list(class_names), meta)
    if use_cache:
        buf = io.BytesIO()
        torch.save({"vectors": space.vectors, "names": names, "class_index": space.class_index}, buf)
        atomic_write_bytes(path, buf.getvalue())
        space.meta["cache"] = path
    return space


def vocabulary_concept_space(vocabulary: str, attributes: Optional[str] = "curated", *, mode: str = "separate",
                             model: str = "ViT-B-16", pretrained: Optional[str] = "openai", init_seed: int = 0,
                             cache_dir: str | os.PathLike | None = None,
                             device: str | torch.device = "cpu") -> ConceptSpace:
    """The concept space of a vocabulary (a shipped name, ``"synthetic"`` or a class-list file)
    and its attributes (``"curated"``: the vocabulary's shipped file; a path; ``None``), as LSS's
    parameters describe it; the attributes are checked against the classes."""
    from vidssl.language.attributes import VOCABULARIES, load_attributes, resolve_vocabulary, validate_attributes

    classes = resolve_vocabulary(vocabulary)
    attrs = None
    if attributes and mode != "classes":
        if attributes == "curated" and vocabulary not in VOCABULARIES:
            raise ConfigError(f"method.params.attributes: 'curated' needs a shipped vocabulary {VOCABULARIES}; "
                              f"for {vocabulary!r} pass an attribute file (vidssl concepts generate)")
        source = vocabulary if attributes == "curated" else attributes
        doc = load_attributes(source)
        validate_attributes(doc, classes, where=f"attributes of {source}")
        attrs = doc["classes"]
    return build_concept_space(classes, attributes=attrs, mode=mode, model=model, pretrained=pretrained,
                               init_seed=init_seed, cache_dir=cache_dir, device=device)
