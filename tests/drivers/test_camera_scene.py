"""The sim camera "sees" what it is shown: a receipt QR held in front of the lens decodes."""

from __future__ import annotations

import io
import os

import pytest
import qrcode
import zxingcpp
from PIL import Image

from appliance.formats import receipt as receipt_sig
from drivers.camera import Camera
from drivers.common import DeviceFault


def qr_png(text: str) -> bytes:
    buf = io.BytesIO()
    qrcode.make(text, border=4).save(buf, format="PNG")
    return buf.getvalue()


def decoded(photo) -> list[str]:
    image = Image.open(io.BytesIO(photo.data))
    return [r.text for r in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)]


def test_a_receipt_qr_shown_to_the_sim_camera_decodes_to_the_same_payload(till, sale):
    payload = receipt_sig.receipt_qr_payload(till, sale)
    cam = Camera("sim://", "t1")
    bare = cam.capture()
    assert decoded(bare) == []  # the test frame has no QR code in it

    cam.show(qr_png(payload))  # PNG bytes
    assert decoded(cam.capture()) == [payload]
    assert receipt_sig.verify_receipt_payload(payload, till.public_key_hex()).ok

    cam.show(Image.open(io.BytesIO(qr_png("TB1*other"))))  # a PIL image
    assert decoded(cam.capture()) == ["TB1*other"]

    cam.show(None)  # taken away: the deterministic test frame again
    again = Camera("sim://", "t1")
    assert decoded(cam.capture()) == []
    # the frame with nothing shown is the same picture for every fresh camera
    first, second = Camera("sim://", "t1").open().capture(), again.open().capture()
    assert first.tobytes() == second.tobytes()


def test_scene_file_named_in_the_url_is_seen_while_it_exists(tmp_path):
    scene = tmp_path / "scene.png"
    cam = Camera(f"sim://?scene={scene}&width=800&height=600", "t1")
    assert decoded(cam.capture()) == []  # no file: nothing in view
    tmp = tmp_path / "scene.tmp"
    tmp.write_bytes(qr_png("TB1*first"))
    os.replace(tmp, scene)
    photo = cam.capture()
    assert (photo.width, photo.height) == (800, 600)
    assert decoded(photo) == ["TB1*first"]
    tmp.write_bytes(qr_png("TB1*second"))
    os.replace(tmp, scene)  # read again at every capture
    assert decoded(cam.capture()) == ["TB1*second"]
    scene.unlink()
    assert decoded(cam.capture()) == []


def test_unreadable_scene_or_picture_is_a_one_line_fault(tmp_path):
    scene = tmp_path / "scene.png"
    scene.write_bytes(b"not a picture")
    cam = Camera(f"sim://?scene={scene}", "t1")
    with pytest.raises(DeviceFault, match=r"scene .* is not a readable picture.*PNG or JPEG"):
        cam.capture()
    with pytest.raises(DeviceFault, match="not a readable picture") as info:
        cam.show(b"\x89PNG broken")
    assert "\n" not in str(info.value)
