"""The mood chart: scores 0 to 10 over time, infusion days as vertical lines, as inline SVG.

Drawn on the server so it works offline and without script; accessible through <title> and
<desc>. Pure: it gets the points and the days, and returns markup.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 40, 16, 16, 36
LOW_SCORE = 2


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


def mood_chart(points: list[MoodPoint], infusions: list[Infusion], zone: str, *, chart_id: str = "mood",
               low_score: int = LOW_SCORE) -> Markup:
    tz = ZoneInfo(zone)
    points = sorted(points, key=lambda p: p.at)
    infusions = sorted(infusions, key=lambda i: i.at)
    instants = [p.at for p in points] + [i.at for i in infusions]
    title_id, desc_id = f"{chart_id}-title", f"{chart_id}-desc"

    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    if instants:
        start, end = min(instants), max(instants)
        if end - start < timedelta(days=2):  # one day (or one point): give it room on both sides
            middle = start + (end - start) / 2
            start, end = middle - timedelta(days=1), middle + timedelta(days=1)
        else:  # a little air so the first and last marks do not sit on the frame
            pad = (end - start) * 0.04
            start, end = start - pad, end + pad
    else:
        start = end = None

    def x(at: datetime) -> float:
        span = (end - start).total_seconds()
        return round(LEFT + plot_w * (at - start).total_seconds() / span, 1)

    def y(score: float) -> float:
        return round(TOP + plot_h * (1 - score / 10), 1)

    parts = [
        f'<svg class="mood-chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
        f'aria-labelledby="{title_id} {desc_id}" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{title_id}">Mood scores over time</title>',
        f'<desc id="{desc_id}">{escape(_describe(points, infusions, tz))}</desc>',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fbfcfd" stroke="#d5dde3"/>',
    ]
    for score in (0, 2, 4, 6, 8, 10):
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(score)}" y2="{y(score)}" '
                     f'stroke="#e6ebef" stroke-width="1"/>')
        parts.append(f'<text x="{LEFT - 8}" y="{y(score) + 4}" text-anchor="end" font-size="12" '
                     f'fill="#5b6b77">{score}</text>')
    parts.append(f'<rect x="{LEFT}" y="{y(low_score)}" width="{plot_w}" height="{round(y(0) - y(low_score), 1)}" '
                 f'fill="#fdecec" opacity="0.7"><title>Scores of {low_score} or less open an escalation</title></rect>')

    if start is None:
        parts.append(f'<text x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" text-anchor="middle" font-size="15" '
                     f'fill="#5b6b77">No mood scores yet</text>')
    else:
        for infusion in infusions:
            px = x(infusion.at)
            label = f"{infusion.label}, {_day(infusion.at, tz)}"
            parts.append(f'<g class="infusion"><title>{escape(label)}</title>'
                         f'<line x1="{px}" x2="{px}" y1="{TOP}" y2="{TOP + plot_h}" stroke="#7a5cc2" '
                         f'stroke-width="2" stroke-dasharray="5 4"/>'
                         f'<path d="M{px - 5} {TOP} L{px + 5} {TOP} L{px} {TOP + 7} Z" fill="#7a5cc2"/></g>')
        if len(points) > 1:
            path = " ".join(f"{x(p.at)},{y(p.score)}" for p in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="#2f7d8c" stroke-width="2.5" '
                         f'stroke-linejoin="round" stroke-linecap="round"/>')
        for point in points:
            colour = "#c2413b" if point.score <= low_score else "#2f7d8c"
            parts.append(f'<circle class="score" cx="{x(point.at)}" cy="{y(point.score)}" r="5.5" fill="{colour}" '
                         f'stroke="#fff" stroke-width="2"><title>{escape(_day(point.at, tz))}: mood '
                         f'{point.score} of 10</title></circle>')
        labels = [start, end] if (end - start) < timedelta(days=4) else [start, start + (end - start) / 2, end]
        for index, at in enumerate(labels):
            anchor = "start" if index == 0 else "end" if index == len(labels) - 1 else "middle"
            parts.append(f'<text x="{x(at)}" y="{HEIGHT - 12}" text-anchor="{anchor}" font-size="12" '
                         f'fill="#5b6b77">{escape(_day(at, tz))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


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
