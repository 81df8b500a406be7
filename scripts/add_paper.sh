#!/usr/bin/env bash
# Add a paper to the literature library, then run the referee.
# A thin wrapper over `mechatlas lit add`; every argument is passed through. Examples:
#   scripts/add_paper.sh paper.bib
#   pbpaste | scripts/add_paper.sh -
#   scripts/add_paper.sh --arxiv 2406.11717 --title "Refusal in Language Models Is Mediated by a Single Direction" \
#       --authors "Andy Arditi; Oscar Obeso; Aaquib Syed" --year 2024 --venue "NeurIPS" --type inproceedings
# Run `scripts/add_paper.sh --help` for every option.
set -euo pipefail

# Paths given by the user stay relative to where they ran the script, so we do not cd before adding.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MECHATLAS="${MECHATLAS:-$ROOT/.venv/bin/mechatlas}"
if [[ ! -x "$MECHATLAS" ]]; then
  echo "error: $MECHATLAS not found; run \`make test\` once to create the environment, or set MECHATLAS" >&2
  exit 1
fi

"$MECHATLAS" lit add --root "$ROOT/literature" "$@"
case " $* " in *" --help "*) exit 0 ;; esac
(cd "$ROOT" && "$MECHATLAS" lit check)
