"""Text to toolpath: fitting, refusing, accents, G-code shape."""

from __future__ import annotations

import pytest

from drivers import strokefont
from drivers.toolpath import (
    ToolpathError,
    WorkArea,
    frame_gcode,
    material,
    text_to_toolpath,
)

AREA = WorkArea(width_mm=50, height_mm=20, origin_x_mm=10, origin_y_mm=5)


def inside(path, area):
    x0, y0, x1, y1 = path.bbox
    return (
        x0 >= area.origin_x_mm + area.margin_mm - 1e-6
        and y0 >= area.origin_y_mm + area.margin_mm - 1e-6
        and x1 <= area.origin_x_mm + area.width_mm - area.margin_mm + 1e-6
        and y1 <= area.origin_y_mm + area.height_mm - area.margin_mm + 1e-6
    )


def test_short_text_is_capped_at_the_max_letter_height_and_centred():
    path = text_to_toolpath("Jo", material("wood"), AREA)
    assert path.letter_mm == pytest.approx(AREA.max_letter_mm)
    assert inside(path, AREA)
    centre_x = (path.bbox[0] + path.bbox[2]) / 2
    assert centre_x == pytest.approx(AREA.origin_x_mm + AREA.width_mm / 2, abs=0.01)


def test_long_text_is_scaled_down_to_fit():
    path = text_to_toolpath("Happy Birthday", material("wood"), AREA)
    assert AREA.min_letter_mm <= path.letter_mm < AREA.max_letter_mm
    assert inside(path, AREA)
    assert path.bbox[2] - path.bbox[0] == pytest.approx(
        AREA.width_mm - 2 * AREA.margin_mm, rel=0.05
    )


def test_text_that_does_not_fit_is_refused_not_clipped():
    with pytest.raises(ToolpathError, match="does not fit.*shorten it"):
        text_to_toolpath("Congratulations on your wonderful wedding day", material("wood"), AREA)


def test_two_lines_stack_inside_the_area():
    one = text_to_toolpath("Anna", material("wood"), AREA)
    two = text_to_toolpath("Anna\nBen", material("wood"), AREA)
    assert inside(two, AREA)
    assert two.letter_mm < one.letter_mm


def test_accented_letters_have_their_marks():
    plain = strokefont.layout_line("Lodz")[1]
    accented = strokefont.layout_line("Łódź")[1]
    assert len(accented) == len(plain) + 3  # stroke through L, acute on o and on z
    # the acute sits above the small-caps o
    top = max(y for s in accented for _, y in s)
    assert top > strokefont.CAP * strokefont.SMALL
    assert strokefont.unsupported("Brötchen Ærø ß ♥") == []


def test_unsupported_characters_are_named():
    with pytest.raises(ToolpathError, match="'€'"):
        text_to_toolpath("5 €", material("wood"), AREA)
    with pytest.raises(ToolpathError, match="no text"):
        text_to_toolpath("   \n ", material("wood"), AREA)


def test_gcode_uses_material_power_and_feed_and_laser_off_travel():
    leather = material("leather")
    path = text_to_toolpath("AB", leather, AREA)
    g = path.gcode
    assert g[:5] == ["G21", "G90", "G94", f"F{leather.feed_mm_min}", "M4 S0"]
    assert g[-2:] == ["M5 S0", "G0 X10 Y5"]
    assert f"S{leather.power}" in " ".join(g)
    assert all(len(line) < 80 for line in g)
    starts = sum(1 for line in g if line.startswith("G0"))
    assert starts == len(path.polylines) + 1
    assert path.estimated_s > 0 and path.cut_mm > 0


def test_materials_and_overrides():
    assert material("Anodised_Aluminium").name == "anodised-aluminium"
    assert material("wood", {"wood": {"power": 900}}).power == 900
    assert material("acrylic", {"acrylic": {"power": 300, "feed_mm_min": 400}}).feed_mm_min == 400
    with pytest.raises(ToolpathError, match="not known"):
        material("granite")


def test_frame_traces_the_bounding_box_with_laser_off():
    path = text_to_toolpath("Anna", material("wood"), AREA)
    frame = frame_gcode(path)
    assert "M5 S0" in frame
    assert all(" S0" in line for line in frame if line.startswith("G1"))
    assert len([line for line in frame if line.startswith("G1")]) == 4


def test_work_area_from_config():
    area = WorkArea.from_config({"width_mm": 80, "height_mm": "30", "unrelated": 1})
    assert area.width_mm == 80 and area.height_mm == 30
    with pytest.raises(ToolpathError, match="not a number"):
        WorkArea.from_config({"width_mm": "wide"})
