"""A single-stroke vector font for the laser: every letter is a few polylines, no outlines.

Coordinates are font units: capitals are 6 units tall on the baseline (y = 0),
descenders reach about -1.3 and accents up to about 8. Lower case is drawn as small
capitals (70 %), which engraves cleanly at the small sizes a keyring needs. Accented
letters are built from the base letter plus a mark (NFD decomposition), so "Łódź",
"Brötchen" and "Ñandú" all engrave; ``ß``, ``Æ``, ``Œ`` become their spelt-out forms.
"""

from __future__ import annotations

import unicodedata

Point = tuple[float, float]
Stroke = list[Point]

CAP = 6.0
SMALL = 0.7  # lower case = small capitals at 70 %
SPACING = 1.0
LINE_TOP = 8.0  # the highest accent
LINE_BOTTOM = -1.5  # the deepest descender/cedilla

_O = [(1, 0), (0, 1), (0, 5), (1, 6), (3, 6), (4, 5), (4, 1), (3, 0), (1, 0)]
_P = [(0, 0), (0, 6), (3, 6), (4, 5), (4, 4), (3, 3), (0, 3)]

GLYPHS: dict[str, tuple[float, list[Stroke]]] = {
    "A": (4, [[(0, 0), (2, 6), (4, 0)], [(0.7, 2), (3.3, 2)]]),
    "B": (
        4,
        [
            [(0, 0), (0, 6), (3, 6), (4, 5), (4, 4), (3, 3), (0, 3)],
            [(3, 3), (4, 2), (4, 1), (3, 0), (0, 0)],
        ],
    ),
    "C": (4, [[(4, 5), (3, 6), (1, 6), (0, 5), (0, 1), (1, 0), (3, 0), (4, 1)]]),
    "D": (4, [[(0, 0), (0, 6), (2.5, 6), (4, 4.5), (4, 1.5), (2.5, 0), (0, 0)]]),
    "E": (4, [[(4, 6), (0, 6), (0, 0), (4, 0)], [(0, 3), (3, 3)]]),
    "F": (4, [[(4, 6), (0, 6), (0, 0)], [(0, 3), (3, 3)]]),
    "G": (4, [[(4, 5), (3, 6), (1, 6), (0, 5), (0, 1), (1, 0), (3, 0), (4, 1), (4, 3), (2, 3)]]),
    "H": (4, [[(0, 0), (0, 6)], [(4, 0), (4, 6)], [(0, 3), (4, 3)]]),
    "I": (2, [[(0, 6), (2, 6)], [(1, 6), (1, 0)], [(0, 0), (2, 0)]]),
    "J": (4, [[(4, 6), (4, 1), (3, 0), (1, 0), (0, 1)]]),
    "K": (4, [[(0, 0), (0, 6)], [(4, 6), (0, 2)], [(1.3, 3.3), (4, 0)]]),
    "L": (4, [[(0, 6), (0, 0), (4, 0)]]),
    "M": (5, [[(0, 0), (0, 6), (2.5, 2), (5, 6), (5, 0)]]),
    "N": (4, [[(0, 0), (0, 6), (4, 0), (4, 6)]]),
    "O": (4, [_O]),
    "P": (4, [_P]),
    "Q": (4, [_O, [(2.5, 1.5), (4.2, -0.3)]]),
    "R": (4, [_P, [(2, 3), (4, 0)]]),
    "S": (
        4,
        [
            [
                (4, 5),
                (3, 6),
                (1, 6),
                (0, 5),
                (0, 4),
                (1, 3),
                (3, 3),
                (4, 2),
                (4, 1),
                (3, 0),
                (1, 0),
                (0, 1),
            ]
        ],
    ),
    "T": (4, [[(0, 6), (4, 6)], [(2, 6), (2, 0)]]),
    "U": (4, [[(0, 6), (0, 1), (1, 0), (3, 0), (4, 1), (4, 6)]]),
    "V": (4, [[(0, 6), (2, 0), (4, 6)]]),
    "W": (5, [[(0, 6), (1.2, 0), (2.5, 4), (3.8, 0), (5, 6)]]),
    "X": (4, [[(0, 0), (4, 6)], [(0, 6), (4, 0)]]),
    "Y": (4, [[(0, 6), (2, 3), (4, 6)], [(2, 3), (2, 0)]]),
    "Z": (4, [[(0, 6), (4, 6), (0, 0), (4, 0)]]),
    "0": (4, [_O, [(0.6, 1), (3.4, 5)]]),
    "1": (2, [[(0, 5), (1, 6), (1, 0)], [(0, 0), (2, 0)]]),
    "2": (4, [[(0, 5), (1, 6), (3, 6), (4, 5), (4, 4), (0, 0), (4, 0)]]),
    "3": (
        4,
        [
            [(0, 5), (1, 6), (3, 6), (4, 5), (4, 4), (3, 3), (1.5, 3)],
            [(3, 3), (4, 2), (4, 1), (3, 0), (1, 0), (0, 1)],
        ],
    ),
    "4": (4, [[(3, 0), (3, 6), (0, 2), (4, 2)]]),
    "5": (4, [[(4, 6), (0, 6), (0, 3.5), (3, 3.5), (4, 2.5), (4, 1), (3, 0), (1, 0), (0, 1)]]),
    "6": (
        4,
        [
            [
                (4, 5),
                (3, 6),
                (1, 6),
                (0, 5),
                (0, 1),
                (1, 0),
                (3, 0),
                (4, 1),
                (4, 2),
                (3, 3),
                (1, 3),
                (0, 2),
            ]
        ],
    ),
    "7": (4, [[(0, 6), (4, 6), (1.5, 0)]]),
    "8": (
        4,
        [
            [
                (1, 3),
                (0, 4),
                (0, 5),
                (1, 6),
                (3, 6),
                (4, 5),
                (4, 4),
                (3, 3),
                (1, 3),
                (0, 2),
                (0, 1),
                (1, 0),
                (3, 0),
                (4, 1),
                (4, 2),
                (3, 3),
            ]
        ],
    ),
    "9": (
        4,
        [
            [
                (0, 1),
                (1, 0),
                (3, 0),
                (4, 1),
                (4, 5),
                (3, 6),
                (1, 6),
                (0, 5),
                (0, 4),
                (1, 3),
                (3, 3),
                (4, 4),
            ]
        ],
    ),
    " ": (2.5, []),
    ".": (1, [[(0.5, 0), (0.5, 0.4)]]),
    ",": (1, [[(0.6, 0.5), (0.3, -0.9)]]),
    "!": (1, [[(0.5, 6), (0.5, 2)], [(0.5, 0), (0.5, 0.4)]]),
    "?": (4, [[(0, 5), (1, 6), (3, 6), (4, 5), (4, 4), (2, 2.5), (2, 1.5)], [(2, 0), (2, 0.4)]]),
    "-": (3, [[(0, 3), (3, 3)]]),
    "'": (1, [[(0.5, 6), (0.5, 4.5)]]),
    '"': (2, [[(0.3, 6), (0.3, 4.5)], [(1.7, 6), (1.7, 4.5)]]),
    "&": (
        4,
        [
            [
                (4, 0),
                (0.8, 4.5),
                (0.8, 5.5),
                (1.5, 6),
                (2.5, 6),
                (3, 5.3),
                (3, 4.7),
                (0, 2),
                (0, 1),
                (1, 0),
                (2.5, 0),
                (4, 2),
            ]
        ],
    ),
    "+": (4, [[(0, 3), (4, 3)], [(2, 1), (2, 5)]]),
    "=": (4, [[(0, 2), (4, 2)], [(0, 4), (4, 4)]]),
    ":": (1, [[(0.5, 4), (0.5, 4.4)], [(0.5, 1), (0.5, 1.4)]]),
    "/": (3, [[(0, 0), (3, 6)]]),
    "(": (2, [[(2, 6.5), (0.5, 4.5), (0.5, 1.5), (2, -0.5)]]),
    ")": (2, [[(0, 6.5), (1.5, 4.5), (1.5, 1.5), (0, -0.5)]]),
    "*": (4, [[(2, 5), (2, 1)], [(0.3, 4), (3.7, 2)], [(0.3, 2), (3.7, 4)]]),
    "#": (4, [[(1.3, 0), (1.7, 6)], [(2.7, 0), (3.1, 6)], [(0, 2), (4, 2)], [(0, 4), (4, 4)]]),
    "♥": (
        5,
        [
            [
                (2.5, 0),
                (0, 3),
                (0, 5),
                (1, 6),
                (2, 6),
                (2.5, 5),
                (3, 6),
                (4, 6),
                (5, 5),
                (5, 3),
                (2.5, 0),
            ]
        ],
    ),
}

