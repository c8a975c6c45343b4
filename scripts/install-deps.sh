#!/usr/bin/env bash
# Installs the Debian packages shardio needs that are missing.
# Usage: scripts/install-deps.sh [extra-package...]
# As root it runs apt-get; otherwise it prints the command to run.
set -euo pipefail

packages=(cmake ninja-build pkg-config g++ liburing-dev libabsl-dev
          libgtest-dev libgmock-dev libbenchmark-dev "$@")
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "shardio needs these Debian packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
