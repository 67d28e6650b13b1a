#!/usr/bin/env bash
# Assemble the SD-card image from a root folder, without loop devices or mounts:
# each partition is built as a file (mkfs.vfat + mcopy, mkfs.ext4 -d), the partition
# table is written with sfdisk, and the partitions are copied in with dd conv=notrunc.
#
#   assemble.sh ROOTDIR IMAGE
#
# Layout (MBR, disk id $TILLBOX_DISKID):
#   1  boot    FAT32  256 MiB  firmware, U-Boot (u-boot.bin), boot.scr (RAUC's A/B logic,
#                               drivers/uboot.py), config.txt, uboot.env once U-Boot
#                               wrote it, tillbox.toml.example (the technician's file)
#   2  root A  ext4   slot     the system (kernel and initrd in its /boot), read-only
#   3  root B  ext4   slot     empty until the first update is written into it
#   4  data    ext4    64 MiB  /data: the till (log, keys), system state, RAUC's status;
#                               grown to the card on first boot
# Both slots are TILLBOX_SLOT_MB (default 2048) so later, bigger releases still fit; the
# root file system itself is sized to fit and kept as $WORK/rootfs.ext4 (the bundles'
# image: make update-bundle).
set -euo pipefail
root=$1
image=$2
HERE=$(cd "$(dirname "$0")" && pwd)
DISKID=${TILLBOX_DISKID:-7111b0c5}
BOOT_MB=${TILLBOX_BOOT_MB:-256}
DATA_MB=${TILLBOX_DATA_MB:-64}
SLOT_MB=${TILLBOX_SLOT_MB:-2048}
PY=${PYTHON:-$(dirname "$HERE")/.venv/bin/python}
[ -x "$PY" ] || PY=python3
work=$(dirname "$image")/parts
firmware=$(dirname "$root")/firmware
rm -rf "$work" && mkdir -p "$work/boot" "$work/data"
export E2FSPROGS_FAKE_TIME=${SOURCE_DATE_EPOCH:-}

# -- boot partition: what raspi-firmware put in /boot/firmware (moved out of the root,
#    which keeps an empty mount point, into $firmware: assembling again reuses it), then
#    U-Boot in place of the kernel: the kernel and initrd come from the booted slot.
if [ -n "$(ls -A "$root/boot/firmware" 2>/dev/null)" ]; then
  rm -rf "$firmware" && mkdir -p "$firmware"
  cp -a "$root/boot/firmware/." "$firmware/"
  find "$root/boot/firmware" -mindepth 1 -delete
fi
cp -a "$firmware/." "$work/boot/"
kernel=$(cd "$work/boot" && ls vmlinuz-* | sort -V | tail -n1)
initrd=$(cd "$work/boot" && ls initrd.img-* | sort -V | tail -n1)
[ -n "$kernel" ] && [ -n "$initrd" ] || { echo "assemble: no kernel/initrd in /boot/firmware"; exit 1; }
rm -f "$work/boot/$kernel" "$work/boot/$initrd"
[ -e "$root/boot/vmlinuz" ] && [ -e "$root/boot/initrd.img" ] \
  || { echo "assemble: the root has no /boot/vmlinuz or /boot/initrd.img (updates.sh)"; exit 1; }
cp "$root/usr/lib/u-boot/rpi_arm64/u-boot.bin" "$work/boot/u-boot.bin"
"$PY" -c 'import sys; from drivers.uboot import boot_script; sys.stdout.write(boot_script(sys.argv[1]))' \
  "$DISKID" > "$work/boot.cmd"
mkimage -q -A arm64 -O linux -T script -C none -n "tillbox A/B boot" -d "$work/boot.cmd" "$work/boot/boot.scr"
cat > "$work/boot/cmdline.txt" <<CMD
console=tty1 console=ttyS1,115200 root=PARTUUID=$DISKID-02 ro rootfstype=ext4 rootwait fsck.repair=yes net.ifnames=0 quiet loglevel=3 logo.nologo vt.global_cursor_default=0
CMD
if ! grep -q '^# tillbox' "$work/boot/config.txt"; then
  cat >> "$work/boot/config.txt" <<CFG

