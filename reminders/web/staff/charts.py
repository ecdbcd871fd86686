"""The mood chart: scores 0 to 10 over time, infusion days as vertical lines, as inline SVG.

Drawn on the server so it works offline and without script; accessible through <title> and
<desc>, with axis titles, each infusion's number above its line and its date below the axis, low
scores drawn as a triangle (shape as well as colour), and a table of the same data
(`chart.table`, shown below the chart by staff/_chart.html). Pure: it gets the points and the
days, and returns markup.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 58, 16, 30, 84
LOW_SCORE = 2
TEXT = 'class="chart-text" font-size="12" fill="#4a5a66"'  # staff.css makes it larger on a tablet


class Chart(Markup):
    """The chart's SVG, with the same data as an HTML table in `.table`."""

    table: Markup

    def __new__(cls, svg: str, table: Markup):
        chart = super().__new__(cls, svg)
        chart.table = table
        return chart


def short_label(label: str) -> str:
    """The number drawn above an infusion's line: "3" for "Induction 3 of 6", "M" for maintenance."""
    match = re.search(r"(\d+) of \d+", label)
    return match.group(1) if match else label[:1].upper()


@dataclass(frozen=True)
class MoodPoint:
    at: datetime
    score: int


@dataclass(frozen=True)
class Infusion:
    at: datetime
    label: str  # "Infusion 3 of 6", "Maintenance"


def _day(value: datetime, zone: ZoneInfo) -> str:
    local = value.astimezone(zone)
    return f"{local:%b} {local.day}"


PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


@dataclass(frozen=True)
class Frame:
    """Where a time and a score fall on the plot; start and end are None for a chart with nothing on it."""
    start: datetime | None
    end: datetime | None

    @classmethod
    def around(cls, instants: list[datetime]) -> Frame:
        if not instants:
            return cls(None, None)
        start, end = min(instants), max(instants)
        if end - start < timedelta(days=2):  # one day (or one point): give it room on both sides
            middle = start + (end - start) / 2
            return cls(middle - timedelta(days=1), middle + timedelta(days=1))
        pad = (end - start) * 0.04  # a little air so the first and last marks do not sit on the frame
        return cls(start - pad, end + pad)

    def x(self, at: datetime) -> float:
        span = (self.end - self.start).total_seconds()
        return round(LEFT + PLOT_W * (at - self.start).total_seconds() / span, 1)

    @staticmethod
    def y(score: float) -> float:
        return round(TOP + PLOT_H * (1 - score / 10), 1)


def mood_chart(points: list[MoodPoint], infusions: list[Infusion], zone: str, *, chart_id: str = "mood",
               low_score: int = LOW_SCORE) -> Chart:
    tz = ZoneInfo(zone)
    points = sorted(points, key=lambda p: p.at)
    infusions = sorted(infusions, key=lambda i: i.at)
    frame = Frame.around([p.at for p in points] + [i.at for i in infusions])
    parts = _axes(points, infusions, tz, chart_id, low_score)
    if frame.start is None:
        parts.append(f'<text x="{LEFT + PLOT_W / 2}" y="{TOP + PLOT_H / 2}" text-anchor="middle" font-size="15" '
                     f'fill="#5b6b77">No mood scores yet</text>')
    else:
        parts += _infusion_lines(infusions, tz, frame)
        parts += _score_marks(points, tz, frame, low_score)
        if not infusions:  # no infusion dates under the axis: the first, middle and last day
            parts += _day_labels(tz, frame)
    parts.append("</svg>")
    return Chart("".join(parts), mood_table(points, infusions, tz, low_score))


def _axes(points: list[MoodPoint], infusions: list[Infusion], tz: ZoneInfo, chart_id: str,
          low_score: int) -> list[str]:
    """The opening of the SVG: its title and description, the plot, the score lines, the axis titles and the
    band of low scores."""
    y = Frame.y
    title_id, desc_id = f"{chart_id}-title", f"{chart_id}-desc"
    parts = [
        f'<svg class="mood-chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
        f'aria-labelledby="{title_id} {desc_id}" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{title_id}">Mood scores over time</title>',
        f'<desc id="{desc_id}">{escape(_describe(points, infusions, tz))}</desc>',
        f'<rect x="{LEFT}" y="{TOP}" width="{PLOT_W}" height="{PLOT_H}" fill="#fbfcfd" stroke="#d5dde3"/>',
    ]
    for score in (0, 2, 4, 6, 8, 10):
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{y(score)}" y2="{y(score)}" '
                     f'stroke="#e6ebef" stroke-width="1"/>')
        parts.append(f'<text x="{LEFT - 8}" y="{y(score) + 4}" text-anchor="end" {TEXT}>{score}</text>')
    parts.append(f'<text class="axis-title chart-text" x="16" y="{TOP + PLOT_H / 2}" text-anchor="middle" '
                 f'font-size="12" font-weight="600" fill="#4a5a66" transform="rotate(-90 16 {TOP + PLOT_H / 2})">'
                 f'Mood (10 = best)</text>')
    parts.append(f'<text class="axis-title chart-text" x="{LEFT + PLOT_W / 2}" y="{HEIGHT - 6}" text-anchor="middle" '
                 f'font-size="12" font-weight="600" fill="#4a5a66">'
                 f'{"Date of each infusion" if infusions else "Date"}</text>')
    parts.append(f'<rect x="{LEFT}" y="{y(low_score)}" width="{PLOT_W}" height="{round(y(0) - y(low_score), 1)}" '
                 f'fill="#fdecec" opacity="0.7"><title>Scores of {low_score} or less open an escalation</title></rect>')
    return parts


