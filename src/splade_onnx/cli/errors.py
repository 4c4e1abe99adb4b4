"""How the command line reports failures: every failure is one ``error: ...`` line on stderr and an exit code."""

from __future__ import annotations

import logging
import sys
from typing import Callable

from splade_onnx.errors import SpladeOnnxError

log = logging.getLogger("splade_onnx")

EXIT_OK = 0
EXIT_ERROR = 1  # a fault the user can fix: bad input, missing or corrupt files, a failed export
EXIT_USAGE = 2  # bad usage: no texts, a missing option (argparse uses 2 too)
EXIT_INTERRUPTED = 130


class UsageError(SpladeOnnxError):
    """The command was called wrongly (exit 2), e.g. without any text to work on."""


def run_command(func: Callable[[], int], *, verbose: bool = False) -> int:
    """Run a command and map every failure to one ``error:`` line and an exit code (no traceback, unless
    ``verbose`` and the failure is not one of the library's own errors)."""
    try:
        return int(func() or EXIT_OK)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (SpladeOnnxError, FileNotFoundError, FileExistsError, IsADirectoryError, PermissionError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `splade-onnx search ... | head`: the reader left, nothing to report
        return EXIT_OK
    except Exception as e:  # noqa: BLE001 - the last line of defence: still one line, and how to see more
        if verbose:
            log.exception("unexpected failure")
        print(
            f"error: unexpected {type(e).__name__}: {e}"
            + ("" if verbose else " (rerun with --verbose for the traceback)"),
            file=sys.stderr,
        )
        return EXIT_ERROR
