#!/bin/sh
# Kiosk-test probe (QEMU only; enabled by systemd.wants=tillbox-kiosktest.service on the
# kernel command line, which tests/image/test_kiosk.py puts in U-Boot's environment).
#   prepare: mount the test's disk (FAT, label TILLBOXTEST), enrol the till and apply the
#            disk's catalog.json as the kiosk user, and make systemd start the kiosk with
#            TILLBOX_UI_PROBE (ui/probe.py: the screen and each button's rectangle);
#   report:  print that probe file on the console whenever it changes, as
#            TILLBOX-UI BASE64(JSON), one line each, and the kiosk unit's state and
#            restart count when they change (TILLBOX-KIOSK-UNIT active/0).
# Nothing here taps or sells: the test does that with QMP input events, as a finger would.
set -u
data=/var/lib/tillbox
tillbox=/opt/tillbox/venv/bin/tillbox
probe=/run/tillbox-ui/probe.json
as_kiosk() { (cd / && umask 0007 && runuser -u kiosk -g tillbox -- "$tillbox" "$@"); }
case "${1:-}" in
prepare)
  disk=/dev/disk/by-label/TILLBOXTEST
  i=0
  while [ ! -e "$disk" ] && [ $i -lt 120 ]; do sleep 1; i=$((i + 1)); done
  mkdir -p /run/tillbox-test
  mount -o ro "$disk" /run/tillbox-test || { echo "TILLBOX-KIOSKTEST no test disk"; exit 1; }
  as_kiosk enroll --data-dir "$data" --operator "Kiosk Test" --business "QEMU Stall" \
    --permit "market:QEMU-1:2030-12-31:camera" --attestation "I trade lawfully." \
    --confirm --no-labels
  as_kiosk catalog apply --data-dir "$data" /run/tillbox-test/catalog.json
  systemctl set-environment "TILLBOX_UI_PROBE=$probe"
  # Software GL under emulation: the kiosk's start (its READY=1 at the first frame) takes
  # minutes, and a frame can take longer than a Pi's WatchdogSec=30s; give both bounds
  # what emulation needs (a Pi keeps the unit's own).
  mkdir -p /run/systemd/system/tillbox-ui.service.d
  printf '[Service]\nTimeoutStartSec=1200\nWatchdogSec=600\n' \
    > /run/systemd/system/tillbox-ui.service.d/qemu.conf
  systemctl daemon-reload
  echo "TILLBOX-KIOSKTEST prepared"
  ;;
report)
  shown_unit="" shown_probe=""
  while sleep 1; do
    unit=$(systemctl show -P ActiveState tillbox-ui.service)/$(systemctl show -P NRestarts tillbox-ui.service)
    [ "$unit" = "$shown_unit" ] || echo "TILLBOX-KIOSK-UNIT $unit"
    shown_unit=$unit
    [ -f "$probe" ] || continue
    stamp=$(stat -c %Y.%s "$probe" 2>/dev/null) || continue
    [ "$stamp" = "$shown_probe" ] && continue
    shown_probe=$stamp
    echo "TILLBOX-UI $(base64 -w0 "$probe")"
  done
  ;;
*)
  echo "usage: kiosktest prepare|report" >&2
  exit 2
  ;;
esac
