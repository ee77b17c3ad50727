"""Docs and behaviour stay together: every ``vidssl ...`` command written in a code block of the
README or docs/*.md is checked the way the CLI would take it — its sub-command and flags parse,
its ``--config`` names a file or a shipped config, and its ``KEY=VALUE`` overrides (with that
config) are keys of the command's settings schema. Commands that need data, weights or minutes
are checked this far, not run; the ones that run offline in seconds are run.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def documented_commands() -> list[tuple[str, int, str]]:
    """``(file, line, command)`` for each ``vidssl ...`` / ``torchrun ... -m vidssl ...`` line of
    a fenced code block (continuation backslashes joined; synopsis lines with ``(a | b)`` or
    ``[--x]`` left out: they are grammar, not commands)."""
    out = []
    for path in DOCS:
        in_block, pending, start = False, "", 0
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.lstrip().startswith("```"):
                in_block, pending = not in_block, ""
                continue
            if not in_block:
                continue
            text = line.strip()
            if pending:
                text, pending = pending + " " + text, ""
            elif not re.match(r"^(vidssl |torchrun .*-m vidssl )", text):
                continue
            else:
                start = number
            if text.endswith("\\"):
                pending = text[:-1].strip()
                continue
            if re.search(r"\(--|\[--| \| |:\s*error:", text):
                continue
            out.append((path.relative_to(REPO).as_posix(), start, text))
    return out


COMMANDS = documented_commands()


def _schema(command: str):
    from vidssl.compare import CompareConfig
    from vidssl.data.synthetic.options import SyntheticOptions
    from vidssl.demo import DemoConfig
    from vidssl.eval.config import EvalConfig
    from vidssl.track.run import TrackConfig
    from vidssl.train.config import PretrainConfig

    return {"pretrain": PretrainConfig, "eval": EvalConfig, "track": TrackConfig, "demo": DemoConfig,
            "compare": CompareConfig, "make-synthetic": SyntheticOptions,
            "bench train": PretrainConfig}.get(command)


def test_the_docs_hold_commands():
    assert len(COMMANDS) >= 30, [c for _, _, c in COMMANDS]


@pytest.mark.parametrize("where,line,text", COMMANDS, ids=[f"{w}:{n}" for w, n, _ in COMMANDS])
def test_documented_command_parses_and_its_settings_exist(where, line, text):
    from vidssl.cli import build_parser, split_overrides
    from vidssl.config import load_config, resolve_config_path

    argv = shlex.split(text, comments=True)
    argv = argv[argv.index("vidssl") + 1:] if "vidssl" in argv else argv[argv.index("-m") + 2:]
    parser = build_parser()
    rest, overrides = split_overrides(parser, argv)
    try:
        args = parser.parse_args(rest)
    except SystemExit as exit_:
        pytest.fail(f"{where}:{line}: `{text}` does not parse (exit {exit_.code})")
    if overrides:
        assert hasattr(args, "overrides"), f"{where}:{line}: {args.command} takes no KEY=VALUE"
    name = args.command + (f" {args.bench}" if args.command == "bench" else "")
    config = getattr(args, "config", None)
    if config:
        resolve_config_path(config)
    schema = _schema(name)
    if schema is not None and (overrides or config):
        load_config(schema, config, overrides)


@pytest.mark.parametrize("argv", [["--version"], ["configs"], ["configs", "pretrain/tclr_synthetic"],
                                  *[[c, "--help"] for c in ("demo", "make-synthetic", "index", "configs",
                                                             "export", "pretrain", "eval", "compare",
                                                             "concepts", "track", "bench")]])
def test_quick_documented_commands_run(argv, capsys):
    from vidssl.cli import main

    try:
        code = main(argv)
    except SystemExit as exit_:  # --help and --version exit through argparse
        code = exit_.code
    assert code == 0
    assert capsys.readouterr().out.strip()
