#!/usr/bin/env bash
# The A/B update part of the root (customize.sh runs it; so does a refresh build):
# RAUC's /etc/rauc/system.conf (drivers.rauc.system_conf: slots A = p2, B = p3 by
# PARTUUID, U-Boot, its status on the data partition), the release keyring, libubootenv's
# /etc/fw_env.config (U-Boot's environment: uboot.env in the boot partition), the
# booted slot's kernel and initrd under fixed names (boot.scr loads them from the slot),
# and the units (rauc's service, whose unit and D-Bus files tillbox ships: Debian's
# package has none; tillbox-update-check; tillbox-update-request.path, which hands the
# kiosk's install and restart to root; never rauc-mark-good, which would
# commit every boot without a health check).
#   updates.sh ROOT
# Settings: TILLBOX_COMPATIBLE (default tillbox-rpi4), TILLBOX_RELEASE_CERT (the release
# certificate(s) the tills trust; default: a test release key made once in
# $TILLBOX_CACHE/test-release/, for test images only).
set -euo pipefail
root=$1
REPO=${TILLBOX_REPO:?run through build.sh}
DISKID=${TILLBOX_DISKID:?run through build.sh}
CACHE=${TILLBOX_CACHE:-$(dirname "$0")/cache}
COMPATIBLE=${TILLBOX_COMPATIBLE:-tillbox-rpi4}
PY=${PYTHON:-$REPO/.venv/bin/python}
TB=$(dirname "$PY")/tillbox
cert=${TILLBOX_RELEASE_CERT:-}
if [ -z "$cert" ]; then
  cert=$CACHE/test-release/release.pem
  if [ ! -f "$cert" ]; then
    echo "updates: no TILLBOX_RELEASE_CERT; making a TEST release key in $CACHE/test-release"
    "$TB" edge release keygen --key "$CACHE/test-release/release.key" --cert "$cert" \
      --name "tillbox TEST release (not for tills in the field)"
  fi
fi
install -D -m 0644 "$cert" "$root/etc/rauc/keyring.pem"
"$PY" - "$root/etc/rauc/system.conf" "$COMPATIBLE" "$DISKID" <<'PYEOF'
import sys
from pathlib import Path
from drivers.rauc import system_conf
out, compatible, diskid = sys.argv[1:]
Path(out).write_text(system_conf(
    compatible,
    {name: Path(f"/dev/disk/by-partuuid/{diskid}-0{n}") for name, n in (("A", 2), ("B", 3))},
    keyring=Path("/etc/rauc/keyring.pem"),
    data_directory=Path("/data/system/rauc"),
    mount_prefix=Path("/run/rauc"),  # the root is read-only
))
PYEOF
# The environment's file, its offset in it and its size (drivers.uboot.ENV_SIZE).
printf '# tillbox: U-Boot environment, uboot.env on the boot partition\n/boot/firmware/uboot.env 0x0000 0x4000\n' \
  > "$root/etc/fw_env.config"
rm -rf "$root/etc/systemd/system/rauc.service.d"  # (earlier builds' drop-in: in the unit now)
ln -sfn /dev/null "$root/etc/systemd/system/rauc-mark-good.service"
kver=$(ls "$root/lib/modules" | sort -V | tail -n1)
[ -f "$root/boot/vmlinuz-$kver" ] && [ -f "$root/boot/initrd.img-$kver" ] \
  || { echo "updates: no /boot/vmlinuz-$kver or initrd in the root"; exit 1; }
ln -sfn "vmlinuz-$kver" "$root/boot/vmlinuz"
ln -sfn "initrd.img-$kver" "$root/boot/initrd.img"
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin systemctl enable tillbox-update-check.service \
  tillbox-update-apply.timer tillbox-update-request.path rauc.service
echo "updates: RAUC for $COMPATIBLE, keyring $(basename "$cert"), kernel $kver"