# Combining marks (NFD) -> strokes relative to the glyph's width w and top t.
_MARKS = {
    "\u0301": lambda w, t: [[(w / 2 - 0.3, t + 0.7), (w / 2 + 0.7, t + 1.7)]],  # acute
    "\u0300": lambda w, t: [[(w / 2 + 0.3, t + 0.7), (w / 2 - 0.7, t + 1.7)]],  # grave
    "\u0308": lambda w, t: [
        [(w / 2 - 1, t + 1), (w / 2 - 1, t + 1.4)],
        [(w / 2 + 1, t + 1), (w / 2 + 1, t + 1.4)],
    ],  # diaeresis
    "\u0302": lambda w, t: [[(w / 2 - 1, t + 0.7), (w / 2, t + 1.7), (w / 2 + 1, t + 0.7)]],
    "\u030c": lambda w, t: [[(w / 2 - 1, t + 1.7), (w / 2, t + 0.7), (w / 2 + 1, t + 1.7)]],
    "\u030a": lambda w, t: [
        [
            (w / 2, t + 0.6),
            (w / 2 - 0.6, t + 1.2),
            (w / 2, t + 1.8),
            (w / 2 + 0.6, t + 1.2),
            (w / 2, t + 0.6),
        ]
    ],  # ring
    "\u0303": lambda w, t: [
        [(w / 2 - 1.2, t + 1), (w / 2 - 0.5, t + 1.5), (w / 2 + 0.5, t + 1), (w / 2 + 1.2, t + 1.5)]
    ],  # tilde
    "\u0307": lambda w, t: [[(w / 2, t + 1), (w / 2, t + 1.4)]],  # dot above
    "\u0327": lambda w, t: [[(w / 2, 0), (w / 2 + 0.5, -0.7), (w / 2 - 0.4, -1.2)]],  # cedilla
    "\u0328": lambda w, t: [[(w - 0.8, 0), (w - 1.5, -0.8), (w - 0.6, -1.3)]],  # ogonek
    "\u030b": lambda w, t: [
        [(w / 2 - 0.8, t + 0.7), (w / 2 - 0.2, t + 1.7)],
        [(w / 2 + 0.2, t + 0.7), (w / 2 + 0.8, t + 1.7)],
    ],  # double acute
    "\u0306": lambda w, t: [
        [(w / 2 - 1, t + 1.6), (w / 2 - 0.5, t + 0.9), (w / 2 + 0.5, t + 0.9), (w / 2 + 1, t + 1.6)]
    ],  # breve
    "\u0304": lambda w, t: [[(w / 2 - 1, t + 1.2), (w / 2 + 1, t + 1.2)]],  # macron
}
_SPELT = {
    "ß": "ss",
    "ẞ": "SS",
    "Æ": "AE",
    "æ": "ae",
    "Œ": "OE",
    "œ": "oe",
    "’": "'",
    "‘": "'",
    "“": '"',
    "”": '"',
    "–": "-",
    "—": "-",
}
_SLASHED = {
    "Ł": ("L", [[(-0.3, 2.2), (2, 4.2)]]),
    "Ø": ("O", [[(-0.3, -0.3), (4.3, 6.3)]]),
    "Đ": ("D", [[(-0.6, 3), (1.6, 3)]]),
}


