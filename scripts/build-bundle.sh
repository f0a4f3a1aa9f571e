#!/usr/bin/env bash
# Build dist/respan-mcp-<version>.mcpb, the one-click Claude Desktop bundle: manifest.json,
# server/main.py, and the package with its dependencies installed into server/lib.
# The bundle carries compiled wheels (pydantic-core) for the platform and Python version it is
# built with; the staged manifest says which, so hosts can refuse a mismatch.
#   PYTHON=python3.12 scripts/build-bundle.sh     # build for another interpreter
#   DIST_DIR=/tmp/out scripts/build-bundle.sh     # write somewhere else
set -euo pipefail
cd "$(dirname "$0")/.."

python="${PYTHON:-python3}"
dist="${DIST_DIR:-dist}"
version="$("$python" -c 'import re; print(re.search(r"^version = \"(.+)\"", open("pyproject.toml").read(), re.M).group(1))')"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT

mkdir -p "$stage/server/lib" "$dist"
"$python" -m pip install --quiet --disable-pip-version-check --no-compile --target "$stage/server/lib" .
cp README.md LICENSE "$stage/"
cat > "$stage/server/main.py" <<'PY'
"""Bundle entry point: the bundle's own server/lib first, then the ordinary command line."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

from respan_mcp.__main__ import main  # noqa: E402

main()
PY

# The staged manifest names the platform and Python minor version the compiled wheels are for.
"$python" - "$stage/manifest.json" <<'PY'
import json, sys, platform
manifest = json.load(open("manifest.json"))
major, minor = platform.python_version_tuple()[:2]
manifest["compatibility"]["platforms"] = [sys.platform]
manifest["compatibility"]["runtimes"]["python"] = f">={major}.{minor},<{major}.{int(minor) + 1}"
json.dump(manifest, open(sys.argv[1], "w"), indent=2)
PY

out="$dist/respan-mcp-$version.mcpb"
rm -f "$out"
if command -v npx > /dev/null && npx -y @anthropic-ai/mcpb pack "$stage" "$out" > "$stage.pack.log" 2>&1; then
    echo "packed with mcpb: $out"
else
    [ -f "$stage.pack.log" ] && echo "mcpb pack unavailable or failed; zipping instead" >&2
    (cd "$stage" && "$python" -m zipfile -c "$OLDPWD/$out" manifest.json README.md LICENSE server)
    echo "zipped: $out"
fi
rm -f "$stage.pack.log"
