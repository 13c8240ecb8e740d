#!/usr/bin/env bash
# Installs the Debian packages ElohimOS builds and tests with, only those
# that are missing (idempotent). Used by `make test`, `make run`, `.ci/run`.
set -euo pipefail

PKGS=(build-essential pkg-config clang
      libopenblas-dev libjansson-dev libsodium-dev libsqlite3-dev sqlite3
      libpng-dev libmicrohttpd-dev libutf8proc-dev libcmocka-dev
      python3 python3-venv curl)
[ -n "${ELOHIM_EXTRA_PKGS:-}" ] && read -r -a extra <<<"$ELOHIM_EXTRA_PKGS" && PKGS+=("${extra[@]}")

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: missing Debian packages: ${missing[*]}" >&2
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=sudo
    else
        echo "install-deps: not root; install them with:" >&2
        echo "  sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2 || true
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
