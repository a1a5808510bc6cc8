#!/bin/sh
# Starts one Meshwork process from the shared image: `entrypoint.sh <service> [args...]`, or the
# service named by MESHWORK_SERVICE: runs the esbuild bundle dist/bundle/<name>.js (scripts/build.ts
# writes one for the gateway and for every services/<name>/main.ts), so a new service needs no
# change here.
set -eu

service="${1:-${MESHWORK_SERVICE:-}}"
if [ $# -gt 0 ]; then shift; fi

# The script lives in <app>/deploy; dist/ is beside it.
app="$(cd "$(dirname "$0")/.." && pwd)"
# Every bundle but the gateway's; <name>.code.js beside each is the bundled code it loads.
known() { (cd "$app/dist/bundle" 2>/dev/null && ls -- *.js 2>/dev/null | grep -v -e '\.code\.js$' -e '^gateway\.js$' | sed 's/\.js$//' | tr '\n' ' '); }

case "$service" in
  "")
    echo "entrypoint: no service given; usage: entrypoint.sh <service> (or set MESHWORK_SERVICE); one of: gateway $(known)" >&2
    exit 64 ;;
  *[!a-z0-9-]*)
    # Also keeps "../" out of the path below.
    echo "entrypoint: invalid service name '$service' (lowercase letters, digits and '-' only)" >&2
    exit 64 ;;
esac
main="dist/bundle/$service.js"

if [ ! -f "$app/$main" ]; then
  echo "entrypoint: unknown service '$service' ($main not found); one of: gateway $(known)" >&2
  exit 64
fi

# Services start node with deploy/node-flags (V8 flags that keep idle memory low); the gateway, the
# throughput-critical edge, keeps node's defaults. MESHWORK_NODE_FLAGS, when set (even empty),
# replaces them.
flags=""
if [ "$service" != gateway ] && [ -f "$app/deploy/node-flags" ]; then
  flags="$(sed -e 's/#.*//' "$app/deploy/node-flags" | tr -s ' \t\n' ' ')"
fi
if [ -n "${MESHWORK_NODE_FLAGS+set}" ]; then flags="$MESHWORK_NODE_FLAGS"; fi

cd "$app"
# exec: node becomes tini's direct child and receives SIGTERM itself (graceful drain).
# $flags unquoted on purpose: one word per flag.
set -f
exec node $flags "$main" "$@"
