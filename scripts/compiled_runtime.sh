#!/usr/bin/env bash
# Build the mypyc-compiled runtime wheel (cached per source tree in .cache/pbx_runtime, the
# directory the pbx_runtime role builds into) and unpack it into .cache/compiled-runtime.
# Prints that directory: put it first on PYTHONPATH to run the compiled build.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
wheel=$("$python" roles/pbx_runtime/files/build_wheel.py . .cache/pbx_runtime --compiled \
  | "$python" -c 'import json, sys; print(json.load(sys.stdin)["path"])')
target=.cache/compiled-runtime
stamp="$target/.wheel"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$wheel" ]]; then
  rm -rf "$target"
  "$python" -m pip install --quiet --no-deps --no-index --disable-pip-version-check \
    --target "$target" "$wheel" >&2
  echo "$wheel" > "$stamp"
fi
echo "$PWD/$target"
