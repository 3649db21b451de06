#!/usr/bin/env bash
# Copies a finished reproduction ledger into docs/reproduction/ as it is committed:
#
#   bash scripts/publish_ledger.sh W NAME      # e.g. W=/data/ledgers/digits NAME=digits
#
# writes docs/reproduction/NAME.md (W/REPRODUCTION.md as written, its links pointing to the
# copies) and docs/reproduction/NAME/ (the claims' plots, the study report and its plots),
# replacing what was there.
set -euo pipefail
if [ "$#" -ne 2 ]; then
  echo "usage: bash scripts/publish_ledger.sh LEDGER_WORKDIR NAME" >&2
  exit 2
fi
W="$1"; NAME="$2"
cd "$(dirname "$0")/.."
D=docs/reproduction
[ -f "$W/REPRODUCTION.md" ] || { echo "error: $W/REPRODUCTION.md not found (is the ledger finished?)" >&2; exit 2; }
[ -f "$W/runs/report.md" ] || { echo "error: $W/runs/report.md not found" >&2; exit 2; }
rm -rf "${D:?}/$NAME"
mkdir -p "$D/$NAME/claims"
cp "$W"/claims/*.png "$D/$NAME/claims/"
cp "$W/runs/report.md" "$D/$NAME/report.md"
cp "$W"/runs/*.png "$D/$NAME/"
{
  head -n 1 "$W/REPRODUCTION.md"
  echo
  echo "\`W/REPRODUCTION.md\` of the run below, copied as written (only the links point to the copies of"
  echo "its plots and study report in \`$NAME/\`)."
  tail -n +2 "$W/REPRODUCTION.md" \
    | sed "s#](claims/#]($NAME/claims/#g; s#](runs/report.md)#]($NAME/report.md)#g"
} > "$D/$NAME.md"
echo "wrote $D/$NAME.md and $D/$NAME/ ($(ls "$D/$NAME/claims" | wc -l) claim plots)"
