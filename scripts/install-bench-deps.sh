#!/usr/bin/env bash
# Install what `make bench` needs beyond roost's own Python packages: Prosody from Debian
# (the server roost is compared with) and lua-unbound (Prosody's DNS library; without it
# Prosody prints a warning at every start). Idempotent; does nothing when both are there.
#
# The bench runs its own Prosody process with its own configuration and data directory on a
# free port; it never uses /etc/prosody. Where Debian starts the packaged service at install
# (a machine with systemd and no policy-rc.d), that service is left alone.
set -euo pipefail

need=()
command -v prosody >/dev/null || need+=(prosody)
dpkg-query -W -f '${Status}' lua-unbound 2>/dev/null | grep -q "ok installed" || need+=(lua-unbound)

if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        SUDO=sudo
    else
        SUDO=
    fi
    echo "installing Debian packages: ${need[*]}"
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
        --no-install-recommends "${need[@]}"
fi
