"""Every command failure becomes one ``error:`` line and an exit code (splade_onnx.cli.errors.run_command)."""

from __future__ import annotations

import pytest

from splade_onnx.cli.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, UsageError, run_command
from splade_onnx.errors import ExportParityError, FuseError, InputFileError, MissingExtraError


def _raise(exc):
    def f():
        raise exc

    return f


@pytest.mark.parametrize(
    "exc, code",
    [
        (ExportParityError("graph differs by 0.1 (> 0.0001); artifact not written"), EXIT_ERROR),
        (FuseError("no [batch, seq, vocab] logits output"), EXIT_ERROR),
        (MissingExtraError("serve", "serve"), EXIT_ERROR),
        (InputFileError("not valid JSON", "c.jsonl", 3), EXIT_ERROR),
        (FileNotFoundError("x"), EXIT_ERROR),
        (ValueError("bad value"), EXIT_ERROR),
        (UsageError("no texts given"), EXIT_USAGE),
        (KeyboardInterrupt(), EXIT_INTERRUPTED),
        (RuntimeError("something unexpected"), EXIT_ERROR),
    ],
)
def test_failures_are_one_line_with_an_exit_code(capsys, exc, code):
    assert run_command(_raise(exc)) == code
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err


def test_missing_extra_says_what_to_install():
    assert 'pip install "splade-onnx[spark]"' in str(MissingExtraError("spark", "the Spark integration"))


def test_input_file_error_names_path_and_line():
    assert str(InputFileError("empty document", "c.jsonl", 4)) == "c.jsonl:4: empty document"


def test_success_returns_the_commands_code():
    assert run_command(lambda: 0) == 0
    assert run_command(lambda: 3) == 3
