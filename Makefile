# tillbox: the two front-door commands are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA   ?= data
STAMP  := $(VENV)/.installed-stamp

# Debian packages, installed with apt-get when missing (saying which):
# - the kiosk itself: Mesa GL and mtdev for Kivy's window and touch, fonts for the
#   receipt preview, libusb for usb:// receipt printers (pyusb's backend);
# - the test suite, on top: a real broker (mosquitto, openssl for its TLS test), a real
#   PostgreSQL server (the suite starts its own cluster on a free port), a real X server
#   with real input events (xvfb, xdotool), systemd-analyze for the units, and a real
#   browser for the region console (chromium, driven by Playwright, whose own node
#   driver links libatomic: a minimal root lacks it);
# - the update tests: Debian's rauc (bundles, and its service on a private D-Bus bus over
#   file slots), squashfs-tools and e2fsprogs for bundles and root images, libubootenv's
#   fw_printenv/fw_setenv (RAUC's U-Boot backend) and u-boot-tools' mkenvimage; strace, to
#   check the units' system call filters against what `rauc status` really calls.
RUN_PACKAGES    ?= libgl1 libegl1 libgl1-mesa-dri libmtdev1 fonts-dejavu-core libusb-1.0-0
UPDATE_PACKAGES ?= rauc squashfs-tools e2fsprogs libubootenv-tool u-boot-tools dbus strace
SYSTEM_PACKAGES ?= $(RUN_PACKAGES) mosquitto openssl postgresql xvfb xdotool systemd chromium libatomic1 \
                   $(UPDATE_PACKAGES)

# $(call apt_install,PACKAGES,WHY): install those of PACKAGES that dpkg does not have.
define apt_install
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "make: installing Debian packages $(2):$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing \
	    || { echo "make: could not install$$missing; install them with apt-get and run make again"; exit 1; }; \
	fi
endef

.PHONY: region run test lint format bench bench-console system-deps run-deps python-venv venv clean image image-test \
        update-bundle update-test

venv: $(STAMP)

# On a Raspberry Pi, picamera2 comes from Raspberry Pi OS (python3-picamera2); create
# the venv with `make VENV_FLAGS=--system-site-packages` there so the venv can see it.
# Debian's python3 has no ensurepip until python3-venv is installed.
$(STAMP): pyproject.toml
	@if [ ! -x $(BIN)/python ] && ! $(PYTHON) -c "import ensurepip, venv" 2>/dev/null; then \
	  $(MAKE) --no-print-directory python-venv; fi
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

python-venv:
	$(call apt_install,python3-venv,to create the virtual environment)

system-deps:
	$(call apt_install,$(SYSTEM_PACKAGES),the tests need)

run-deps:
	$(call apt_install,$(RUN_PACKAGES),the kiosk needs)

# The kiosk with simulated hardware on the embedded SQLite log, in ./$(DATA).
# The first run creates a demo till: demo catalog, an enrollment with a permit "scanned"
# by the simulated camera (so the self-test passes), and technician PIN 0000.
run: $(STAMP) run-deps
	@if [ ! -f $(DATA)/tillbox.toml ]; then \
	  $(BIN)/tillbox init --data-dir $(DATA) --device-id demo-till --demo && \
	  $(BIN)/tillbox enroll --data-dir $(DATA) --operator "Demo Operator" \
	    --business "Riverside Makers' Stall" --permit "market-trading:DEMO-PERMIT-2026:2030-12-31:camera" \
	    --photo "stall:camera" --attestation "Demo till: electrical set-up checked by the operator." \
	    --confirm --no-labels && \
	  echo 0000 | $(BIN)/tillbox kiosk --data-dir $(DATA) --set-technician-pin && \
	  echo "make: demo till created in $(DATA)/ (technician PIN 0000)"; \
	fi
	$(BIN)/tillbox kiosk --data-dir $(DATA)

# The whole region on this machine: broker, edge, console and two tills that sell
# (systest/region.py). Open the console at http://127.0.0.1:8080/; logins in
# region-demo/logins.txt.
region: $(STAMP) system-deps
	$(BIN)/python -m systest.region --dir region-demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: $(STAMP) system-deps lint
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/commit.py
	$(BIN)/python hil/bench_streaming.py
	$(BIN)/python -P bench/drain.py  # -P: bench/ui.py must not shadow the ui package
	$(BIN)/python bench/compliance_bundle.py
	$(BIN)/python bench/ui.py
	$(BIN)/python -P bench/update_download.py

