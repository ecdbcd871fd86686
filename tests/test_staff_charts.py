"""The mood chart is plain SVG from the server: it must hold up with no, one or many scores."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

from reminders.web.staff.charts import Infusion, MoodPoint, mood_chart

SVG = "{http://www.w3.org/2000/svg}"
START = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)


def parse(markup) -> ET.Element:
    root = ET.fromstring(str(markup))
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    title_id, desc_id = root.get("aria-labelledby").split()
    assert root.find(f"{SVG}title").get("id") == title_id
    assert root.find(f"{SVG}desc").get("id") == desc_id
    return root


def coordinates(root, tag):
    return [el for el in root.iter(f"{SVG}{tag}")]


def test_no_points_draws_an_empty_frame_that_says_so():
    root = parse(mood_chart([], [], "America/New_York"))
    assert root.find(f"{SVG}desc").text == "No mood scores have been received yet."
    assert not coordinates(root, "circle") and not coordinates(root, "polyline")
    assert any(t.text == "No mood scores yet" for t in root.iter(f"{SVG}text"))


def test_one_point_sits_in_the_middle_without_a_line():
    root = parse(mood_chart([MoodPoint(START, 7)], [], "America/New_York"))
    circles = coordinates(root, "circle")
    assert len(circles) == 1 and not coordinates(root, "polyline")
    x = float(circles[0].get("cx"))
    assert 300 < x < 360  # centred in a 640-wide chart
    assert "One mood score: 7 of 10 on Mar 2." == root.find(f"{SVG}desc").text
    assert circles[0].find(f"{SVG}title").text == "Mar 2: mood 7 of 10"


def test_many_points_in_time_order_with_infusion_days_marked():
    points = [MoodPoint(START + timedelta(days=d), s) for d, s in ((6, 7), (0, 3), (2, 5), (4, 1))]
    infusions = [Infusion(START - timedelta(days=1), "Induction 1 of 6"), Infusion(START + timedelta(days=3), "Induction 2 of 6")]
    root = parse(mood_chart(points, infusions, "America/New_York", chart_id="mood-9"))
    circles = coordinates(root, "circle")
    xs = [float(c.get("cx")) for c in circles]
    assert xs == sorted(xs) and len(xs) == 4
    ys = [float(c.get("cy")) for c in circles]
    assert ys[2] > ys[0] > ys[1] > ys[3]  # scores 1 < 3 < 5 < 7: lower scores sit lower (larger y)
    assert circles[2].get("fill") == "#c2413b" and circles[3].get("fill") != "#c2413b"  # 1 is in the crisis range
    polyline = coordinates(root, "polyline")[0]
    assert len(polyline.get("points").split()) == 4
    marks = [g for g in root.iter(f"{SVG}g") if g.get("class") == "infusion"]
    assert [g.find(f"{SVG}title").text for g in marks] == ["Induction 1 of 6, Mar 1", "Induction 2 of 6, Mar 5"]
    line_xs = [float(g.find(f"{SVG}line").get("x1")) for g in marks]
    assert line_xs[0] < xs[0] < line_xs[1] < xs[-1]
    desc = root.find(f"{SVG}desc").text
    assert desc == ("4 mood scores from Mar 2 to Mar 8; lowest 1, highest 7, latest 7 of 10. "
                    "2 infusion days marked with dashed lines.")
    assert root.get("aria-labelledby") == "mood-9-title mood-9-desc"


def test_infusions_without_scores_still_draw_their_lines():
    root = parse(mood_chart([], [Infusion(START, "Maintenance")], "Asia/Tokyo"))
    assert len([g for g in root.iter(f"{SVG}g") if g.get("class") == "infusion"]) == 1
    assert "1 infusion day marked" in root.find(f"{SVG}desc").text


def test_labels_are_escaped():
    markup = str(mood_chart([], [Infusion(START, "<script>x</script>")], "UTC"))
    assert "<script>" not in markup and re.search(r"&lt;script&gt;", markup)
