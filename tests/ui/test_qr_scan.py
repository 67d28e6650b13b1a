"""Reading a QR out of a picture: with a receipt and a booking code both in view, the
code the scan is for wins (the kiosk's bookings screen used to read the receipt)."""

from __future__ import annotations

import io

import qrcode
from PIL import Image

from appliance.qrimage import read_receipt_qr

RECEIPT = "TB2*till-a*demo*7*S*1796174674*EUR*0:2400*cash**abc*sig"
BOOKING = "TBB1*demo*bk-1*8*sig"


def _both_in_view() -> bytes:
    codes = []
    for text in (BOOKING, RECEIPT):  # the booking on the left: read first by position
        code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=6)
        code.add_data(text)
        code.make(fit=True)
        codes.append(code.make_image().get_image().convert("L"))
    sheet = Image.new("L", (sum(c.width for c in codes) + 40, max(c.height for c in codes)), 255)
    sheet.paste(codes[0], (0, 0))
    sheet.paste(codes[1], (codes[0].width + 40, 0))
    out = io.BytesIO()
    sheet.save(out, format="PNG")
    return out.getvalue()


def test_the_scan_reads_the_code_it_is_for():
    picture = _both_in_view()
    assert read_receipt_qr(picture).text == RECEIPT
    assert read_receipt_qr(picture, ("TBB1*",)).text == BOOKING


def test_the_kiosk_booking_scan_prefers_the_booking():
    from ui.devices import BOOKING as BOOKING_SCAN
    from ui.devices import RECEIPT as RECEIPT_SCAN
    from ui.devices import decode_qr

    picture = _both_in_view()
    assert decode_qr(picture, BOOKING_SCAN) == BOOKING
    assert decode_qr(picture, RECEIPT_SCAN) == RECEIPT
