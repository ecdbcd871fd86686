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
    assert xs == sorted(xs) and len(xs) == 3
    ys = [float(c.get("cy")) for c in circles]
    assert ys[0] > ys[1] > ys[2]  # scores 3 < 5 < 7: lower scores sit lower (larger y)
    low = [p for p in coordinates(root, "path") if p.get("class") == "score score-low"]
    # 1 is in the crisis range: a red triangle, low by its shape as well as its colour
    assert len(low) == 1 and low[0].get("fill") == "#c2413b"
    assert low[0].find(f"{SVG}title").text == "Mar 6: mood 1 of 10 (low)"
    xs.insert(2, float(low[0].get("d").split()[0][1:]) + 7.5)
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


def test_axis_titles_infusion_numbers_and_dates_and_a_table():
    points = [MoodPoint(START + timedelta(days=1), 6), MoodPoint(START + timedelta(days=3), 2)]
    infusions = [Infusion(START, "Induction 1 of 6"), Infusion(START + timedelta(days=2), "Induction 2 of 6"),
                 Infusion(START + timedelta(days=30), "Maintenance")]
    chart = mood_chart(points, infusions, "America/New_York")
    root = parse(chart)
    texts = {t.get("class"): [] for t in root.iter(f"{SVG}text")}
    for t in root.iter(f"{SVG}text"):
        texts[t.get("class")].append(t.text)
    assert texts["axis-title chart-text"] == ["Mood (10 = best)", "Date of each infusion"]
    assert texts["infusion-number chart-text"] == ["1", "2", "M"]
    assert texts["infusion-date chart-text"] == ["Mar 2", "Mar 4", "Apr 1"]
    table = str(chart.table)
    assert ET.fromstring(table).tag == "table"
    rows = re.findall(r"<tr(?: class=\"is-low\")?><td>([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td></tr>", table)
    assert rows == [("Mon Mar 2", "—", "Induction 1 of 6"), ("Tue Mar 3", "6", "—"),
                    ("Wed Mar 4", "—", "Induction 2 of 6"), ("Thu Mar 5", "2 (low)", "—"), ("Wed Apr 1", "—", "Maintenance")]
    assert '<tr class="is-low"><td>Thu Mar 5' in table
    assert str(mood_chart([], [], "UTC").table) == ""
