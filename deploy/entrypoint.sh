#!/bin/sh
# Starts one Meshwork process from the shared image: `entrypoint.sh <service> [args...]`, or the
# service named by MESHWORK_SERVICE. "gateway" runs dist/gateway/main.js, any other name
# dist/services/<name>/main.js, so a new service needs no change here.
set -eu

service="${1:-${MESHWORK_SERVICE:-}}"
if [ $# -gt 0 ]; then shift; fi

# The script lives in <app>/deploy; dist/ is beside it.
app="$(cd "$(dirname "$0")/.." && pwd)"
known() { (cd "$app/dist/services" 2>/dev/null && ls -d -- */ 2>/dev/null | tr -d / | tr '\n' ' '); }

case "$service" in
  "")
    echo "entrypoint: no service given; usage: entrypoint.sh <service> (or set MESHWORK_SERVICE); one of: gateway $(known)" >&2
    exit 64 ;;
  *[!a-z0-9-]*)
    # Also keeps "../" out of the path below.
    echo "entrypoint: invalid service name '$service' (lowercase letters, digits and '-' only)" >&2
    exit 64 ;;
  gateway) main="dist/gateway/main.js" ;;
  *) main="dist/services/$service/main.js" ;;
esac

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
