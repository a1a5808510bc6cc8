#!/usr/bin/env bash
# Fails when gen/ differs from what `buf generate` makes of the contracts (gen/ is committed).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
npx buf generate -o "$tmp"
if ! diff -r "$tmp/gen" gen >"$tmp/diff.txt"; then
  echo "gen/ is stale: run 'npx buf generate' and commit the result. Differences:" >&2
  head -50 "$tmp/diff.txt" >&2
  exit 1
fi
echo "gen/ matches the contracts"
