#!/usr/bin/env bash
# Installs the proxies that ws-tokio/tests/proxy.rs starts on 127.0.0.1, from Debian's packages,
# when they are missing: tinyproxy (HTTP CONNECT), dante-server (danted, SOCKS5) and microsocks
# (SOCKS5 with username/password). The tests run this themselves when a binary is missing.
#
#   bash ws-tokio/tests/proxy/setup.sh
set -euo pipefail

need=()
command -v tinyproxy >/dev/null 2>&1 || [ -x /usr/bin/tinyproxy ] || need+=(tinyproxy)
command -v danted >/dev/null 2>&1 || [ -x /usr/sbin/danted ] || need+=(dante-server)
command -v microsocks >/dev/null 2>&1 || [ -x /usr/bin/microsocks ] || need+=(microsocks)
[ ${#need[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
echo "installing ${need[*]} (apt-get)" >&2
$sudo apt-get update -q >&2
$sudo apt-get install -y -q --no-install-recommends "${need[@]}" >&2