class UnsupportedCharacter(ValueError):
    def __init__(self, chars: list[str]) -> None:
        self.chars = chars
        shown = " ".join(repr(c) for c in chars)
        super().__init__(f"the engraving font has no letter for {shown}; remove or replace it")


def glyph(ch: str) -> tuple[float, list[Stroke]]:
    """Advance width and strokes of one character (font units, origin at the baseline)."""
    lower = ch != ch.upper() and len(ch.upper()) == 1
    base = ch.upper() if lower else ch
    if base in _SLASHED:
        letter, extra = _SLASHED[base]
        width, strokes = GLYPHS[letter]
        return _scaled(width, strokes + extra, SMALL if lower else 1.0)
    if base in GLYPHS:
        width, strokes = GLYPHS[base]
        return _scaled(width, strokes, SMALL if lower else 1.0)
    parts = unicodedata.normalize("NFD", ch)
    letter, marks = parts[0], parts[1:]
    if marks and all(m in _MARKS for m in marks) and letter != ch:
        width, strokes = glyph(letter)
        top = CAP * (SMALL if letter.islower() else 1.0)
        out = list(strokes)
        for mark in marks:
            out += _MARKS[mark](width, top)
        return width, out
    raise UnsupportedCharacter([ch])


def _scaled(width: float, strokes: list[Stroke], k: float) -> tuple[float, list[Stroke]]:
    if k == 1.0:
        return width, [list(s) for s in strokes]
    return width * k, [[(x * k, y * k) for x, y in s] for s in strokes]


def normalise(text: str) -> str:
    return "".join(_SPELT.get(c, c) for c in unicodedata.normalize("NFC", text))


def unsupported(text: str) -> list[str]:
    """Characters of ``text`` the font cannot draw (each once, in order)."""
    bad: list[str] = []
    for ch in normalise(text):
        if ch == "\n":
            continue
        try:
            glyph(ch)
        except UnsupportedCharacter:
            if ch not in bad:
                bad.append(ch)
    return bad


def layout_line(text: str) -> tuple[float, list[Stroke]]:
    """One line of text in font units: its advance width and strokes."""
    x = 0.0
    strokes: list[Stroke] = []
    for ch in normalise(text):
        width, glyph_strokes = glyph(ch)
        strokes += [[(px + x, py) for px, py in s] for s in glyph_strokes]
        x += width + SPACING
    return max(0.0, x - SPACING), strokes
