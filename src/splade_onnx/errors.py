"""Exceptions raised by splade-onnx. Every message names the file or position at fault and what to do."""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence


class SpladeOnnxError(Exception):
    """Base class of all splade-onnx errors."""


class ArtifactError(SpladeOnnxError, ValueError):
    """An artifact folder (model.onnx, tokenizer.json, manifest) is missing, corrupt or incompatible."""

    def __init__(self, message: str, path: Optional[str] = None) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class IndexFileError(SpladeOnnxError, ValueError):
    """An index file is missing, truncated, corrupt or of an unknown format."""

    def __init__(self, message: str, path: Optional[str] = None) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class _BatchInputMixin:
    positions: list[int]
    results: list[Any]

    def _init_batch(self, message: str, positions: Sequence[int], results: Sequence[Any]) -> str:
        self.positions = list(positions)
        # Vectors for every valid text of the call (None where the input was rejected), so nothing is lost.
        self.results = list(results)
        return message


class TextTypeError(_BatchInputMixin, SpladeOnnxError, TypeError):
    """A text in the batch is not a ``str``. ``.positions`` lists the bad items; ``.results`` keeps the rest."""

    def __init__(self, message: str, positions: Sequence[int] = (), results: Sequence[Any] = ()) -> None:
        super().__init__(self._init_batch(message, positions, results))


class TextValueError(_BatchInputMixin, SpladeOnnxError, ValueError):
    """A text is a ``str`` but cannot be encoded (empty, whitespace only, invalid Unicode)."""

    def __init__(self, message: str, positions: Sequence[int] = (), results: Sequence[Any] = ()) -> None:
        super().__init__(self._init_batch(message, positions, results))


class InputFileError(SpladeOnnxError, ValueError):
    """A corpus, queries or qrels file cannot be read: the message names ``path:line`` and what is wrong there."""

    def __init__(self, message: str, path: Optional[str] = None, line: Optional[int] = None) -> None:
        self.path = path
        self.line = line
        where = f"{path}:{line}" if path and line else (path or "")
        super().__init__(f"{where}: {message}" if where else message)


class MissingExtraError(SpladeOnnxError, ImportError):
    """An optional dependency is not installed; the message names the ``pip install "splade-onnx[extra]"`` to run."""

    def __init__(self, extra: str, what: str, cause: Optional[BaseException] = None) -> None:
        self.extra = extra
        reason = f" ({cause})" if cause else ""
        super().__init__(f'{what} needs the [{extra}] extra: pip install "splade-onnx[{extra}]"{reason}')


class ExportError(SpladeOnnxError, RuntimeError):
    """The export step failed; nothing was written to the output folder."""


class ExportParityError(ExportError):
    """The exported graph does not reproduce the torch reference within the tolerance; nothing was written."""


class FuseError(SpladeOnnxError, RuntimeError):
    """``fuse`` cannot append the SPLADE head to the given ONNX graph, or the result fails its check."""


class ExportOptionError(ExportError, ValueError):
    """``export`` was given an unknown option value, or options that do not go together; nothing was written."""


class BulkLoadError(SpladeOnnxError, RuntimeError):
    """A bulk load finished with documents the engine refused. ``.failed`` maps each refused id to the
    engine's reason; ``.loaded`` counts the documents it accepted (every other document of the call)."""

    def __init__(self, engine: str, failed: Dict[str, str], loaded: int) -> None:
        self.failed = dict(failed)
        self.loaded = int(loaded)
        shown = ", ".join(f"{i!r} ({r})" for i, r in list(self.failed.items())[:10])
        more = f" and {len(self.failed) - 10} more" if len(self.failed) > 10 else ""
        super().__init__(f"{engine} refused {len(self.failed)} document(s) ({self.loaded} loaded): {shown}{more}")
