#!/usr/bin/env bash
# mmdebstrap customize hook: turn the Debian root into the tillbox kiosk root.
#   $1 = the root folder (on the build host). Settings come from build.sh's environment.
set -euo pipefail
root=$1
REPO=${TILLBOX_REPO:?run through build.sh}
HERE=${TILLBOX_IMAGE_BUILD:?run through build.sh}
WORK=${TILLBOX_WORK:?run through build.sh}
DISKID=${TILLBOX_DISKID:?run through build.sh}
# Commands inside the arm64 root, with a clean environment: the host's PIP_* and
# PYTHON* settings point at paths the image does not have.
in_root() {
  chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-0}" "$@"
}
say() { echo "customize [$(date +%T)]: $*"; }

say "system files (image-build/rootfs) and the units (image-build/files.txt)"
"$HERE/refresh.sh" files "$root"

say "users (sysusers.d): kiosk, tillbox-sync, tillbox-edge; no passwords"
in_root systemd-sysusers
in_root passwd --lock root >/dev/null
# No account may have a usable password hash.
if awk -F: '$2 ~ /^\$/ {print $1; bad=1} END {exit !bad}' "$root/etc/shadow"; then
  echo "customize: the accounts above have passwords; refusing to build"; exit 1
fi

say "the app: venv in /opt/tillbox/venv from wheels downloaded on the host"
rm -rf "$root/tmp/wheels" && mkdir -p "$root/tmp/wheels"
cp "$TILLBOX_WHEELS"/*.whl "$root/tmp/wheels/"
cp -f "$TILLBOX_WHEEL" "$root/tmp/wheels/"   # this build's own wheel, never a cached one
in_root python3 -m venv /opt/tillbox/venv
in_root /opt/tillbox/venv/bin/python -m pip install --quiet --no-index \
  --find-links /tmp/wheels --disable-pip-version-check "tillbox"
in_root /opt/tillbox/venv/bin/tillbox --version
rm -rf "$root/tmp/wheels"
ln -sf /opt/tillbox/venv/bin/tillbox "$root/usr/local/bin/tillbox"

say "read-only root: state lives on the data partition (/data) or in RAM"
mkdir -p "$root/data" "$root/var/lib/tillbox" "$root/boot/firmware"
ln -sfn /data/system/localtime "$root/etc/localtime"
mkdir -p "$root/etc/wpa_supplicant"
ln -sfn /data/system/wpa_supplicant-wlan0.conf "$root/etc/wpa_supplicant/wpa_supplicant-wlan0.conf"
ln -sfn ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
: > "$root/etc/machine-id"   # empty: systemd uses a transient id on the read-only root
rm -f "$root/var/lib/dbus/machine-id"
rm -f "$root"/etc/ssh/ssh_host_*   # never ship host keys; the device makes its own

say "services: enable tillbox and the network, switch off what a kiosk must not run"
in_root systemctl enable tillbox-provision.service tillbox-selftest.service \
  tillbox-ui.service tillbox-sync.service systemd-networkd.service \
  systemd-resolved.service systemd-timesyncd.service ssh.service
in_root systemctl set-default multi-user.target
# Wi-Fi starts when a wlan0 appears and the provisioning gave it a network.
mkdir -p "$root/etc/systemd/system/sys-subsystem-net-devices-wlan0.device.wants"
ln -sfn /usr/lib/systemd/system/wpa_supplicant@.service \
  "$root/etc/systemd/system/sys-subsystem-net-devices-wlan0.device.wants/wpa_supplicant@wlan0.service"
mkdir -p "$root/etc/systemd/system/wpa_supplicant@wlan0.service.d"
printf '[Unit]\nConditionPathExists=/data/system/wpa_supplicant-wlan0.conf\nRequiresMountsFor=/data\n' \
  > "$root/etc/systemd/system/wpa_supplicant@wlan0.service.d/tillbox.conf"
# No logins on any console (accounts have no passwords anyway); the kiosk owns tty1.
for unit in getty@.service serial-getty@.service autovt@.service ssh.socket \
    systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer \
    e2scrub_all.timer e2scrub_reap.service fstrim.timer dpkg-db-backup.timer; do
  ln -sfn /dev/null "$root/etc/systemd/system/$unit"
done

say "kernel command line and firmware settings"
cat > "$root/etc/default/raspi-firmware" <<CFG
# tillbox: root by partition UUID, read-only; serial console on the GPIO UART
ROOTPART=PARTUUID=$DISKID-02
CONSOLES="ttyS1,115200 tty0"
CMA=64M
CFG

say "initramfs, once, with MODULES=list"
rm -f "$root/usr/sbin/update-initramfs"
in_root dpkg-divert --quiet --local --rename --divert /usr/sbin/update-initramfs.tillbox \
  --remove /usr/sbin/update-initramfs
kver=$(ls "$root/lib/modules" | sort -V | tail -n1)
in_root update-initramfs -c -k "$kver"
in_root /etc/kernel/postinst.d/z50-raspi-firmware "$kver" || true

say "A/B updates: RAUC, its keyring, U-Boot's environment, the update check"
"$HERE/updates.sh" "$root"

say "manifest"
in_root dpkg-query -W -f='${Package} ${Version} ${Architecture}\n' | LC_ALL=C sort \
  > "$WORK/manifest-debs.txt"
in_root /opt/tillbox/venv/bin/python -m pip list --format=freeze --disable-pip-version-check \
  | LC_ALL=C sort > "$WORK/manifest-python.txt"

say "clean up"
# (The .deb files were copied to image-build/cache/debs by the sync-out hook before this.)
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/* \
  "$root"/var/cache/apt/archives/*.deb \
  "$root"/tmp/* "$root"/var/tmp/* "$root"/root/.cache
# The root never changes after this: mark /etc and /var as up to date, so
# ConditionNeedsUpdate= units (ldconfig, ...) do not try to write to it at boot.
: > "$root/etc/.updated"
: > "$root/var/.updated"
