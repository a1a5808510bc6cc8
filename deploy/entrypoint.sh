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

cd "$app"
# exec: node becomes tini's direct child and receives SIGTERM itself (graceful drain).
exec node "$main" "$@"
