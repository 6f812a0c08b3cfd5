#!/usr/bin/env bash
# Install the Debian packages that tests/workflow/test_slurm.py needs to start a real single-node
# SLURM (slurmctld, slurmd, the client commands, munge). Idempotent: does nothing when they are
# all present. Needs root (CI runs as root); without root it prints why and exits 0, and the SLURM
# test then skips with a clear reason.
#
# It only installs: no daemon is started and no config is written here. The test writes
# /etc/slurm/slurm.conf (the job-step plugin strips SLURM_CONF, so slurmd's jobs must find it there)
# and starts/stops its own munged, slurmctld and slurmd by PID.
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge)

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "slurm-setup: ${PACKAGES[*]} already installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "slurm-setup: not root, cannot install ${missing[*]}; the SLURM test will skip"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "slurm-setup: no apt-get on this machine; the SLURM test will skip"
    exit 0
fi

echo "slurm-setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d 101 keeps the packages' maintainer scripts from starting the daemons themselves
# (on a machine without systemd they would try init scripts): the test starts exactly the
# daemons it needs, and stops exactly those.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    created_policy=1
fi
trap '[ "$created_policy" -eq 1 ] && rm -f "$policy"' EXIT
# a transient mirror error gets two more tries; a real failure stops CI (the test must run there)
for try in 1 2 3; do
    if apt-get -o DPkg::Lock::Timeout=120 update -qq &&
        apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null; then
        break
    fi
    if [ "$try" -eq 3 ]; then
        echo "slurm-setup: apt-get failed 3 times" >&2
        exit 1
    fi
    sleep 10
done
echo "slurm-setup: installed $(dpkg-query -W -f='${Package} ${Version}\n' "${PACKAGES[@]}" | tr '\n' ' ')"
