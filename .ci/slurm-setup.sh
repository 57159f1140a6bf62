#!/usr/bin/env bash
# Install the Debian packages behind the real single-node SLURM used by tests/test_slurm.py
# (tests/slurm_cluster.py starts and stops the daemons itself; nothing is started here).
#
#   bash .ci/slurm-setup.sh        # idempotent; exits 0 when it cannot install (test then skips)
#
# Quiet, non-interactive, and tolerant: no root, no apt-get, or no network -> a message and
# exit 0, and the SLURM test skips with its reason. Package daemons are kept from starting
# during the install (policy-rc.d), so no system munged/slurmd is left running.
set -u

PKGS="slurm-wlm munge"
need="slurmctld slurmd munged sbatch squeue sinfo scontrol scancel srun"
export PATH="$PATH:/usr/sbin:/sbin"

have_all() { for b in $need; do command -v "$b" >/dev/null 2>&1 || return 1; done; }

if have_all; then
    echo "[slurm-setup] SLURM and munge already installed: $(slurmctld -V 2>/dev/null)"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "[slurm-setup] not root: cannot apt-get install $PKGS (SLURM test will skip)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "[slurm-setup] apt-get not found: cannot install $PKGS (SLURM test will skip)"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && made_policy=1
fi
cleanup() { [ "$made_policy" = 1 ] && rm -f "$policy"; }
trap cleanup EXIT

log=$(mktemp /tmp/slurm-setup.XXXXXX.log)
start=$(date +%s)
ok=1
timeout 300 apt-get update -qq -o DPkg::Lock::Timeout=120 >"$log" 2>&1 || ok=0
if [ "$ok" = 1 ]; then
    timeout 600 apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=120 \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold $PKGS >>"$log" 2>&1 || ok=0
fi
if [ "$ok" = 1 ] && have_all; then
    echo "[slurm-setup] installed $PKGS in $(( $(date +%s) - start ))s: $(slurmctld -V 2>/dev/null)"
    rm -f "$log"
else
    echo "[slurm-setup] could not install $PKGS (SLURM test will skip); last lines of $log:"
    tail -n 15 "$log" | sed 's/^/[slurm-setup]   /'
fi
exit 0
