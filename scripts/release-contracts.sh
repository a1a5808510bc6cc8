#!/usr/bin/env bash
# Releases the current contracts: tags HEAD as contracts/vX.Y.Z and records the tag and commit in
# .contracts-release (committed), so the breaking check also works in clones without tags.
# Usage: scripts/release-contracts.sh 0.2.0   (run on a clean main, then push the tag)
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:?usage: scripts/release-contracts.sh X.Y.Z}
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "version must be X.Y.Z, got '$version'" >&2; exit 1; }
[ -z "$(git status --porcelain -- proto vendor/proto)" ] || { echo "commit the contracts first" >&2; exit 1; }
tag="contracts/v$version"
git tag -a "$tag" -m "Contracts $version"
printf 'tag=%s\ncommit=%s\n' "$tag" "$(git rev-parse HEAD)" > .contracts-release
git add .contracts-release
git commit -q -m "Record contracts release $tag"
echo "released $tag"
