#!/usr/bin/env bash
# Makes sure the infrastructure binaries Meshwork starts itself (etcd, etcdctl, nats-server) exist,
# plus Chromium (MESHWORK_WITH_BROWSER=1) and the benchmark load generators (MESHWORK_WITH_BENCH=1).
# As root on Debian/Ubuntu it installs the missing packages with apt; elsewhere it prints the exact
# command and fails. Nothing is started here: the project starts its own servers on free ports.
set -euo pipefail

declare -A pkg_for=([etcd]=etcd-server [etcdctl]=etcd-client [nats-server]=nats-server)
missing=()
for bin in etcd etcdctl nats-server; do
  if ! command -v "$bin" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$bin" ] && [ ! -x "/usr/bin/$bin" ]; then
    missing+=("${pkg_for[$bin]}")
  fi
done
if [ "${MESHWORK_WITH_BROWSER:-0}" = 1 ] && [ ! -x /usr/bin/chromium ]; then
  missing+=(chromium)
fi
# Load generators for `npm run bench`: wrk (HTTP/1.1) and h2load (h2c gRPC).
if [ "${MESHWORK_WITH_BENCH:-0}" = 1 ]; then
  command -v wrk >/dev/null 2>&1 || missing+=(wrk)
  command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "meshwork: missing packages: ${missing[*]}" >&2
  echo "meshwork: install them with: sudo apt-get update && sudo $cmd" >&2
  exit 1
fi
echo "meshwork: installing ${missing[*]} with apt-get" >&2
# A systemd unit may start a default etcd on :2379; the project never uses it, and on machines
# without systemd nothing starts at all.
DEBIAN_FRONTEND=noninteractive apt-get update -qq
DEBIAN_FRONTEND=noninteractive $cmd >/dev/null
