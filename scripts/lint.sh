#!/usr/bin/env bash
# Static checks that .ci/run runs before the tests: ruff (lint and format) over the repository, and mypy (strict)
# on the runtime for the oldest and the newest Python the package claims. Needs the [lint] extra (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin
"$PY/ruff" check .
"$PY/ruff" format --check .
for version in 3.10 3.13; do
  "$PY/mypy" --python-version "$version" src/splade_onnx
done
