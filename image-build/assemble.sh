#!/usr/bin/env bash
# Assemble the SD-card image from a root folder, without loop devices or mounts:
# each partition is built as a file (mkfs.vfat + mcopy, mkfs.ext4 -d), the partition
# table is written with sfdisk, and the partitions are copied in with dd conv=notrunc.
#
#   assemble.sh ROOTDIR IMAGE
#
# Layout (MBR, disk id $TILLBOX_DISKID):
#   1  boot  FAT32  256 MiB  firmware, kernel, initrd, config.txt, cmdline.txt,
#                             tillbox.toml.example (the technician's file)
#   2  root  ext4   sized to fit, mounted read-only
#   3  data  ext4    64 MiB  /data: the till (log, keys), system state; grown to the
#                             card on first boot
set -euo pipefail
root=$1
image=$2
HERE=$(cd "$(dirname "$0")" && pwd)
DISKID=${TILLBOX_DISKID:-7111b0c5}
BOOT_MB=${TILLBOX_BOOT_MB:-256}
DATA_MB=${TILLBOX_DATA_MB:-64}
work=$(dirname "$image")/parts
rm -rf "$work" && mkdir -p "$work/boot" "$work/data"
export E2FSPROGS_FAKE_TIME=${SOURCE_DATE_EPOCH:-}

# -- boot partition: what raspi-firmware put in /boot/firmware, plus our files
cp -a "$root/boot/firmware/." "$work/boot/"
find "$root/boot/firmware" -mindepth 1 -delete   # the root keeps an empty mount point
kernel=$(cd "$work/boot" && ls vmlinuz-* | sort -V | tail -n1)
initrd=$(cd "$work/boot" && ls initrd.img-* | sort -V | tail -n1)
[ -n "$kernel" ] && [ -n "$initrd" ] || { echo "assemble: no kernel/initrd in /boot/firmware"; exit 1; }
cat > "$work/boot/cmdline.txt" <<CMD
console=tty1 console=ttyS1,115200 root=PARTUUID=$DISKID-02 ro rootfstype=ext4 rootwait fsck.repair=yes net.ifnames=0 quiet loglevel=3 logo.nologo vt.global_cursor_default=0
CMD
if ! grep -q '^# tillbox' "$work/boot/config.txt"; then
  cat >> "$work/boot/config.txt" <<CFG

# tillbox: KMS/DRM graphics for the kiosk (SDL2 kmsdrm), full screen, hardware watchdog
[all]
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
echo "assemble: boot $(du -sh "$work/boot" | cut -f1) of ${BOOT_MB} MiB ($kernel, $initrd)"

# -- root partition (read-only at run time): its size plus 20 % and 64 MiB headroom
used_mb=$(du -s --block-size=1M --apparent-size "$root" | cut -f1)
root_mb=$(( (used_mb * 120 / 100 + 64 + 3) / 4 * 4 ))
mkfs.ext4 -q -F -L tillbox-root -U "$(printf '%s-0000-4000-8000-000000000002' "$DISKID")" \
  -E "hash_seed=$(printf '%s-0000-4000-8000-000000000012' "$DISKID"),root_owner=0:0" \
  -d "$root" "$work/root.img" "${root_mb}M"
echo "assemble: root ${used_mb} MiB in ${root_mb} MiB"

# -- data partition: the folders systemd and the till expect; no key, no log (the
#    device creates its key on first boot)
mkdir -p "$work/data/till" "$work/data/system/systemd" "$work/data/system/ssh"
chmod 0700 "$work/data/system/ssh"
mkfs.ext4 -q -F -L tillbox-data -U "$(printf '%s-0000-4000-8000-000000000003' "$DISKID")" \
  -E root_owner=0:0 -d "$work/data" "$work/data.img" "${DATA_MB}M"

# -- the disk: 4 MiB alignment, then boot, root, data
start=8192  # sectors of 512 bytes = 4 MiB
boot_sectors=$((BOOT_MB * 2048))
root_sectors=$((root_mb * 2048))
data_sectors=$((DATA_MB * 2048))
root_start=$((start + boot_sectors))
data_start=$((root_start + root_sectors))
total_sectors=$((data_start + data_sectors))
rm -f "$image"
truncate -s $((total_sectors * 512)) "$image"
sfdisk --quiet "$image" <<TABLE
label: dos
label-id: 0x$DISKID
unit: sectors

start=$start, size=$boot_sectors, type=c, bootable
start=$root_start, size=$root_sectors, type=83
start=$data_start, size=$data_sectors, type=83
TABLE
dd if="$work/boot.img" of="$image" bs=1M seek=$((start / 2048)) conv=notrunc,sparse status=none
dd if="$work/root.img" of="$image" bs=1M seek=$((root_start / 2048)) conv=notrunc,sparse status=none
dd if="$work/data.img" of="$image" bs=1M seek=$((data_start / 2048)) conv=notrunc,sparse status=none

# -- checks on the assembled image
e2fsck -fn "$image?offset=$((root_start * 512))" >/dev/null
e2fsck -fn "$image?offset=$((data_start * 512))" >/dev/null
mdir -i "$image@@$((start * 512))" ::/ | grep -qi cmdline
echo "assemble: $image $(( total_sectors / 2048 )) MiB (boot ${BOOT_MB}, root ${root_mb}, data ${DATA_MB} MiB)"
rm -rf "$work"
