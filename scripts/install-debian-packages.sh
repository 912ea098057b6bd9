#!/usr/bin/env bash
# Install the Debian packages listed in $1 that are missing. Needs root (or sudo) only when
# something is actually missing.
set -euo pipefail
list=$1
mapfile -t wanted < <(grep -vE '^\s*(#|$)' "$list" || true)
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
run=()
[ "$(id -u)" -eq 0 ] || run=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${run[@]}" apt-get update -qq
"${run[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