def _infusion_lines(infusions: list[Infusion], tz: ZoneInfo, frame: Frame) -> list[str]:
    """A dashed line for each infusion, its number above the plot and its date below the axis."""
    parts = []
    for infusion in infusions:
        px = frame.x(infusion.at)
        label = f"{infusion.label}, {_day(infusion.at, tz)}"
        base = TOP + PLOT_H + 14
        parts.append(f'<g class="infusion"><title>{escape(label)}</title>'
                     f'<line x1="{px}" x2="{px}" y1="{TOP}" y2="{TOP + PLOT_H}" stroke="#7a5cc2" '
                     f'stroke-width="2" stroke-dasharray="5 4"/>'
                     f'<text class="infusion-number chart-text" x="{px}" y="{TOP - 9}" text-anchor="middle" '
                     f'font-size="13" font-weight="700" fill="#5b3fa8">{escape(short_label(infusion.label))}</text>'
                     f'<text class="infusion-date chart-text" x="{px}" y="{base}" text-anchor="end" font-size="12" '
                     f'fill="#4a5a66" transform="rotate(-40 {px} {base})">{escape(_day(infusion.at, tz))}</text></g>')
    return parts


def _score_marks(points: list[MoodPoint], tz: ZoneInfo, frame: Frame, low_score: int) -> list[str]:
    """The line through the scores, and each score as a dot (a low one as a triangle)."""
    x, y = frame.x, frame.y
    parts = []
    if len(points) > 1:
        path = " ".join(f"{x(p.at)},{y(p.score)}" for p in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#2f7d8c" stroke-width="2.5" '
                     f'stroke-linejoin="round" stroke-linecap="round"/>')
    for point in points:
        cx, cy = x(point.at), y(point.score)
        if point.score <= low_score:  # a triangle pointing down: low by its shape, not only its red
            parts.append(f'<path class="score score-low" d="M{cx - 7.5} {cy - 6} L{cx + 7.5} {cy - 6} '
                         f'L{cx} {cy + 7.5} Z" fill="#c2413b" stroke="#fff" stroke-width="1.5">'
                         f'<title>{escape(_day(point.at, tz))}: mood {point.score} of 10 (low)</title></path>')
        else:
            parts.append(f'<circle class="score" cx="{cx}" cy="{cy}" r="5.5" fill="#2f7d8c" '
                         f'stroke="#fff" stroke-width="2"><title>{escape(_day(point.at, tz))}: mood '
                         f'{point.score} of 10</title></circle>')
    return parts


def _day_labels(tz: ZoneInfo, frame: Frame) -> list[str]:
    start, end = frame.start, frame.end
    labels = [start, end] if (end - start) < timedelta(days=4) else [start, start + (end - start) / 2, end]
    parts = []
    for index, at in enumerate(labels):
        anchor = "start" if index == 0 else "end" if index == len(labels) - 1 else "middle"
        parts.append(f'<text x="{frame.x(at)}" y="{TOP + PLOT_H + 18}" text-anchor="{anchor}" {TEXT}>'
                     f'{escape(_day(at, tz))}</text>')
    return parts


def mood_table(points: list[MoodPoint], infusions: list[Infusion], tz: ZoneInfo, low_score: int) -> Markup:
    """The chart's data by day: the mood scores of the day and the infusion on it."""
    if not points and not infusions:
        return Markup("")
    days: dict = {}
    for point in points:
        days.setdefault(point.at.astimezone(tz).date(), ([], []))[0].append(point.score)
    for infusion in infusions:
        days.setdefault(infusion.at.astimezone(tz).date(), ([], []))[1].append(infusion.label)
    rows = []
    for day in sorted(days):
        scores, labels = days[day]
        shown = ", ".join(f"{s} (low)" if s <= low_score else str(s) for s in scores) or "—"
        low = any(s <= low_score for s in scores)
        rows.append(Markup('<tr{}><td>{}</td><td>{}</td><td>{}</td></tr>').format(
            Markup(' class="is-low"') if low else "", f"{day:%a %b} {day.day}", shown, ", ".join(labels) or "—"))
    return Markup('<table class="chart-table"><caption>The chart as a table: mood scores (0 worst, 10 best) '
                  'and infusions by day</caption><thead><tr><th scope="col">Date</th><th scope="col">Mood</th>'
                  '<th scope="col">Infusion</th></tr></thead><tbody>{}</tbody></table>').format(Markup("").join(rows))


def _describe(points: list[MoodPoint], infusions: list[Infusion], tz: ZoneInfo) -> str:
    if not points:
        text = "No mood scores have been received yet."
    elif len(points) == 1:
        text = f"One mood score: {points[0].score} of 10 on {_day(points[0].at, tz)}."
    else:
        scores = [p.score for p in points]
        text = (f"{len(points)} mood scores from {_day(points[0].at, tz)} to {_day(points[-1].at, tz)}; "
                f"lowest {min(scores)}, highest {max(scores)}, latest {scores[-1]} of 10.")
    if infusions:
        text += f" {len(infusions)} infusion day{'s' if len(infusions) != 1 else ''} marked with dashed lines."
    return text
