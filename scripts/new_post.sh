#!/usr/bin/env bash
# Start a blog-series post: a dated stub in pages/blog/posts/ with front matter, a citation and a
# metric macro to copy. A thin wrapper over `mechatlas site post`; every argument is passed through:
#   scripts/new_post.sh "Is refusal one direction?" --category Replications
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MECHATLAS="${MECHATLAS:-$ROOT/.venv/bin/mechatlas}"
if [[ ! -x "$MECHATLAS" ]]; then
  echo "error: $MECHATLAS not found; run \`make test\` once to create the environment, or set MECHATLAS" >&2
  exit 1
fi

cd "$ROOT"
"$MECHATLAS" site post "$@"
