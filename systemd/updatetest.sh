#!/bin/sh
# Update-test probe (QEMU only; enabled by systemd.wants=tillbox-updatetest.service on the
# kernel command line, which the test puts in U-Boot's environment). Runs after the boot's
# update check: mounts the test's disk (FAT, label TILLBOXTEST: bundles and run.sh), runs
# its run.sh with the console as output, then powers off so QEMU exits. Never on a kiosk:
# no unit enables it.
#   updatetest prepare: before the kiosk starts (tillbox-updatetest-prepare.service), give
#                       it emulation's start and watchdog bounds, as the kiosk test does:
#                       software GL under TCG takes minutes to the first frame (READY=1,
#                       which the boot check waits for) and a frame can outlast the Pi's
#                       WatchdogSec=30s. A runtime drop-in: every boot, every slot.
set -u
if [ "${1:-}" = prepare ]; then
  mkdir -p /run/systemd/system/tillbox-ui.service.d
  printf '[Service]\nTimeoutStartSec=1200\nWatchdogSec=600\n' \
    > /run/systemd/system/tillbox-ui.service.d/qemu.conf
  systemctl daemon-reload
  echo "TILLBOX-UPDATETEST prepared"
  exit 0
fi
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
