"""``vidssl concepts``: generate attribute prompts with an LLM, encode concept spaces.

    vidssl concepts generate --vocabulary ucf101 --backend openai --model gpt-4o-mini --out ucf101_attrs.json
    vidssl concepts generate --vocabulary hmdb51 --backend transformers --model Qwen/Qwen2.5-1.5B-Instruct
    vidssl concepts encode --vocabulary ucf101 --attributes curated --model ViT-B-16 --pretrained openai

Thin layers over :func:`vidssl.language.generate.generate_attributes` and
:func:`vidssl.language.concept_space.build_concept_space`.
"""

from __future__ import annotations

import argparse
import os
import sys

from vidssl.errors import VidsslError

__all__ = ["add_concepts_parser"]


def add_concepts_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``concepts generate`` and ``concepts encode`` to a ``vidssl`` sub-parser set."""
    from vidssl.language.concept_space import MODES
    from vidssl.language.llm import API_KEY_VARS, BACKENDS, BASE_URL_VARS

    p = subparsers.add_parser("concepts", help="LLM attribute prompts and CLIP concept spaces",
                              description="Generate per-class attribute prompts with an LLM, or "
                                          "encode a concept space with a CLIP text tower.")
    sub = p.add_subparsers(dest="concepts", metavar="ACTION", required=True)
    g = sub.add_parser("generate", help="ask an LLM for visual attributes of every class",
                       description=f"Template v1 (objects, body motion, scene); answers cached by "
                                   f"backend, model, template, decoding and class. The openai backend "
                                   f"reads {BASE_URL_VARS[0]} (or {BASE_URL_VARS[1]}) and "
                                   f"{API_KEY_VARS[0]} (or {API_KEY_VARS[1]}) from the environment.")
    g.add_argument("--vocabulary", required=True,
                   help="ucf101 | hmdb51 | kinetics400 | kinetics600 | synthetic | a class-list file")
    g.add_argument("--backend", required=True, choices=list(BACKENDS))
    g.add_argument("--model", required=True, help="model id (hub id / local folder, or the server's name)")
    g.add_argument("--out", help="attribute file to write (default: attributes_<vocabulary>.json)")
    g.add_argument("--classes", nargs="+", metavar="NAME", help="only these classes (default: all)")
    g.add_argument("--cache", help="prompt cache folder (default: $VIDSSL_CACHE_DIR/prompts)")
    g.add_argument("--retries", type=int, default=2, help="extra attempts per class (%(default)s)")
    g.add_argument("--max-tokens", type=int, default=256, help="answer budget (%(default)s)")
    g.add_argument("--timeout", type=float, default=60.0, help="openai: seconds per request (%(default)s)")
    g.add_argument("--device", default="cpu", help="transformers: device (%(default)s)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=cmd_generate)
    e = sub.add_parser("encode", help="encode a concept space (cached) and print its summary",
                       description="CLIP text embeddings of the classes (and attributes), prompt-"
                                   "ensembled and L2-normalised, cached on disk.")
    e.add_argument("--vocabulary", required=True, help="as for generate")
    e.add_argument("--attributes", default="curated", help="curated | a file | none (%(default)s)")
    e.add_argument("--mode", default="separate", choices=list(MODES), help="(%(default)s)")
    e.add_argument("--model", default="ViT-B-16", help="open_clip model (%(default)s)")
    e.add_argument("--pretrained", default="openai", help="open_clip tag or file; 'none' = random init")
    e.add_argument("--cache", help="concept cache folder (default: $VIDSSL_CACHE_DIR/concepts)")
    e.add_argument("--out", help="also save {vectors, names, class_index} to this .pt file")
    e.set_defaults(func=cmd_encode)
    return p


def _console():
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 120)


def cmd_generate(args: argparse.Namespace) -> int:
    from rich.table import Table

    from vidssl.language.attributes import resolve_vocabulary
    from vidssl.language.cache import PromptCache
    from vidssl.language.generate import generate_attributes, write_attribute_file
    from vidssl.language.llm import create_backend

    classes = resolve_vocabulary(args.vocabulary)
    if args.classes:
        unknown = [c for c in args.classes if c not in classes]
        if unknown:
            raise VidsslError(f"--classes: {unknown[:3]} not in vocabulary {args.vocabulary}")
        classes = list(args.classes)
    kw = ({"max_tokens": args.max_tokens, "timeout": args.timeout} if args.backend == "openai"
          else {"max_new_tokens": args.max_tokens, "device": args.device})
    backend = create_backend(args.backend, args.model, **kw)
    vocab = os.path.splitext(os.path.basename(args.vocabulary))[0]
    result = generate_attributes(classes, backend, vocabulary=vocab, cache=PromptCache(args.cache),
                                 retries=args.retries, progress=not args.quiet)
    out = args.out or f"attributes_{vocab}.json"
    write_attribute_file(result.doc, out)
    console = _console()
    console.print(f"{len(result.doc['classes'])}/{len(classes)} classes ({result.cached} from cache, "
                  f"{result.generated} generated in {result.attempts} requests); wrote {out}", markup=False)
    if result.failures:
        table = Table(title="classes without a usable answer")
        table.add_column("class")
        table.add_column("last reason")
        for name, reason in result.failures.items():
            table.add_row(name, reason)
        console.print(table)
        return 1
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    import torch

    from vidssl.language.attributes import load_attributes, resolve_vocabulary
    from vidssl.language.concept_space import build_concept_space

    classes = resolve_vocabulary(args.vocabulary)
    attrs = None
    if args.attributes.lower() != "none" and args.mode != "classes":
        attrs = load_attributes(args.vocabulary if args.attributes == "curated" else args.attributes)["classes"]
    pretrained = None if args.pretrained.lower() in ("none", "") else args.pretrained
    space = build_concept_space(classes, attributes=attrs, mode=args.mode, model=args.model,
                                pretrained=pretrained, cache_dir=args.cache)
    if args.out:
        from vidssl.language.cache import atomic_write_bytes
        import io

        buf = io.BytesIO()
        torch.save({"vectors": space.vectors, "names": space.names, "class_index": space.class_index,
                    "meta": {k: v for k, v in space.meta.items() if k != "cache"}}, buf)
        atomic_write_bytes(args.out, buf.getvalue())
    _console().print(f"{len(space)} concepts x {space.dim} dims ({len(classes)} classes, mode {args.mode}, "
                     f"{space.meta['num_prompts']} prompts, {args.model}/{pretrained or 'random-init'}); "
                     f"cache {space.meta.get('cache')}" + (f"; wrote {args.out}" if args.out else ""),
                     markup=False)
    return 0
