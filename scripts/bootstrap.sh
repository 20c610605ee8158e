#!/usr/bin/env bash
# Install what the lab and the tests need: Debian packages and a pinned .venv.
# Idempotent and quick on a second run: apt runs only for missing packages, pip only when
# requirements/controller.lock changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
  podman runc debootstrap nftables iproute2 iputils-ping openssh-client python3-venv
  sip-tester stunnel4 sipvicious baresip-core
  gcc python3-dev
  git make ca-certificates
)

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

stamp=.venv/.bootstrap-lock.sha256
want=$(sha256sum requirements/controller.lock | cut -d' ' -f1)
if [[ ! -x .venv/bin/python || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "bootstrap: installing the Python tool chain into .venv"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements/controller.lock
  echo "$want" > "$stamp"
fi