# The region console's benchmark (bench/console.py; figures in docs/performance.md,
# "Region console"): a month of 200 tills, 1,000,000 events, through the real ingest into
# a PostgreSQL cluster of its own, then every page timed through uvicorn. Heavy (about half
# an hour on two busy cores); a smaller run:
#   make bench-console BENCH_CONSOLE_ARGS="--events 100000 --tills 50"
BENCH_CONSOLE_ARGS ?=
bench-console: $(STAMP)
	$(call apt_install,postgresql,the console benchmark needs)
	$(BIN)/python -P bench/console.py $(BENCH_CONSOLE_ARGS)  # -P: bench/ must not shadow console

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache

# The SD-card image (Debian bookworm arm64, Raspberry Pi 4/5): image-build/build.sh
# installs the Debian packages it needs (mmdebstrap, qemu-user-static, mtools, ...) and
# says which. Needs root. Output: image-build/out/tillbox-VERSION.img.xz (+ .sha256,
# .manifest.txt). See docs/technician.md.
image: $(STAMP)
	image-build/build.sh

# Build the image and boot it under QEMU with a provisioning file (slow; see
# docs/performance.md). TILLBOX_IMAGE=FILE.img.xz boots an existing image instead.
image-test: $(STAMP) system-deps
	image-build/host-deps.sh boot
	TILLBOX_IMAGE_TEST=1 $(BIN)/python -m pytest tests/image/test_boot.py tests/image/test_kiosk.py -v -s

# A signed RAUC bundle of the last image build's root file system (its rootfs.ext4):
#   make update-bundle UPDATE_VERSION=2.1.0 [UPDATE_COMPATIBLE=tillbox-rpi4]
#       [RELEASE_CERT=release.pem RELEASE_KEY=release.key]
# Without RELEASE_CERT/KEY it signs with the TEST release key the image build made (only
# test images trust it). Output: image-build/out/tillbox-COMPATIBLE-VERSION.raucb.
IMAGE_WORK        ?= image-build/cache/work
UPDATE_COMPATIBLE ?= tillbox-rpi4
RELEASE_CERT      ?= image-build/cache/test-release/release.pem
RELEASE_KEY       ?= image-build/cache/test-release/release.key
update-bundle: $(STAMP)
	@test -n "$(UPDATE_VERSION)" || { echo "make: say the bundle's version: make update-bundle UPDATE_VERSION=2.1.0"; exit 2; }
	@test -f $(IMAGE_WORK)/rootfs.ext4 || { echo "make: no $(IMAGE_WORK)/rootfs.ext4; build the image first (make image)"; exit 2; }
	mkdir -p image-build/out
	rm -f image-build/out/tillbox-$(UPDATE_COMPATIBLE)-$(UPDATE_VERSION).raucb
	$(BIN)/tillbox edge release build --rootfs $(IMAGE_WORK)/rootfs.ext4 \
	  --version $(UPDATE_VERSION) --compatible $(UPDATE_COMPATIBLE) \
	  --cert $(RELEASE_CERT) --key $(RELEASE_KEY) \
	  --out image-build/out/tillbox-$(UPDATE_COMPATIBLE)-$(UPDATE_VERSION).raucb

# The A/B update test under QEMU through U-Boot, with a display (tests/image/test_update.py):
# v1 -> v2 delivered online by the region on the host (mosquitto, the edge, the console
# over HTTPS) and committed once the kiosk draws, a v3 whose kiosk exits rolled back, a
# power cut mid-install, the refusals. Builds the image unless TILLBOX_IMAGE names one
# (then its rootfs.ext4 must be beside it in $(IMAGE_WORK)). Slow: see docs/performance.md.
update-test: $(STAMP) system-deps
	image-build/host-deps.sh boot
	TILLBOX_IMAGE_TEST=1 $(BIN)/python -m pytest tests/image/test_update.py -v -s -p no:cacheprovider
