#!/bin/sh
# Update-test probe (QEMU only; enabled by systemd.wants=tillbox-updatetest.service on the
# kernel command line, which the test puts in U-Boot's environment). Runs after the boot's
# update check: mounts the test's disk (FAT, label TILLBOXTEST: bundles and run.sh), runs
# its run.sh with the console as output, then powers off so QEMU exits. Never on a kiosk:
# no unit enables it.
set -u
disk=/dev/disk/by-label/TILLBOXTEST
i=0
while [ ! -e "$disk" ] && [ $i -lt 60 ]; do sleep 1; i=$((i + 1)); done
mkdir -p /run/tillbox-test
if mount -o ro "$disk" /run/tillbox-test; then
  echo "TILLBOX-UPDATETEST begin"
  (cd /run/tillbox-test && sh ./run.sh)
  echo "TILLBOX-UPDATETEST end $?"
else
  echo "TILLBOX-UPDATETEST no test disk"
fi
sync
systemctl --no-block poweroff
