"""One scale's scores over a course as inline SVG: severity bands shaded and named, infusion days
marked (held ones solid, upcoming ones dashed), the baseline drawn as a square.

The same conventions as the mood chart (charts.py): drawn on the server, no script, <title> and
<desc> for screen readers, and the same data as a table (`chart.table`). Pure: it gets a
ScaleProgress and the course's infusion days, and returns markup.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from reminders.measures.progress import ScaleProgress
from reminders.web.staff.charts import Chart, short_label

WIDTH, HEIGHT = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 46, 150, 30, 84
TEXT = 'class="chart-text" font-size="12" fill="#4a5a66"'
# Lightest for the mildest band, warmest for the most severe; a scale's bands take them in order.
BAND_FILLS = ("#e8f4ec", "#f3f5e1", "#fcf1dc", "#fbe6d9", "#f8dddc", "#f3d3d3")
LINE, POINT, INFUSION = "#2f7d8c", "#2f7d8c", "#7a5cc2"


@dataclass(frozen=True)
class InfusionDay:
    at: datetime
    label: str  # "Induction 3 of 6", "Maintenance"
    held: bool  # False: still to come


def day(value: datetime, zone: ZoneInfo) -> str:
    local = value.astimezone(zone)
    return f"{local:%b} {local.day}"


def band_fill(index: int, count: int) -> str:
    """The band's tint: spread over the palette so that the top band is always the warmest."""
    if count <= 1:
        return BAND_FILLS[0]
    return BAND_FILLS[round(index * (len(BAND_FILLS) - 1) / (count - 1))]


def time_range(instants: list[datetime]) -> tuple[datetime, datetime]:
    start, end = min(instants), max(instants)
    if end - start < timedelta(days=2):
        middle = start + (end - start) / 2
        return middle - timedelta(days=1), middle + timedelta(days=1)
    pad = (end - start) * 0.05
    return start - pad, end + pad


