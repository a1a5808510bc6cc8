#!/usr/bin/env bash
# Checks the contracts for breaking changes against the last release. A release is the newest git
# tag named contracts/vX.Y.Z; in a clone without tags, the commit recorded in .contracts-release
# (written by scripts/release-contracts.sh together with the tag) is used instead.
set -euo pipefail
cd "$(dirname "$0")/.."

ref=$(git tag --list 'contracts/v*' --sort=-v:refname 2>/dev/null | head -n 1)
if [ -n "$ref" ]; then
  ref=$(git rev-list -n 1 "$ref")
elif [ -f .contracts-release ]; then
  ref=$(sed -n 's/^commit=//p' .contracts-release)
fi
if [ -z "$ref" ]; then
  echo "check-breaking: no released contracts found (no contracts/v* tag, no .contracts-release)" >&2
  exit 1
fi
if ! git cat-file -e "$ref^{commit}" 2>/dev/null; then
  echo "check-breaking: release commit $ref is not in this clone (shallow?): run 'git fetch --unshallow --tags'" >&2
  exit 1
fi
# One module at a time: a workspace-level check fails when the module list changed between refs.
for module in proto vendor/proto; do
  if git cat-file -e "$ref:$module" 2>/dev/null; then
    npx buf breaking "$module" --against ".git#ref=$ref,subdir=$module"
  fi
done
echo "contracts are compatible with release $(sed -n 's/^tag=//p' .contracts-release 2>/dev/null) ($ref)"
