#!/usr/bin/env bash
# Installs the Debian packages the build and tests need (as root; list in .ci/packages.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends $(grep -v '^#' .ci/packages.txt)
