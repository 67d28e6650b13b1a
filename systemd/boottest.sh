#!/bin/sh
# Boot-test probe (QEMU only; enabled by systemd.wants= on the kernel command line).
# Prints one line, TILLBOX-BOOTTEST {json}, on the console, then powers off.
set -u
data=/var/lib/tillbox
show() { systemctl show -P "$2" "$1" 2>/dev/null | head -n1; }
# The sync agent is Type=notify: "active" means it sent READY=1. Give it a little time.
i=0
while [ $i -lt 60 ] && [ "$(show tillbox-sync.service ActiveState)" = activating ]; do
  sleep 1; i=$((i + 1))
done
selftest_log() {  # what the self-test printed in its latest run
  journalctl -b -o cat --no-pager \
    "_SYSTEMD_INVOCATION_ID=$(show tillbox-selftest.service InvocationID)" 2>/dev/null | tail -n 30
}
first_active=$(show tillbox-selftest.service ActiveState)
first_result=$(show tillbox-selftest.service Result)
first_out=$(selftest_log)
# A new kiosk is not enrolled yet (the merchant does that on the Onboarding screen), so
# its first self-test fails "permits". Enrol as the Onboarding screen would (the
# simulated camera scans the permit), then run the self-test unit again.
enroll_out=$(cd / && umask 0007 && runuser -u kiosk -g tillbox -- /opt/tillbox/venv/bin/tillbox \
  enroll --data-dir "$data" --operator "Boot Test" --business "QEMU Stall" \
  --permit "market:QEMU-1:2030-12-31:camera" --attestation "I trade lawfully." --confirm \
  --no-labels 2>&1 | tail -n 3)
systemctl restart tillbox-selftest.service
selftest_out=$(selftest_log)
provision_out=$(journalctl -b -u tillbox-provision.service -o cat --no-pager 2>/dev/null \
  | grep 'tillbox-provision:' | tail -n 3)
key_stat=$(stat -c '%U:%G:%a' "$data/keys/device.key" 2>/dev/null || echo missing)
data_mb=$(df -m --output=size /data 2>/dev/null | tail -n1 | tr -d ' ')
root_opts=$(findmnt -n -o OPTIONS /)
data_opts=$(findmnt -n -o OPTIONS /data)
# (the update check's rauc.service may hold the boot partition mounted already)
boot_files=$( (mountpoint -q /boot/firmware || mount /boot/firmware) 2>/dev/null && ls /boot/firmware | grep -i tillbox | tr '\n' ' ')
wd=$(systemctl show -P RuntimeWatchdogUSec 2>/dev/null)
/opt/tillbox/venv/bin/python3 -I -c '
import json, sys
print("TILLBOX-BOOTTEST " + json.dumps(dict(a.split("=", 1) for a in sys.argv[1:]),
                                       sort_keys=True), flush=True)
' \
  "selftest_active=$(show tillbox-selftest.service ActiveState)" \
  "selftest_result=$(show tillbox-selftest.service Result)" \
  "selftest_status=$(show tillbox-selftest.service ExecMainStatus)" \
  "selftest_output=$selftest_out" \
  "selftest_first_active=$first_active" \
  "selftest_first_result=$first_result" \
  "selftest_first_output=$first_out" \
  "enroll_output=$enroll_out" \
  "sync_state=$(cat $data/sync/state.json 2>/dev/null)" \
  "sync_log=$(journalctl -b -u tillbox-sync.service -o cat --no-pager 2>/dev/null | tail -n 8)" \
  "ui_log=$(journalctl -b -u tillbox-ui.service -o cat --no-pager 2>/dev/null | tail -n 8)" \
  "network=$(ip -br addr 2>/dev/null; ip route 2>/dev/null)" \
  "provision_result=$(show tillbox-provision.service Result)" \
  "provision_output=$provision_out" \
  "sync_active=$(show tillbox-sync.service ActiveState)" \
  "sync_result=$(show tillbox-sync.service Result)" \
  "sync_user=$(show tillbox-sync.service User)" \
  "ui_active=$(show tillbox-ui.service ActiveState)" \
  "ui_result=$(show tillbox-ui.service Result)" \
  "ssh_active=$(show ssh.service ActiveState)" \
  "key=$key_stat" \
  "data_mb=$data_mb" \
  "root_options=$root_opts" \
  "data_options=$data_opts" \
  "boot_files=$boot_files" \
  "ssh_keys=$(ls /data/system/ssh 2>/dev/null | tr '\n' ' ')" \
  "localtime=$(readlink -f /etc/localtime)" \
  "wifi_conf=$(stat -c '%U:%a' /data/system/wpa_supplicant-wlan0.conf 2>/dev/null || echo missing)" \
  "data_dir_mode=$(stat -c '%U:%G:%a' $data)" \
  "runtime_watchdog_usec=$wd" \
  "cmdline=$(cat /proc/cmdline)" \
  "failed_units=$(systemctl list-units --failed --plain --no-legend | awk '{print $1}' | tr '\n' ' ')"
sync
systemctl --no-block poweroff
