"""Test helpers for compliance, shared by the test packages (like drivers.testing).

Probes that behave as told (paper runs out, the engraver alarms), tiny real images, a
demo till with sales and an enrollment of it, all on real files.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w
from nacl.signing import SigningKey
from PIL import Image

from appliance.datadir import DataDir
from appliance.pricing import CartLine
from appliance.till import Till
from compliance.probes import Reading


def png_bytes(width: int = 64, height: int = 48, color: tuple = (20, 120, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


def jpeg_bytes(width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 60, 10)).save(out, "JPEG")
    return out.getvalue()


@dataclass
class FakeProbes:
    """Devices with state: paper runs out, the engraver alarms, the camera breaks.

    ``None`` for a device means it is not fitted (``none://``); ``missing`` lists
    devices that are configured but do not answer (unplugged).
    """

    paper: str = "ok"
    printer_online: bool = True
    grbl_state: str = "Idle"
    laser_mode: bool | None = True
    alarm: int | None = None
    frame: bytes | None = field(default_factory=png_bytes)
    power_good: bool | None = True
    earth_ok: bool | None = True
    missing: set = field(default_factory=set)
    not_fitted: set = field(default_factory=set)
    labels: list = field(default_factory=list)
    closed: bool = False

    def read(self, kind: str) -> Reading:
        if kind in self.not_fitted:
            return Reading(False, f"no {kind} is configured", configured=False)
        if kind in self.missing:
            return Reading(False, f"{kind} at usb://1234:5678 is not connected; plug it in")
        if kind == "printer":
            ok = self.printer_online and self.paper != "out"
            return Reading(
                ok,
                "ready" if ok else "printer is out of paper",
                {"online": self.printer_online, "paper": self.paper},
            )
        if kind == "engraver":
            return Reading(
                self.grbl_state == "Idle" and not self.alarm,
                self.grbl_state,
                {
                    "state": self.grbl_state,
                    "laser_mode": self.laser_mode,
                    "alarm": self.alarm,
                    "version": "Grbl 1.1h",
                },
            )
        if kind == "camera":
            return Reading(True, "ready", {})
        if kind == "gpio":
            return Reading(
                True, "ready", {"power_good": self.power_good, "earth_ok": self.earth_ok}
            )
        raise AssertionError(kind)

    def capture(self) -> tuple[bytes | None, str]:
        if "camera" in self.missing or "camera" in self.not_fitted:
            return None, "camera is not connected"
        return self.frame, "" if self.frame else "empty frame"

    def print_label(self, qr_payload: str, lines: list[str]) -> str:
        if "printer" in self.missing or self.paper == "out":
            return "printer is out of paper"
        self.labels.append((qr_payload, lines))
        return ""

    def close(self) -> None:
        self.closed = True


def till_with_sales(root: Path, device_id: str = "till-1") -> DataDir:
    ddir = DataDir(root)
    with Till.init(ddir, device_id, demo=True) as till:
        till.open_shift()
        till.sell([CartLine("MUG-01", 2)], "cash")
        till.sell([CartLine("MUG-01", 1), CartLine("KEYRING-ENG", 1)], "card")
        sale = till.sell([CartLine("MUG-01", 3)], "cash")
        till.refund(sale.payload["sale_id"], [("MUG-01", 1)])
    return ddir


def enroll_till(
    ddir: DataDir,
    permit: Path,
    photo: Path,
    probes: FakeProbes | None = None,
    expires: str = "2099-12-31",
) -> dict:
    from compliance import enroll

    data = enroll.EnrollmentInput(
        operator="Ann Trader",
        business="Riverside Makers",
        registration="HRB 1234",
        address="1 Market Sq",
        permits=[enroll.PermitInput("trading", "TP-2291", expires, str(permit))],
        photos=[enroll.PhotoInput("engraver", str(photo))],
        attestation="The electrical set-up was checked by a qualified person.",
        confirmed=True,
        assets=[("ENG-1", "Laser engraver"), ("", "Receipt printer")],
    )
    with Till.open(ddir) as till:
        return enroll.enroll(till, data, probes)


REGION = SigningKey(bytes(range(32, 64)))  # the region seed of docs/formats.md (section 4)
REGION_PUB = REGION.verify_key.encode().hex()


def set_region_key(ddir: DataDir, value: str) -> None:
    """Give the till the region's public key the agent checks acks with."""
    config = ddir.load_config()
    config.update("sync", region_public_key=value)
    ddir.config_path.write_text(tomli_w.dumps(config.data))


def forge_bundle(
    src: Path,
    dst: Path,
    ddir: DataDir | None,
    change: Callable[[str, bytes], bytes | None],
    *,
    add: dict[str, bytes] | None = None,
    key: SigningKey | None = None,
) -> None:
    """What a till's owner could do to a bundle: ``change(name, data)`` each file (None
    drops it), ``add`` files, re-sign the manifest with the device key of ``ddir`` (or
    ``key``) and rebuild the canonical zip, so only a key the forger does not hold can
    object."""
    import hashlib
    import json
    import zipfile

    from appliance import keys
    from appliance.formats import zipcanon
    from appliance.formats.canonical import canonical_bytes

    with zipfile.ZipFile(src) as zin:
        files = {n: zin.read(n) for n in zin.namelist() if not n.startswith("manifest.")}
        manifest = json.loads(zin.read("manifest.json"))
    for name in list(files):
        new = change(name, files[name])
        if new is None:
            del files[name]
        else:
            files[name] = new
    files.update(add or {})
    manifest["files"] = [
        {"path": n, "sha256": hashlib.sha256(files[n]).hexdigest(), "size": len(files[n])}
        for n in sorted(files)
    ]
    body = canonical_bytes(manifest)
    signer = key or keys.load_signing_key(ddir.private_key_path)
    sig = signer.sign(body).signature.hex() + "\n"
    entries = [(n, (lambda d=files[n]: [d])) for n in sorted(files)]
    entries += [("manifest.json", lambda: [body]), ("manifest.sig", lambda: [sig.encode()])]
    with dst.open("wb") as f:
        zipcanon.write(f, entries)
