"""The documentation stays true to the tree: links resolve, the README stays a front page, every runtime module is
placed in docs/architecture.md, and the README's test command is the one CI runs. No torch, no datasets: pure text."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = REPO / "docs"
PACKAGE = REPO / "src" / "splade_onnx"
README_MAX_BYTES = 15_000

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
EXTERNAL = ("http://", "https://", "mailto:", "ftp://", "data:")


def markdown_files() -> List[Path]:
    return [README, *sorted(DOCS.glob("*.md"))] + ([REPO / "CHANGELOG.md"] if (REPO / "CHANGELOG.md").exists() else [])


def prose_lines(text: str) -> List[Tuple[int, str]]:
    """(line number, line) outside fenced code blocks, with inline code spans blanked out."""
    out, fenced = [], False
    for no, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append((no, re.sub(r"`[^`]*`", lambda m: " " * len(m.group(0)), line)))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors by its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set:
    seen: Dict[str, int] = {}
    out = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else HEADING.match(line)
        if m:
            base = slug(m.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def relative_links(path: Path) -> List[Tuple[int, str]]:
    links = []
    for no, line in prose_lines(path.read_text(encoding="utf-8")):
        targets = [m.group(1) for m in INLINE_LINK.finditer(line)]
        ref = REF_LINK.match(line)
        if ref:
            targets.append(ref.group(1))
        links += [(no, t) for t in targets if not t.startswith(EXTERNAL)]
    return links


def broken_links(path: Path) -> List[str]:
    bad = []
    for no, target in relative_links(path):
        file_part, _, fragment = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(REPO)}:{no}: {target}"
        if not dest.exists():
            bad.append(f"{where} (no such file)")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            bad.append(f"{where} (no heading #{fragment} in {dest.name})")
    return bad


def test_docs_folder_has_pages():
    assert README.is_file() and (DOCS / "README.md").is_file() and (DOCS / "architecture.md").is_file()


def test_link_parser_finds_the_front_page_links():
    """The README and the docs index link into docs/: if none are found, the parser (not the docs) is broken."""
    for page in (README, DOCS / "README.md"):
        targets = [t for _, t in relative_links(page)]
        assert sum(t.split("#")[0].endswith(".md") for t in targets) >= 5, (page, targets)


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page: Path):
    bad = broken_links(page)
    assert not bad, "broken links:\n" + "\n".join(bad)


def test_readme_is_a_front_page():
    size = README.stat().st_size
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes (at most {README_MAX_BYTES}): move reference to docs/"


def runtime_modules() -> List[str]:
    return sorted(
        p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if p.name not in ("__init__.py", "__main__.py")
    )


def test_every_runtime_module_is_in_the_architecture_page():
    modules = runtime_modules()
    assert len(modules) >= 10, modules
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    missing = [m for m in modules if not re.search(r"(?<![\w/])" + re.escape(m) + r"(?![\w/])", text)]
    assert not missing, f"modules not named in docs/architecture.md (paths relative to src/splade_onnx/): {missing}"


def ci_test_command() -> str:
    """``bash scripts/setup.sh && <python> -m pytest ...`` as .ci/run runs it (other steps, such as lint, ignored)."""
    parts = []
    for line in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("#"):
            continue
        parts += [p.strip() for p in line.split("&&") if p.strip()]
    setup = [p for p in parts if p.startswith("bash scripts/setup.sh")]
    pytest_cmd = [p for p in parts if re.search(r"-m pytest\b", p)]
    assert setup and pytest_cmd, f".ci/run has no setup or pytest step: {parts}"
    return f"{setup[0]} && {pytest_cmd[0]}"


def readme_test_command() -> str:
    fenced = False
    for line in README.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if fenced and line.startswith("bash scripts/setup.sh") and "pytest" in line:
            return line.split("#", 1)[0].strip()
    raise AssertionError("README.md has no `bash scripts/setup.sh && ... pytest` line in a code block")


def test_readme_test_command_is_what_ci_runs():
    assert readme_test_command() == ci_test_command()
