#!/usr/bin/env bash
# Installs the Debian packages the test suite needs, if any is missing (we run as root here).
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/lib/postgresql/15/bin/initdb ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
# The sidecar's PHP and Node clients are tested against it (tests/clients).
command -v php >/dev/null || missing+=(php-cli)
php -r 'exit(defined("CURLOPT_UNIX_SOCKET_PATH") ? 0 : 1);' 2>/dev/null || missing+=(php-curl)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing ${missing[*]} (Debian packages the tests need)…"
  if [ "$(id -u)" -ne 0 ]; then
    echo "Run as root, or: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
