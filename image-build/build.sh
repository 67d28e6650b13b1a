#!/usr/bin/env bash
# Build the tillbox SD-card image for Raspberry Pi 4/5 (arm64) from Debian bookworm.
#
#   image-build/build.sh            -> image-build/out/tillbox-VERSION.img.xz (+ .sha256,
#                                      .manifest.txt, .times.txt)
#
# Settings (environment):
#   TILLBOX_MIRROR           Debian archive (default http://deb.debian.org/debian); for a
#                            byte-for-byte repeatable package set use a snapshot, e.g.
#                            http://snapshot.debian.org/archive/debian/20250520T000000Z
#   TILLBOX_SECURITY_MIRROR  Debian security archive (default deb.debian.org/debian-security;
#                            "none" leaves it out, as you should with a snapshot mirror)
#   TILLBOX_RPI_MIRROR       Raspberry Pi OS archive (optional, e.g.
#                            http://archive.raspberrypi.com/debian); added when reachable
#   TILLBOX_VERSION          image version (default: pyproject.toml's)
#   TILLBOX_XZ_OPT           xz options (default -T0 -1: fast; -T0 -6 is ~10 % smaller)
#   TILLBOX_COMPATIBLE       RAUC's hardware name in the image (default tillbox-rpi4)
#   TILLBOX_RELEASE_CERT     release certificate(s) the image trusts (default: a TEST key
#                            made once in image-build/cache/test-release/)
#   TILLBOX_REUSE_ROOTFS=1   reuse the last build's root folder: only this checkout's
#                            files, wheel and update set-up go in (image-build/refresh.sh)
# Downloaded .deb files and aarch64 wheels are kept in image-build/cache/ and reused.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
export TILLBOX_REPO=$REPO TILLBOX_IMAGE_BUILD=$HERE
CACHE=${TILLBOX_CACHE:-$HERE/cache}
OUT=${TILLBOX_OUT:-$HERE/out}
WORK=$CACHE/work
ROOT=$WORK/rootfs
export TILLBOX_WORK=$WORK TILLBOX_CACHE=$CACHE
export TILLBOX_DISKID=${TILLBOX_DISKID:-7111b0c5}   # MBR disk id: root=PARTUUID=7111b0c5-02
MIRROR=${TILLBOX_MIRROR:-http://deb.debian.org/debian}
SECURITY=${TILLBOX_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
RPI=${TILLBOX_RPI_MIRROR:-}
XZ_OPT=${TILLBOX_XZ_OPT:--T0 -1}
PY=${PYTHON:-$REPO/.venv/bin/python}
[ -x "$PY" ] || PY=python3
VERSION=${TILLBOX_VERSION:-$("$PY" -c 'import tomllib,sys; print(tomllib.load(open(sys.argv[1],"rb"))["project"]["version"])' "$REPO/pyproject.toml")}
export TILLBOX_VERSION=$VERSION
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || date +%s)}

if [ "$(id -u)" != 0 ]; then
  echo "image-build: run as root (mmdebstrap needs it to build the root file system)"; exit 1
fi
mkdir -p "$CACHE/debs" "$CACHE/wheels" "$OUT" "$WORK"
# One build at a time: the cache and the work folder are shared.
exec 9>"$CACHE/build.lock"
flock -n 9 || { echo "image-build: another build is running (lock $CACHE/build.lock); wait for it"; exit 1; }

START=$(date +%s)
TIMES=$WORK/times.txt
: > "$TIMES"
step_start=$START
step() {
  local now; now=$(date +%s)
  if [ -n "${step_name:-}" ]; then echo "$step_name $((now - step_start))" >> "$TIMES"; fi
  step_name=$1; step_start=$now
  echo "==> [$((now - START))s] $1: ${2:-}"
}

step host-deps "Debian packages and binfmt on the build host"
"$HERE/host-deps.sh" build

step wheels "our wheel and aarch64/cp311 wheels of its dependencies (cache: $CACHE/wheels)"
rm -rf "$WORK/dist" && mkdir -p "$WORK/dist"
"$PY" -m pip wheel --quiet --no-deps -w "$WORK/dist" "$REPO"
OURWHEEL=$(ls "$WORK/dist"/tillbox-*.whl)
"$PY" -m pip download --quiet --dest "$CACHE/wheels" --only-binary=:all: \
  --implementation cp --python-version 3.11 --abi cp311 --abi abi3 --abi none \
  --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 \
  --platform manylinux_2_28_aarch64 --platform manylinux_2_31_aarch64 \
  --platform manylinux_2_34_aarch64 --platform linux_aarch64 --platform any \
  "$OURWHEEL" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
