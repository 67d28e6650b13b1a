"""An independent ESC/POS reader for the tests: bytes in, what the paper shows out.

Written from the Epson ESC/POS command reference, not from our layout code or our
simulator (``drivers.escpos_sim``), so a test that decodes a receipt with it checks
the bytes against the standard rather than against the code that produced them.
It imports neither; code pages are decoded with Python's own codecs.

It reads the commands a receipt printer acts on: ``ESC @``, ``ESC a``, ``ESC E``,
``ESC !``, ``GS !``, ``ESC t``, ``ESC d``, ``ESC J``, ``ESC p``, ``GS V``,
``GS v 0``, ``GS ( k`` (QR functions 165, 167, 169, 180, 181) and ``LF``. Anything
else raises :class:`UnknownCommand`, so an unexpected byte cannot slip by as text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ESC, GS, LF, CR = 0x1B, 0x1D, 0x0A, 0x0D

# ESC t n -> Python codec, from the ESC/POS reference's character code table list.
EPSON_CODE_PAGES = {
    0: "cp437",
    2: "cp850",
    3: "cp860",
    4: "cp863",
    5: "cp865",
    13: "cp857",
    14: "cp737",
    15: "iso8859_7",
    16: "cp1252",
    17: "cp866",
    18: "cp852",
    19: "cp858",
    33: "cp775",
    34: "cp855",
    35: "cp861",
    36: "cp862",
    37: "cp864",
    38: "cp869",
    39: "iso8859_2",
    40: "iso8859_15",
    45: "cp1250",
    46: "cp1251",
    47: "cp1253",
    48: "cp1254",
    49: "cp1255",
    50: "cp1256",
    51: "cp1257",
    52: "cp1258",
}

QR_EC_LEVELS = {48: "L", 49: "M", 50: "Q", 51: "H"}


class UnknownCommand(ValueError):
    """A control byte sequence this reader does not know."""


@dataclass
class PrintedLine:
    text: str
    columns: int  # font-A columns the line takes: double-width characters count 2
    align: str
    bold: bool  # bold for the whole line
    double_width: bool  # any character printed double width
    double_height: bool


@dataclass
class QrCode:
    data: str
    model: int | None
    module_dots: int | None
    ec_level: str | None


@dataclass
class RasterImage:
    width_dots: int
    height_dots: int
    rows: list[list[bool]]  # True = black dot


@dataclass
class Document:
    """One decoded byte stream, in paper order (``items``) and by kind."""

    items: list[PrintedLine | QrCode | RasterImage | str] = field(default_factory=list)

    @property
    def lines(self) -> list[PrintedLine]:
        return [i for i in self.items if isinstance(i, PrintedLine)]

    @property
    def texts(self) -> list[str]:
        return [line.text for line in self.lines]

    @property
    def qr_codes(self) -> list[QrCode]:
        return [i for i in self.items if isinstance(i, QrCode)]

    @property
    def rasters(self) -> list[RasterImage]:
        return [i for i in self.items if isinstance(i, RasterImage)]

    @property
    def cuts(self) -> int:
        return sum(1 for i in self.items if i == "cut")

    @property
    def drawer_kicks(self) -> int:
        return sum(1 for i in self.items if i == "drawer")

    def text(self) -> str:
        return "\n".join(self.texts)


@dataclass
class _State:
    page: int = 0
    align: str = "left"
    bold: bool = False
    width: int = 1
    height: int = 1


def read(data: bytes, code_pages: dict[int, str] | None = None) -> Document:
    """Decode ``data``; ``code_pages`` maps ``ESC t n`` to codecs (Epson's by default)."""
    pages = code_pages or EPSON_CODE_PAGES
    doc = Document()
    st = _State()
    chars: list[tuple[str, int, bool, int]] = []  # char, width, bold, height
    line_align = ["left"]
    qr = {"model": None, "size": None, "ec": None, "data": None}
    i = 0

    def end_line() -> None:
        text = "".join(c for c, _w, _b, _h in chars)
        doc.items.append(
            PrintedLine(
                text=text,
                columns=sum(w for _c, w, _b, _h in chars),
                align=line_align[0],
                bold=bool(chars) and all(b for _c, _w, b, _h in chars if c_visible(_c)),
                double_width=any(w > 1 for _c, w, _b, _h in chars),
                double_height=any(h > 1 for _c, _w, _b, h in chars),
            )
        )
        chars.clear()
        line_align[0] = st.align

    def need(n: int) -> bytes:
        if i + n > len(data):
            raise UnknownCommand(f"command at byte {i} is cut short")
        return data[i : i + n]

    while i < len(data):
        b = data[i]
        if b == LF:
            end_line()
            i += 1
        elif b == CR:
            i += 1
        elif b == ESC:
            cmd = need(2)[1]
            if cmd == 0x40:  # ESC @ initialise
                st = _State()
                line_align[0] = st.align
                i += 2
            elif cmd == 0x61:  # ESC a n
                n = need(3)[2]
                st.align = {0: "left", 48: "left", 1: "center", 49: "center"}.get(n, "right")
                if not chars:
                    line_align[0] = st.align
                i += 3
            elif cmd == 0x45:  # ESC E n
                st.bold = bool(need(3)[2] & 1)
                i += 3
            elif cmd == 0x21:  # ESC ! n: bit 3 bold, bit 4 double height, bit 5 double width
                n = need(3)[2]
                if n & 0x01:
                    raise UnknownCommand("ESC ! selects font B; the layout uses font A")
                st.bold = bool(n & 0x08)
                st.height = 2 if n & 0x10 else 1
                st.width = 2 if n & 0x20 else 1
                i += 3
            elif cmd == 0x74:  # ESC t n
                st.page = need(3)[2]
                if st.page not in pages:
                    raise UnknownCommand(f"ESC t {st.page}: code page not in the table")
                i += 3
            elif cmd == 0x64:  # ESC d n: print and feed n lines
                if chars:
                    end_line()
                doc.items.extend("feed" for _ in range(need(3)[2]))
                i += 3
            elif cmd == 0x4A:  # ESC J n: feed n dots
                i += 3
            elif cmd == 0x70:  # ESC p m t1 t2: drawer pulse
                need(5)
                doc.items.append("drawer")
                i += 5
            else:
                raise UnknownCommand(f"ESC 0x{cmd:02x} at byte {i}")
        elif b == GS:
            cmd = need(2)[1]
            if cmd == 0x21:  # GS ! n: high nibble width-1, low nibble height-1
                n = need(3)[2]
                st.width, st.height = (n >> 4) + 1, (n & 0x0F) + 1
                i += 3
            elif cmd == 0x56:  # GS V m [n]
                m = need(3)[2]
                i += 4 if m in (65, 66) else 3
                if chars:
                    end_line()
                doc.items.append("cut")
            elif cmd == 0x76:  # GS v 0 m xL xH yL yH d1...dk
                head = need(8)
                if head[2] != 0x30:
                    raise UnknownCommand(f"GS v 0x{head[2]:02x} at byte {i}")
                xbytes = head[4] + 256 * head[5]
                height = head[6] + 256 * head[7]
                i += 8
                body = need(xbytes * height)
                rows = [
                    [bool(body[y * xbytes + x // 8] & (0x80 >> (x % 8))) for x in range(xbytes * 8)]
                    for y in range(height)
                ]
                doc.items.append(RasterImage(xbytes * 8, height, rows))
                i += xbytes * height
            elif cmd == 0x28 and need(3)[2] == 0x6B:  # GS ( k pL pH cn fn [params]
                head = need(7)
                size = head[3] + 256 * head[4]
                cn, fn = head[5], head[6]
                params = need(5 + size)[7:]
                if cn != 0x31:
                    raise UnknownCommand(f"GS ( k for symbol type {cn}, not QR")
                if fn == 65:  # function 165: model (n1 = 49 model 1, 50 model 2, 51 micro)
                    qr["model"] = params[0] - 48
                elif fn == 67:  # function 167: module size in dots
                    qr["size"] = params[0]
                elif fn == 69:  # function 169: error correction level
                    qr["ec"] = QR_EC_LEVELS.get(params[0])
                elif fn == 80:  # function 180: store data (m = 48, then the data)
                    qr["data"] = params[1:].decode("latin-1")
                elif fn == 81:  # function 181: print the stored symbol
                    if chars:
                        end_line()
                    doc.items.append(QrCode(qr["data"] or "", qr["model"], qr["size"], qr["ec"]))
                else:
                    raise UnknownCommand(f"GS ( k QR function {fn + 100}")
                i += 5 + size
            else:
                raise UnknownCommand(f"GS 0x{cmd:02x} at byte {i}")
        elif b < 0x20:
            raise UnknownCommand(f"control byte 0x{b:02x} at byte {i}")
        else:
            char = bytes([b]).decode(pages[st.page]) if b >= 0x80 else chr(b)
            chars.append((char, st.width, st.bold, st.height))
            i += 1
    if chars:
        end_line()
    return doc


def c_visible(char: str) -> bool:
    return not char.isspace()


def raster_to_image(raster: RasterImage, scale: int = 1):
    """The raster as a black-on-white PIL image with a white margin (for a QR decoder)."""
    from PIL import Image

    margin = 16
    img = Image.new("L", (raster.width_dots + 2 * margin, raster.height_dots + 2 * margin), 255)
    for y, row in enumerate(raster.rows):
        for x, black in enumerate(row):
            if black:
                img.putpixel((x + margin, y + margin), 0)
    if scale != 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return img
