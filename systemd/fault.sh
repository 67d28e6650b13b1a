#!/bin/sh
# tillbox-fault@UNIT: a tillbox service hit its restart limit. Say so where the merchant
# looks (the kiosk's screen, tty1) and in the journal; the unit stays failed for support.
unit="${1:-a tillbox service}"
msg="tillbox: ${unit} keeps failing and was stopped. Switch the kiosk off and on again; if this message comes back, call support and quote: ${unit}"
echo "$msg"
if [ -w /dev/tty1 ]; then
  printf '\033[2J\033[H\n\n  %s\n' "$msg" > /dev/tty1 2>/dev/null || true
fi
