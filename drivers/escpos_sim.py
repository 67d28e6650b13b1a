"""A behavioural ESC/POS receipt printer: a TCP port that prints to memory.

It listens on 127.0.0.1 like a port-9100 network printer, keeps every byte it is
sent (:attr:`PrinterSimulator.received`), interprets the ESC/POS commands the
receipt layout uses (text with code-page switches ``ESC t n``, styles, alignment,
sizes, native QR codes ``GS ( k``, raster images ``GS v 0``, cuts, drawer kicks)
and answers the real-time status queries ``DLE EOT n`` the way an Epson-compatible
printer does. It can be told to run out of paper (now, or after N more lines),
to go offline (cover open), or to stop answering status queries, and it renders
what is on its paper as plain text (:meth:`rendered_text`) and as a PNG
(:meth:`render_png`) for the kiosk's receipt preview.

While it has no paper or is offline it throws printable data away, like a printer
whose buffer is cleared by the error: what was lost is counted, never rendered.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import ImageFont

log = logging.getLogger("tillbox.drivers.escpos_sim")

ESC, GS, DLE, FS = 0x1B, 0x1D, 0x10, 0x1C

# Status bytes (Epson ESC/POS, DLE EOT n). Bits 1 and 4 are always set.
STATUS_FIXED = 0x12
STATUS_OFFLINE = 0x08  # n=1: printer offline
STATUS_COVER_OPEN = 0x04  # n=2: cover open
STATUS_PAPER_STOP = 0x20  # n=2: printing stopped because paper ran out
STATUS_NEAR_END = 0x0C  # n=4: roll near-end sensor
STATUS_PAPER_OUT = 0x60  # n=4: roll end sensor


@dataclass
class Line:
    text: str
    align: str = "left"
    bold: bool = False
    width: int = 1
    height: int = 1


@dataclass
class Qr:
    data: str
    size: int = 3


@dataclass
class Raster:
    width: int
    height: int
    bits: bytes


@dataclass
class Cut:
    partial: bool = False


@dataclass
class DrawerKick:
    pin: int
    on_ms: int
    off_ms: int


Block = Line | Qr | Raster | Cut


@dataclass
class _Mode:
    codepage: int = 0
    align: str = "left"
    bold: bool = False
    width: int = 1
    height: int = 1


def _codepage_tables(profile_name: str | None) -> dict[int, list[str]]:
    """ESC t n -> the 128 characters of that code page, from python-escpos' own tables.

    Using the same tables as the sending side is the point: a name printed through
    the magic encoder must come back out of the simulator letter for letter.
    """
    from escpos.capabilities import get_profile
    from escpos.magicencode import Encoder

    tables: dict[int, list[str]] = {}
    for name, number in get_profile(profile_name).get_code_pages().items():
        try:
            tables[int(number)] = Encoder._get_codepage_char_list(name)
        except (LookupError, ValueError, AssertionError):
            continue
    return tables


class EscposInterpreter:
    """Turns an ESC/POS byte stream into blocks on paper; fed incrementally."""

    def __init__(self, columns: int = 48, profile: str | None = None) -> None:
        self.columns = columns
        self.tables = _codepage_tables(profile)
        self.mode = _Mode()
        self.blocks: list[Block] = []
        self.kicks: list[DrawerKick] = []
        self.current: list[str] = []
        self.current_mode: _Mode | None = None
        self.qr_data = b""
        self.qr_size = 3
        self.pending = b""
        self.paper_ok = True  # set by the printer: False while out of paper/offline
        self.lost_bytes = 0
        self.lines_printed = 0
        self.on_line: list = []  # callbacks after each printed line (fault injection)
        self.answer = None  # callable(n) -> bytes | None, for DLE EOT n

    # -- feeding ---------------------------------------------------------------------------
    def feed(self, data: bytes) -> bytes:
        """Consume bytes; returns the status answers to send back."""
        self.pending += data
        out = bytearray()
        pos = 0
        buf = self.pending
        while pos < len(buf):
            used, reply = self._step(buf, pos)
            if used == 0:
                break  # incomplete command; wait for more bytes
            if reply:
                out += reply
            pos += used
        self.pending = buf[pos:]
        return bytes(out)

    def _step(self, buf: bytes, pos: int) -> tuple[int, bytes | None]:
        b = buf[pos]
        rest = len(buf) - pos
        if b == DLE:
            if rest < 2:
                return 0, None
            cmd = buf[pos + 1]
            if cmd == 0x04:  # DLE EOT n: real-time status
                if rest < 3:
                    return 0, None
                return 3, self.answer(buf[pos + 2]) if self.answer else None
            if cmd == 0x05:  # DLE ENQ n
                return (3, None) if rest >= 3 else (0, None)
            if cmd == 0x14:  # DLE DC4 fn m t: real-time pulse (drawer)
                if rest < 5:
                    return 0, None
                if buf[pos + 2] == 1:
                    self.kicks.append(
                        DrawerKick(buf[pos + 3], buf[pos + 4] * 100, buf[pos + 4] * 100)
                    )
                return 5, None
            return 2, None
        if b == ESC:
            return self._esc(buf, pos, rest), None
        if b == GS:
            return self._gs(buf, pos, rest), None
        if b == FS:
            if rest < 2:
                return 0, None
            if buf[pos + 1] == ord("p"):
                return (4, None) if rest >= 4 else (0, None)
            return 2, None
        if b == 0x0A:
            self._end_line()
            return 1, None
        if b == 0x09:
            self._printable(" " * (8 - len(self.current) % 8))
            return 1, None
        if b < 0x20:
            return 1, None
        self._printable(self._decode(b))
        return 1, None

    def _esc(self, buf: bytes, pos: int, rest: int) -> int:
        if rest < 2:
            return 0
        cmd = chr(buf[pos + 1])
        if cmd == "@":
            self.mode = _Mode()
            return 2
        if cmd in "2<=im":
            if cmd in "im":
                self._flush_partial()
                self._block(Cut(partial=cmd == "m"))
            return 2
        if cmd == "p":
            if rest < 5:
                return 0
            pin = buf[pos + 2] & 1
            self.kicks.append(DrawerKick(2 if pin == 0 else 5, buf[pos + 3] * 2, buf[pos + 4] * 2))
            return 5
        if cmd in "B":
            return 4 if rest >= 4 else 0
        if cmd in "t!EGaMd-J3RVr{ USce\x7f":
            if rest < 3:
                return 0
            n = buf[pos + 2]
            if cmd == "t":
                self.mode.codepage = n
            elif cmd == "!":
                self.mode.bold = bool(n & 0x08)
                self.mode.height = 2 if n & 0x10 else 1
                self.mode.width = 2 if n & 0x20 else 1
            elif cmd == "E":
                self.mode.bold = bool(n & 1)
            elif cmd == "a":
                self.mode.align = {
                    0: "left",
                    1: "center",
                    2: "right",
                    48: "left",
                    49: "center",
                    50: "right",
                }.get(n, "left")
            elif cmd == "d":
                had = bool(self.current)
                self._end_line()
                for _ in range(n - 1 if had else n):
                    self._end_line()
            elif cmd == "J":
                self._flush_partial()
            elif cmd == "c":  # ESC c 5 n / ESC c 3 n etc: one more byte
                return 4 if rest >= 4 else 0
            return 3
        return 2

    def _gs(self, buf: bytes, pos: int, rest: int) -> int:
        if rest < 2:
            return 0
        cmd = chr(buf[pos + 1])
        if cmd == "V":
            if rest < 3:
                return 0
            m = buf[pos + 2]
            self._flush_partial()
            if m in (65, 66):
                if rest < 4:
                    return 0
                self._block(Cut(partial=m == 66))
                return 4
            self._block(Cut(partial=m in (1, 49)))
            return 3
        if cmd == "!":
            if rest < 3:
                return 0
            n = buf[pos + 2]
            self.mode.width, self.mode.height = (n >> 4) + 1, (n & 0x0F) + 1
            return 3
        if cmd == "(":
            if rest < 5:
                return 0
            length = buf[pos + 3] | (buf[pos + 4] << 8)
            if rest < 5 + length:
                return 0
            body = buf[pos + 5 : pos + 5 + length]
            if buf[pos + 2] == ord("k") and length >= 2 and body[0] == ord("1"):
                self._qr_function(body[1], body[2:])
            return 5 + length
        if cmd == "v":
            if rest < 8:
                return 0
            xbytes = buf[pos + 4] | (buf[pos + 5] << 8)
            height = buf[pos + 6] | (buf[pos + 7] << 8)
            size = xbytes * height
            if rest < 8 + size:
                return 0
            self._flush_partial()
            self._block(Raster(xbytes * 8, height, bytes(buf[pos + 8 : pos + 8 + size])))
            return 8 + size
        if cmd == "k":
            if rest < 3:
                return 0
            m = buf[pos + 2]
            if m <= 6:
                end = buf.find(b"\x00", pos + 3)
                if end < 0:
                    return 0
                self._barcode(buf[pos + 3 : end])
                return end + 1 - pos
            if rest < 4:
                return 0
            n = buf[pos + 3]
            if rest < 4 + n:
                return 0
            self._barcode(buf[pos + 4 : pos + 4 + n])
            return 4 + n
        if cmd in "LWP":
            return 4 if rest >= 4 else 0
        if cmd in "BbHhwfaIr":
            return 3 if rest >= 3 else 0
        return 2

    def _qr_function(self, fn: int, data: bytes) -> None:
        if fn == 67 and data:  # module size
            self.qr_size = data[0]
        elif fn == 80:  # store: m ('0') then the data
            self.qr_data = bytes(data[1:])
        elif fn == 81:  # print the stored symbol
            self._flush_partial()
            self._block(Qr(self.qr_data.decode("utf-8", "replace"), self.qr_size))

    def _barcode(self, data: bytes) -> None:
        self._flush_partial()
        self._block(Line(f"[barcode {data.decode('ascii', 'replace')}]", self.mode.align))

    # -- text ------------------------------------------------------------------------------
    def _decode(self, byte: int) -> str:
        if byte < 0x80:
            return chr(byte)
        table = self.tables.get(self.mode.codepage)
        return table[byte - 0x80] if table else "?"

    def _printable(self, text: str) -> None:
        if not self.current:
            self.current_mode = _Mode(**vars(self.mode))
        for ch in text:
            limit = max(1, self.columns // max(1, self.mode.width))
            if len(self.current) >= limit:  # the printer wraps a too-long line
                self._end_line()
                self.current_mode = _Mode(**vars(self.mode))
            self.current.append(ch)

    def _flush_partial(self) -> None:
        if self.current:
            self._end_line()

    def _end_line(self) -> None:
        mode = self.current_mode if self.current else self.mode
        self.current_mode = None
        text = "".join(self.current)
        self.current = []
        self._block(Line(text, mode.align, mode.bold, mode.width, mode.height))

    def _block(self, block: Block) -> None:
        if not self.paper_ok:
            self.lost_bytes += 1
            return
        self.blocks.append(block)
        if isinstance(block, Line):
            self.lines_printed += 1
            for callback in list(self.on_line):
                callback()

    # -- output ----------------------------------------------------------------------------
    def text_lines(self, blocks: list[Block] | None = None) -> list[str]:
        """The paper as text lines; a cut shows as a line of dashes (``blocks``: a part)."""
        cols = self.columns
        out: list[str] = []
        for block in self.blocks if blocks is None else blocks:
            if isinstance(block, Line):
                width = cols // block.width
                text = block.text
                if block.align == "center":
                    text = text.center(width).rstrip()
                elif block.align == "right":
                    text = text.rjust(width)
                out.append(text.rstrip() if block.align != "right" else text)
            elif isinstance(block, Qr):
                out.append(f"[QR {block.data}]".center(cols).rstrip())
            elif isinstance(block, Raster):
                out.append(f"[image {block.width}x{block.height}]".center(cols).rstrip())
            elif isinstance(block, Cut):
                out.append("-" * cols)
        return out


class PrinterSimulator:
    """The network printer: a TCP server thread on 127.0.0.1 (port 0 picks a free one)."""

    def __init__(
        self, columns: int = 48, profile: str | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.columns = columns
        self.interp = EscposInterpreter(columns, profile)
        self.interp.answer = self._answer
        self.received = bytearray()
        self.status_queries: list[int] = []
        self.paper = "ok"  # ok | near_end | out
        self.cover_open = False
        self.online = True
        self.mute = False  # True: swallow status queries without answering
        self._lock = threading.RLock()
        self._out_after: int | None = None
        self.interp.on_line.append(self._count_line)
        self._sock = socket.create_server((host, port))
        self._sock.settimeout(0.2)
        self.host, self.port = self._sock.getsockname()[:2]
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="escpos-sim", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    # -- fault injection -------------------------------------------------------------------
    def set_paper(self, level: str) -> None:
        if level not in ("ok", "near_end", "out"):
            raise ValueError("paper level is ok, near_end or out")
        with self._lock:
            self.paper = level
            self._sync_paper()

    def run_out_after(self, lines: int) -> None:
        """Paper runs out after ``lines`` more printed lines (mid-receipt)."""
        with self._lock:
            self._out_after = self.interp.lines_printed + lines

    def set_online(self, online: bool, cover_open: bool | None = None) -> None:
        with self._lock:
            self.online = online
            self.cover_open = (not online) if cover_open is None else cover_open
            self._sync_paper()

    def _count_line(self) -> None:
        if self._out_after is not None and self.interp.lines_printed >= self._out_after:
            self._out_after = None
            self.paper = "out"
            self._sync_paper()

    def _sync_paper(self) -> None:
        self.interp.paper_ok = self.paper != "out" and self.online and not self.cover_open

    def _answer(self, n: int) -> bytes | None:
        self.status_queries.append(n)
        if self.mute:
            return None
        status = STATUS_FIXED
        if n == 1 and not self.interp.paper_ok:
            status |= STATUS_OFFLINE
        elif n == 2:
            if self.cover_open:
                status |= STATUS_COVER_OPEN
            if self.paper == "out":
                status |= STATUS_PAPER_STOP
        elif n == 4:
            if self.paper == "out":
                status |= STATUS_PAPER_OUT
            elif self.paper == "near_end":
                status |= STATUS_NEAR_END
        return bytes([status])

    # -- serving ---------------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _addr = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(0.2)
            self._conns.append(conn)
            threading.Thread(
                target=self._handle, args=(conn,), name="escpos-sim-conn", daemon=True
            ).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            while not self._stop.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if not data:
                    break
                with self._lock:
                    self.received += data
                    reply = self.interp.feed(data)
                if reply:
                    try:
                        conn.sendall(reply)
                    except OSError:
                        break
        if conn in self._conns:
            self._conns.remove(conn)

    def stop(self) -> None:
        """Unplug: close the port and every connection (clients then get refused)."""
        self._stop.set()
        try:
            self._sock.close()
        except OSError:
            pass
        for conn in list(self._conns):
            try:
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            except OSError:
                pass
        self._thread.join(timeout=2)

    close = stop

    # -- what is on the paper --------------------------------------------------------------
    @property
    def drawer_kicks(self) -> list[DrawerKick]:
        return list(self.interp.kicks)

    @property
    def blocks(self) -> list[Block]:
        with self._lock:
            return list(self.interp.blocks)

    def clear(self) -> None:
        with self._lock:
            self.received.clear()
            self.interp.blocks.clear()
            self.interp.kicks.clear()
            self.status_queries.clear()

    def rendered_text(self) -> str:
        """Everything on the paper so far, one printed line per text line."""
        with self._lock:
            return "\n".join(self.interp.text_lines()) + ("\n" if self.interp.blocks else "")

    def receipts(self) -> list[str]:
        """The rendered text split at each paper cut (``GS V``); the last piece may be uncut.

        Split on the cut blocks themselves, not on a line of dashes: receipts print dashed
        rule lines of the full width too, and those are not cuts.
        """
        with self._lock:
            blocks = list(self.interp.blocks)
            pieces: list[list[Block]] = [[]]
            for block in blocks:
                if isinstance(block, Cut):
                    pieces.append([])
                else:
                    pieces[-1].append(block)
            texts = ["\n".join(self.interp.text_lines(piece)) for piece in pieces]
        if not texts[-1].strip():  # nothing printed after the last cut
            texts.pop()
        return texts

    def render_png(self, path: str | os.PathLike[str], last_only: bool = False) -> Path:
        """Draw the paper as a PNG (the kiosk's receipt preview); written crash-safely."""
        with self._lock:
            blocks = list(self.interp.blocks)
        if last_only:
            cuts = [i for i, b in enumerate(blocks[:-1]) if isinstance(b, Cut)]
            blocks = blocks[cuts[-1] + 1 :] if cuts else blocks
        return render_blocks_png(blocks, self.columns, Path(path))


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    from PIL import ImageFont

    for candidate in (
        "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
        "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf",
    ):
        if os.path.exists(candidate):
            return ImageFont.truetype(candidate, size)
    return ImageFont.load_default(size)


def render_blocks_png(blocks: list[Block], columns: int, path: Path) -> Path:
    """Render paper blocks to a white-paper PNG, 12 px per column like a 203 dpi head."""
    import qrcode
    from PIL import Image, ImageDraw

    from appliance.fsutil import atomic_write

    cell_w, cell_h, margin = 12, 24, 12
    width = columns * cell_w + 2 * margin
    parts: list[tuple[Image.Image, str]] = []
    for block in blocks:
        if isinstance(block, Line):
            img = Image.new("L", (width - 2 * margin, cell_h * block.height), 255)
            draw = ImageDraw.Draw(img)
            font = _font(20 * block.height)
            text_w = len(block.text) * cell_w * block.width
            x = {"left": 0, "center": (img.width - text_w) // 2, "right": img.width - text_w}[
                block.align
            ]
            for i, ch in enumerate(block.text):
                cx = max(0, x) + i * cell_w * block.width
                draw.text(
                    (cx, 0),
                    ch,
                    fill=0,
                    font=font,
                    stroke_width=1 if block.bold else 0,
                    stroke_fill=0,
                )
            parts.append((img, "left"))
        elif isinstance(block, Qr):
            qr = qrcode.QRCode(box_size=max(1, block.size), border=2)
            qr.add_data(block.data)
            qr.make(fit=True)
            parts.append((qr.make_image().get_image().convert("L"), "center"))
        elif isinstance(block, Raster):
            img = Image.frombytes("1", (block.width, block.height), block.bits)
            parts.append((Image.eval(img.convert("L"), lambda v: 255 - v), "center"))
        elif isinstance(block, Cut):
            img = Image.new("L", (width - 2 * margin, 12), 255)
            draw = ImageDraw.Draw(img)
            for x in range(0, img.width, 12):
                draw.line([(x, 6), (x + 6, 6)], fill=0)
            parts.append((img, "left"))
    height = sum(p.height for p, _ in parts) + 2 * margin
    page = Image.new("L", (width, max(height, 2 * margin + cell_h)), 255)
    y = margin
    for img, align in parts:
        x = margin if align == "left" else (width - img.width) // 2
        page.paste(img, (max(0, x), y))
        y += img.height
    import io

    buf = io.BytesIO()
    page.save(buf, format="PNG")
    atomic_write(path, buf.getvalue())
    return path