def scale_chart(progress: ScaleProgress, infusions: list[InfusionDay], zone: str, *, chart_id: str) -> Chart:
    tz = ZoneInfo(zone)
    scale = progress.scale
    points = list(progress.points)
    infusions = sorted(infusions, key=lambda i: i.at)
    start, end = time_range([p.taken_at for p in points] + [i.at for i in infusions])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    title_id, desc_id = f"{chart_id}-title", f"{chart_id}-desc"

    def x(at: datetime) -> float:
        return round(LEFT + plot_w * (at - start).total_seconds() / (end - start).total_seconds(), 1)

    def y(score: float) -> float:
        return round(TOP + plot_h * (1 - score / scale.max_score), 1)

    parts = [
        f'<svg class="measure-chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
        f'aria-labelledby="{title_id} {desc_id}" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{title_id}">{escape(scale.short_name)} scores over the course</title>',
        f'<desc id="{desc_id}">{escape(describe(progress, infusions, tz))}</desc>',
    ]
    parts += _bands(progress, y, plot_w)
    parts.append(f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#d5dde3"/>')
    parts.append(f'<text class="axis-title chart-text" x="14" y="{TOP + plot_h / 2}" text-anchor="middle" '
                 f'font-size="12" font-weight="600" fill="#4a5a66" transform="rotate(-90 14 {TOP + plot_h / 2})">'
                 f'{escape(scale.short_name)} score</text>')
    parts.append(f'<text class="axis-title chart-text" x="{LEFT + plot_w / 2}" y="{HEIGHT - 6}" '
                 f'text-anchor="middle" font-size="12" font-weight="600" fill="#4a5a66">'
                 f'{"Date of each infusion" if infusions else "Date"}</text>')
    parts += [_infusion(i, x(i.at), tz, plot_h) for i in infusions]
    if len(points) > 1:
        path = " ".join(f"{x(p.taken_at)},{y(p.score)}" for p in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{LINE}" stroke-width="2.5" '
                     f'stroke-linejoin="round" stroke-linecap="round"/>')
    for point in points:
        parts.append(_point(progress, point, x(point.taken_at), y(point.score), tz))
    if not infusions:
        for index, at in enumerate((start, end)):
            parts.append(f'<text x="{x(at)}" y="{TOP + plot_h + 18}" text-anchor="{("start", "end")[index]}" '
                         f'{TEXT}>{escape(day(at, tz))}</text>')
    parts.append("</svg>")
    return Chart("".join(parts), scale_table(progress, infusions, tz))


def _bands(progress: ScaleProgress, y, plot_w: int) -> list[str]:
    bands = sorted(progress.scale.bands, key=lambda b: b.low)
    parts = []
    for index, band in enumerate(bands):
        top = y(band.high if band is bands[-1] else band.high + 1)
        bottom = y(band.low)
        label = f"{band.label('en')} {band.low}–{band.high}"
        parts.append(f'<rect class="band band-{escape(band.key)}" x="{LEFT}" y="{top}" width="{plot_w}" '
                     f'height="{round(bottom - top, 1)}" fill="{band_fill(index, len(bands))}">'
                     f'<title>{escape(label)}</title></rect>')
        if bottom - top >= 11:  # too thin a band keeps its name in its tooltip and the table
            parts.append(f'<text class="band-label chart-text" x="{LEFT + plot_w + 6}" y="{round((top + bottom) / 2 + 4, 1)}" '
                         f'font-size="11" fill="#4a5a66">{escape(label)}</text>')
        parts.append(f'<text x="{LEFT - 6}" y="{bottom + 4}" text-anchor="end" {TEXT}>{band.low}</text>')
    parts.append(f'<text x="{LEFT - 6}" y="{y(progress.scale.max_score) + 4}" text-anchor="end" {TEXT}>'
                 f'{progress.scale.max_score}</text>')
    return parts


def _infusion(infusion: InfusionDay, px: float, tz: ZoneInfo, plot_h: int) -> str:
    state = "held" if infusion.held else "upcoming"
    label = f"{infusion.label}, {day(infusion.at, tz)}" + ("" if infusion.held else " (upcoming)")
    dash = "" if infusion.held else ' stroke-dasharray="5 4"'
    base = TOP + plot_h + 14
    return (f'<g class="infusion infusion-{state}"><title>{escape(label)}</title>'
            f'<line x1="{px}" x2="{px}" y1="{TOP}" y2="{TOP + plot_h}" stroke="{INFUSION}" stroke-width="2"{dash}/>'
            f'<text class="infusion-number chart-text" x="{px}" y="{TOP - 9}" text-anchor="middle" font-size="13" '
            f'font-weight="700" fill="#5b3fa8">{escape(short_label(infusion.label))}</text>'
            f'<text class="infusion-date chart-text" x="{px}" y="{base}" text-anchor="end" font-size="12" '
            f'fill="#4a5a66" transform="rotate(-40 {px} {base})">{escape(day(infusion.at, tz))}</text></g>')


def _point(progress: ScaleProgress, point, cx: float, cy: float, tz: ZoneInfo) -> str:
    words = f"{day(point.taken_at, tz)}: {progress.scale.short_name} {point.score} ({progress.band_label(point)})"
    if point is progress.baseline:  # a square, so the baseline stands out by its shape
        return (f'<g class="score score-baseline"><title>Baseline, {escape(words)}</title>'
                f'<rect x="{cx - 6.5}" y="{cy - 6.5}" width="13" height="13" fill="#fff" stroke="{POINT}" '
                f'stroke-width="3"/><text class="baseline-label chart-text" x="{cx + 9}" y="{cy - 9}" '
                f'font-size="12" font-weight="700" fill="#1f5b68">Baseline</text></g>')
    return (f'<circle class="score" cx="{cx}" cy="{cy}" r="5.5" fill="{POINT}" stroke="#fff" stroke-width="2">'
            f'<title>{escape(words)}</title></circle>')


def scale_table(progress: ScaleProgress, infusions: list[InfusionDay], tz: ZoneInfo) -> Markup:
    """The chart's data by day: the scores, their bands and the infusion on that day."""
    days: dict = {}
    for point in progress.points:
        shown = f"{point.score}" + (" (baseline)" if point is progress.baseline else "")
        days.setdefault(point.taken_at.astimezone(tz).date(), ([], [], []))
        days[point.taken_at.astimezone(tz).date()][0].append(shown)
        days[point.taken_at.astimezone(tz).date()][1].append(progress.band_label(point))
    for infusion in infusions:
        days.setdefault(infusion.at.astimezone(tz).date(), ([], [], []))[2].append(
            infusion.label + ("" if infusion.held else " (upcoming)"))
    rows = [Markup("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>").format(
        f"{d:%a %b} {d.day}", ", ".join(days[d][0]) or "—", ", ".join(days[d][1]) or "—", ", ".join(days[d][2]) or "—")
        for d in sorted(days)]
    name = progress.scale.short_name
    return Markup('<table class="chart-table"><caption>The {} chart as a table: scores (0 to {}), severity and '
                  'infusions by day</caption><thead><tr><th scope="col">Date</th><th scope="col">Score</th>'
                  '<th scope="col">Severity</th><th scope="col">Infusion</th></tr></thead><tbody>{}</tbody></table>'
                  ).format(name, progress.scale.max_score, Markup("").join(rows))


def describe(progress: ScaleProgress, infusions: list[InfusionDay], tz: ZoneInfo) -> str:
    scale, points = progress.scale, progress.points
    if len(points) == 1:
        text = f"One {scale.short_name} score: {points[0].score} of {scale.max_score} on {day(points[0].taken_at, tz)}."
    else:
        text = (f"{len(points)} {scale.short_name} scores from {day(points[0].taken_at, tz)} to "
                f"{day(points[-1].taken_at, tz)}: baseline {progress.baseline.score}, latest {progress.latest.score} "
                f"of {scale.max_score}.")
    bands = ", ".join(f"{b.label('en').lower()} {b.low} to {b.high}" for b in sorted(scale.bands, key=lambda b: b.low))
    text += f" Shaded severity bands: {bands}."
    held = sum(1 for i in infusions if i.held)
    upcoming = len(infusions) - held
    if held:
        text += f" {held} infusion{'s' if held != 1 else ''} held, solid lines."
    if upcoming:
        text += f" {upcoming} upcoming, dashed lines."
    return text
