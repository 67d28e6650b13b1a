#!/usr/bin/env bash
# Install what the image build needs on the build host (Debian bookworm), saying what,
# and make arm64 programs runnable (qemu-user through binfmt_misc). arch-test is only a
# Recommends of mmdebstrap, but mmdebstrap refuses a foreign-architecture root without it.
#   image-build/host-deps.sh [build|boot]
set -euo pipefail
need=(mmdebstrap u-boot-tools arch-test qemu-user-static dosfstools mtools e2fsprogs fdisk xz-utils util-linux
      python3-venv ca-certificates debian-archive-keyring)
if [ "${1:-build}" = boot ]; then
  need+=(qemu-system-arm u-boot-qemu socat)  # socat: the update test's HTTPS relay into the guest
fi
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "image-build: installing Debian packages the image build needs: ${missing[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    || { echo "image-build: could not install ${missing[*]}; install them with apt-get and retry"; exit 1; }
fi

# arm64 binaries inside the chroot run through qemu-aarch64-static. The F flag makes the
# kernel open the interpreter now, so it works inside the chroot without copying it in.
if [ "$(uname -m)" != aarch64 ]; then
  binfmt=/proc/sys/fs/binfmt_misc
  if [ ! -e "$binfmt/register" ]; then
    mount -t binfmt_misc binfmt_misc "$binfmt" \
      || { echo "image-build: cannot mount binfmt_misc; run as root (or on an arm64 host)"; exit 1; }
  fi
  if [ ! -e "$binfmt/qemu-aarch64" ]; then
    echo "image-build: registering qemu-aarch64 with binfmt_misc"
    cat /usr/lib/binfmt.d/qemu-aarch64.conf > "$binfmt/register"
  fi
  grep -q enabled "$binfmt/qemu-aarch64" \
    || { echo "image-build: qemu-aarch64 binfmt entry is disabled; echo 1 > $binfmt/qemu-aarch64"; exit 1; }
fi
