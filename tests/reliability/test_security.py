"""Security basics: nothing vidssl loads can run code, and secrets never leave the environment.

The source scan is static (AST): it fails the moment someone adds ``torch.load`` without
``weights_only=True``, ``np.load(allow_pickle=True)``, ``pickle``, ``yaml.load``/``unsafe_load``,
``eval``/``exec``, or a dynamic import outside the registry helper."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest

from vidssl.config import load_config
from vidssl.errors import ConfigError
from vidssl.security import RedactingFilter, redact
from vidssl.train.config import PretrainConfig

PACKAGE = Path(__file__).resolve().parents[2] / "vidssl"
# Modules allowed to import by a computed name: the registry helper (lazy "module:attr" paths
# and packages to discover, all registered in code, never taken from a config: a config's name
# is only ever matched against registered names) and nothing else.
DYNAMIC_IMPORT_ALLOWED = {"vidssl/registry.py"}


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
            yield node, owner, name


def _kw(node: ast.Call, name: str):
    for k in node.keywords:
        if k.arg == name and isinstance(k.value, ast.Constant):
            return k.value.value
    return None


def scan(source: str, rel: str) -> list[str]:
    problems = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            for n in names:
                if n.split(".")[0] in ("pickle", "cPickle", "dill", "marshal", "shelve"):
                    problems.append(f"{rel}:{node.lineno}: imports {n}")
    for node, owner, name in _calls(tree):
        where = f"{rel}:{node.lineno}"
        if owner == "torch" and name == "load" and _kw(node, "weights_only") is not True:
            problems.append(f"{where}: torch.load without weights_only=True")
        if owner in ("np", "numpy") and name == "load" and _kw(node, "allow_pickle") is not False:
            problems.append(f"{where}: np.load without allow_pickle=False")
        if owner == "yaml" and name in ("load", "unsafe_load", "full_load", "load_all"):
            problems.append(f"{where}: yaml.{name}")
        if isinstance(node.func, ast.Name) and name in ("eval", "exec", "compile", "__import__"):
            problems.append(f"{where}: {name}()")
        if name == "import_module" and rel not in DYNAMIC_IMPORT_ALLOWED:
            problems.append(f"{where}: dynamic import")
    return problems


def test_the_package_source_has_no_code_execution_paths():
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).as_posix()
        problems += scan(path.read_text(encoding="utf-8"), rel)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("snippet,expect", [
    ("import torch\ntorch.load('x')", "weights_only"),
    ("import torch\ntorch.load('x', weights_only=False)", "weights_only"),
    ("import numpy as np\nnp.load('x.npz')", "allow_pickle"),
    ("import pickle", "imports pickle"),
    ("import yaml\nyaml.load(open('c'))", "yaml.load"),
    ("eval('1+1')", "eval()"),
    ("import importlib\nimportlib.import_module(name)", "dynamic import"),
])
def test_the_scan_catches_each_pattern(snippet, expect):
    assert any(expect in p for p in scan(snippet, "vidssl/x.py"))
    assert not scan("import torch\ntorch.load('x', weights_only=True)\nmodel.eval()", "vidssl/x.py")


@pytest.mark.parametrize("override", ["method.name=os.system", "encoder.name=builtins.eval",
                                      "data.decoder=subprocess"])
def test_names_in_configs_are_registry_lookups_not_imports(tiny_synthetic, tmp_path, override):
    from vidssl.train.loop import pretrain

    cfg = load_config(PretrainConfig, None, [override, f"train.out_dir={tmp_path}",
                                             f"data.root={tiny_synthetic}", "train.max_steps=1",
                                             "data.num_workers=0", "train.progress=false"])
    with pytest.raises(Exception) as info:
        pretrain(cfg)
    assert "unknown" in str(info.value).lower()
    assert not isinstance(info.value, (ImportError, AttributeError))


def test_target_keys_are_unknown_keys(tmp_path):
    (tmp_path / "c.yaml").write_text("method:\n  _target_: os.system\n")
    with pytest.raises(ConfigError, match="_target_"):
        load_config(PretrainConfig, tmp_path / "c.yaml")


def test_a_config_holding_a_secret_is_rejected(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdef")
    (tmp_path / "c.yaml").write_text("train:\n  out_dir: runs/${oc.env:OPENAI_API_KEY}\n")
    with pytest.raises(ConfigError, match="train.out_dir.*OPENAI_API_KEY.*environment"):
        load_config(PretrainConfig, tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        load_config(PretrainConfig, None, ["data.root=/data/sk-test-0123456789abcdef"])
    monkeypatch.setenv("SHORT_KEY", "abc")  # too short to be a credential: not a secret
    load_config(PretrainConfig, None, ["data.root=/data/abc"])


def test_log_messages_are_redacted(monkeypatch, caplog):
    monkeypatch.setenv("HF_TOKEN", "hf_abcdefghijklmnop")
    assert redact("Authorization: Bearer hf_abcdefghijklmnop") == "Authorization: Bearer <redacted:HF_TOKEN>"
    logger = logging.getLogger("vidssl.test_security")
    handler = logging.Handler()
    seen = []
    handler.emit = lambda record: seen.append(record.getMessage())
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    try:
        logger.warning("request failed with key %s", "hf_abcdefghijklmnop")
    finally:
        logger.removeHandler(handler)
    assert seen == ["request failed with key <redacted:HF_TOKEN>"]
