#!/usr/bin/env bash
# mmdebstrap essential hook: hold update-initramfs back until customize.sh runs it once.
# (linux-image-arm64 and raspi-firmware would otherwise each build it, ~15 min apiece
# under emulation.)
set -euo pipefail
root=$1
chroot "$root" dpkg-divert --quiet --local --rename --divert /usr/sbin/update-initramfs.tillbox \
  --add /usr/sbin/update-initramfs
cat > "$root/usr/sbin/update-initramfs" <<'SH'
#!/bin/sh
echo "update-initramfs: held back until the end of the tillbox image build"
SH
chmod 0755 "$root/usr/sbin/update-initramfs"