# tillbox: U-Boot (boot.scr picks root slot A or B), KMS/DRM graphics for the kiosk
# (SDL2 kmsdrm), full screen, hardware watchdog
[all]
arm_64bit=1
kernel=u-boot.bin
dtoverlay=vc4-kms-v3d
max_framebuffers=2
disable_overscan=1
dtparam=watchdog=on
CFG
fi
cp "$HERE/tillbox.toml.example" "$work/boot/tillbox.toml.example"
[ -z "${SOURCE_DATE_EPOCH:-}" ] || find "$work/boot" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
boot_kib=$((BOOT_MB * 1024))
rm -f "$work/boot.img"
mkfs.vfat -F 32 -n TILLBOXBOOT -i "$DISKID" -C "$work/boot.img" "$boot_kib" >/dev/null
mcopy -s -p -m -i "$work/boot.img" "$work/boot"/* ::/
echo "assemble: boot $(du -sh "$work/boot" | cut -f1) of ${BOOT_MB} MiB (U-Boot; slots carry $kernel)"

# -- root partition (read-only at run time): its size plus 20 % and 64 MiB headroom
used_mb=$(du -s --block-size=1M --apparent-size "$root" | cut -f1)
root_mb=$(( (used_mb * 120 / 100 + 64 + 3) / 4 * 4 ))
mkfs.ext4 -q -F -L tillbox-root -U "$(printf '%s-0000-4000-8000-000000000002' "$DISKID")" \
  -E "hash_seed=$(printf '%s-0000-4000-8000-000000000012' "$DISKID"),root_owner=0:0" \
  -d "$root" "$work/root.img" "${root_mb}M"
[ "$root_mb" -le "$SLOT_MB" ] || { echo "assemble: the root (${root_mb} MiB) does not fit a ${SLOT_MB} MiB slot; raise TILLBOX_SLOT_MB"; exit 1; }
echo "assemble: root ${used_mb} MiB in ${root_mb} MiB (slots ${SLOT_MB} MiB)"

# -- data partition: the folders systemd and the till expect; no key, no log (the
#    device creates its key on first boot)
mkdir -p "$work/data/till" "$work/data/system/systemd" "$work/data/system/ssh" "$work/data/system/rauc"
chmod 0700 "$work/data/system/ssh"
mkfs.ext4 -q -F -L tillbox-data -U "$(printf '%s-0000-4000-8000-000000000003' "$DISKID")" \
  -E root_owner=0:0 -d "$work/data" "$work/data.img" "${DATA_MB}M"

# -- the disk: 4 MiB alignment, then boot, slot A, slot B, data
start=8192  # sectors of 512 bytes = 4 MiB
boot_sectors=$((BOOT_MB * 2048))
slot_sectors=$((SLOT_MB * 2048))
data_sectors=$((DATA_MB * 2048))
a_start=$((start + boot_sectors))
b_start=$((a_start + slot_sectors))
data_start=$((b_start + slot_sectors))
total_sectors=$((data_start + data_sectors))
rm -f "$image"
truncate -s $((total_sectors * 512)) "$image"
sfdisk --quiet "$image" <<TABLE
label: dos
label-id: 0x$DISKID
unit: sectors

start=$start, size=$boot_sectors, type=c, bootable
start=$a_start, size=$slot_sectors, type=83
start=$b_start, size=$slot_sectors, type=83
start=$data_start, size=$data_sectors, type=83
TABLE
dd if="$work/boot.img" of="$image" bs=1M seek=$((start / 2048)) conv=notrunc,sparse status=none
dd if="$work/root.img" of="$image" bs=1M seek=$((a_start / 2048)) conv=notrunc,sparse status=none
dd if="$work/data.img" of="$image" bs=1M seek=$((data_start / 2048)) conv=notrunc,sparse status=none

# -- checks on the assembled image
e2fsck -fn "$image?offset=$((a_start * 512))" >/dev/null
e2fsck -fn "$image?offset=$((data_start * 512))" >/dev/null
mdir -b -i "$image@@$((start * 512))" ::/ | grep -qx "::/boot.scr"
mv "$work/root.img" "$(dirname "$image")/rootfs.ext4"   # the bundles' root image
echo "assemble: $image $(( total_sectors / 2048 )) MiB (boot ${BOOT_MB}, slots A and B ${SLOT_MB} each, data ${DATA_MB} MiB)"
rm -rf "$work"