rm -f "$CACHE/wheels"/tillbox-*.whl   # pip copies our own wheel there too; never reuse it
export TILLBOX_WHEEL=$OURWHEEL TILLBOX_WHEELS=$CACHE/wheels

if [ -n "${TILLBOX_REUSE_ROOTFS:-}" ] && [ -x "$ROOT/opt/tillbox/venv/bin/tillbox" ]; then
  step refresh "reusing $ROOT (TILLBOX_REUSE_ROOTFS): this checkout's files and wheel"
  "$HERE/refresh.sh" all "$ROOT"
  sources=("(reused root: see the first build's sources)")
else
  step rootfs "mmdebstrap bookworm arm64 (debs cached in $CACHE/debs)"
  if findmnt -rn -o TARGET | grep -q "^$ROOT"; then
    echo "image-build: something is still mounted under $ROOT; unmount it first"; exit 1
  fi
  rm -rf "$ROOT"
  sources=("deb $MIRROR bookworm main non-free-firmware"
           "deb $MIRROR bookworm-updates main non-free-firmware")
  if [ "$SECURITY" != none ]; then
    sources+=("deb $SECURITY bookworm-security main non-free-firmware")
  fi
  if [ -n "$RPI" ]; then
    if curl -fsS --max-time 10 -o /dev/null "$RPI/dists/bookworm/InRelease" 2>/dev/null; then
      echo "image-build: adding the Raspberry Pi OS archive $RPI"
      sources+=("deb [trusted=no] $RPI bookworm main")
    else
      echo "image-build: $RPI is not reachable; building from Debian's archive alone"
    fi
  fi
  packages=$(grep -v '^#' "$HERE/packages.txt" | tr -s ' \n' ',' | sed 's/^,//; s/,$//')
  mmdebstrap --mode=root --format=directory --arch=arm64 --variant=minbase \
    --include="$packages" \
    --aptopt='Acquire::Retries "3"' \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --skip=essential/unlink \
    --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
    --setup-hook="sync-in $CACHE/debs /var/cache/apt/archives/" \
    --essential-hook="$HERE/hold-initramfs.sh" \
    --customize-hook="sync-out /var/cache/apt/archives $CACHE/debs" \
    --customize-hook="$HERE/customize.sh" \
    bookworm "$ROOT" "${sources[@]}"
fi

step assemble "partitions and disk image (no loop devices)"
"$HERE/assemble.sh" "$ROOT" "$WORK/tillbox-$VERSION.img"

step compress "xz $XZ_OPT"
NAME=tillbox-$VERSION
rm -f "$OUT/$NAME.img.xz"
xz $XZ_OPT -c "$WORK/$NAME.img" > "$OUT/$NAME.img.xz.tmp"
mv "$OUT/$NAME.img.xz.tmp" "$OUT/$NAME.img.xz"
(cd "$OUT" && sha256sum "$NAME.img.xz" > "$NAME.img.xz.sha256")
{
  echo "# tillbox $VERSION image manifest"
  dirty=$(git -C "$REPO" status --porcelain -- appliance drivers ui sync_agent edge compliance \
    systemd image-build pyproject.toml 2>/dev/null | head -n1 || true)
  echo "# git $(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)${dirty:+ plus uncommitted changes}"
  echo "# sources: ${sources[*]}"
  echo "# Debian packages (name version architecture)"
  cat "$WORK/manifest-debs.txt"
  echo "# Python packages in /opt/tillbox/venv"
  cat "$WORK/manifest-python.txt"
} > "$OUT/$NAME.manifest.txt"
step done ""
total=$(( $(date +%s) - START ))
echo "total $total" >> "$TIMES"
cp "$TIMES" "$OUT/$NAME.times.txt"
echo "image-build: $OUT/$NAME.img.xz ($(du -h "$OUT/$NAME.img.xz" | cut -f1)) in ${total}s"
cat "$OUT/$NAME.img.xz.sha256"
