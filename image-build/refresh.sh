#!/usr/bin/env bash
# Put this checkout's files into an existing root, without rebuilding it:
#   refresh.sh files ROOT   the system files (image-build/rootfs) and the install map
#                           (image-build/files.txt); customize.sh runs this too
#   refresh.sh all ROOT     files, then this build's tillbox wheel into /opt/tillbox/venv
#                           and the A/B update set-up (updates.sh): what
#                           `TILLBOX_REUSE_ROOTFS=1 image-build/build.sh` does instead of
#                           a new mmdebstrap (minutes instead of the root's ~10)
set -euo pipefail
what=$1
root=$2
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=${TILLBOX_REPO:-$(dirname "$HERE")}
DISKID=${TILLBOX_DISKID:?run through build.sh}
cp -a --no-preserve=ownership "$HERE/rootfs/." "$root/"
sed -i "s/@DISKID@/$DISKID/g" "$root/etc/fstab"
grep -v '^#' "$HERE/files.txt" | while read -r src dest mode; do
  [ -n "$src" ] || continue
  install -D -m "$mode" -o root -g root "$REPO/$src" "$root$dest"
done
[ "$what" = all ] || exit 0
wheel=${TILLBOX_WHEEL:?run through build.sh}
rm -rf "$root/tmp/wheels" && mkdir -p "$root/tmp/wheels"
cp "$wheel" "$root/tmp/wheels/"
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 \
  /opt/tillbox/venv/bin/python -m pip install --quiet --no-index --no-deps --force-reinstall \
  --disable-pip-version-check "/tmp/wheels/$(basename "$wheel")"
rm -rf "$root/tmp/wheels" "$root/root/.cache"
"$HERE/updates.sh" "$root"
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
  /opt/tillbox/venv/bin/python -m pip list --format=freeze --disable-pip-version-check \
  | LC_ALL=C sort > "${TILLBOX_WORK:?}/manifest-python.txt"
