"""The per-patient measures report as a PDF, drawn with fpdf2 (a maintained, pure-Python PDF library).

The same contents as the printable page (staff/report.html): the clinic, the patient, each course
with its infusions, per scale the scores with baseline, latest, change, response and remission and a
simple chart, any self-harm answers and whether staff acknowledged them, and a footnote naming the
instruments and the rules. No Flask here: it gets what measures_view built and returns bytes.

The text is set in DejaVu Sans, shipped with the package (fonts/, with its licence): fpdf2's
built-in Helvetica covers Latin-1 only and would print "Nguy?n" for Nguyễn. DejaVu covers the
Latin, Greek and Cyrillic scripts; a name in a script it lacks (Chinese, say) still prints
incompletely, and the printable page has it whole.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from reminders.models import Patient
from reminders.web.staff.charts import short_label
from reminders.web.staff.measures_chart import band_fill, day, time_range
from reminders.web.staff.measures_view import RULES, CourseMeasures, ScaleView, instruments

FONTS = Path(__file__).with_name("fonts")
FONT = "DejaVu"
INK, MUTED, LINE, INFUSION = (30, 43, 51), (91, 107, 119), (47, 125, 140), (122, 92, 194)


def rgb(colour: str) -> tuple[int, int, int]:
    colour = colour.lstrip("#")
    return int(colour[0:2], 16), int(colour[2:4], 16), int(colour[4:6], 16)


@dataclass(frozen=True)
class ReportFacts:
    clinic: str
    patient: Patient
    courses: list[CourseMeasures]
    generated: datetime
    zone: str


class ReportPDF(FPDF):
    def __init__(self, facts: ReportFacts):
        super().__init__(format="Letter")
        self.facts = facts
        self.set_margins(18, 16, 18)
        self.set_auto_page_break(True, margin=18)
        self.set_title(f"Measures report: {facts.patient.full_name}")
        self.set_author(facts.clinic)
        self.set_creator("clinic reminders")
        self.add_font(FONT, "", FONTS / "DejaVuSans.ttf")
        self.add_font(FONT, "B", FONTS / "DejaVuSans-Bold.ttf")

    def footer(self):
        self.set_y(-13)
        self.set_font(FONT, size=8)
        self.set_text_color(*MUTED)
        self.cell(0, 5, f"{self.facts.clinic} · {self.facts.patient.full_name} · page {self.page_no()} of {{nb}}",
                  align="C")

    def text_line(self, text: str, size: float = 10, style: str = "", height: float = 5.5, colour=INK):
        self.set_font(FONT, style, size)
        self.set_text_color(*colour)
        self.multi_cell(0, height, str(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def keep(self, height: float) -> None:
        """A new page when `height` would not fit, so a heading stays with what follows it."""
        if self.get_y() + height > self.h - self.b_margin:
            self.add_page()


def report_pdf(facts: ReportFacts) -> bytes:
    pdf = ReportPDF(facts)
    pdf.add_page()
    tz = ZoneInfo(facts.zone)
    patient = facts.patient
    pdf.text_line(facts.clinic, 16, "B", 8)
    pdf.text_line("Measurement-based care report", 12, "", 6, MUTED)
    pdf.ln(2)
    pdf.text_line(f"Patient: {patient.full_name}", 12, "B", 6)
    pdf.text_line(f"Record ID: {patient.external_id or patient.id}")
    pdf.text_line(f"Generated {day(facts.generated, tz)}, {facts.generated.astimezone(tz):%Y} "
                  f"({facts.generated.astimezone(tz):%H:%M} {facts.zone})", 9, colour=MUTED)
    if not facts.courses:
        pdf.ln(4)
        pdf.text_line("No questionnaires have been sent to this patient.")
    for course in facts.courses:
        _course(pdf, course, tz)
    _footnote(pdf, facts.courses)
    return bytes(pdf.output())


def _course(pdf: ReportPDF, course: CourseMeasures, tz: ZoneInfo) -> None:
    pdf.keep(40)
    pdf.ln(4)
    record = course.course
    if record is None:
        pdf.text_line("Questionnaires outside a course", 13, "B", 7)
    else:
        dates = course.induction_dates
        since = f" since {day(min(dates), tz)}, {min(dates).astimezone(tz):%Y}" if dates else ""
        pdf.text_line(f"Course{since}", 13, "B", 7)
        pdf.text_line(f"Condition: {record.condition or 'not recorded'} · induction series of "
                      f"{record.induction_sessions_planned} · infusions attended: {course.held}")
        if dates:
            pdf.text_line("Induction dates: " + ", ".join(day(d, tz) for d in sorted(dates)), 9, colour=MUTED)
    for view in course.scales:
        _scale(pdf, view, course, tz)
    if course.lone_screen_rows:
        pdf.keep(20)
        pdf.ln(2)
        pdf.text_line("Screen negatives", 11, "B", 6)
        for row in course.lone_screen_rows:
            pdf.text_line(f"{day(row.at, tz)}, {row.at.astimezone(tz):%Y}: {row.score_words}, by SMS; "
                          f"not a {row.scale} total, so no response or remission.")
    if course.self_harm_rows:
        pdf.keep(20)
        pdf.ln(2)
        pdf.text_line("Self-harm answers", 11, "B", 6)
        for row in course.self_harm_rows:
            answers = ", ".join(f"item {n} answered {v}" for n, v in row.safety_answers if v > 0)
            e = row.escalation
            if e is not None and e.status == "acknowledged":  # resolved (open or claimed: not yet)
                handled = f"acknowledged by {e.acknowledged_by or 'staff'}" + (
                    f" on {day(e.acknowledged_at, tz)}" if e.acknowledged_at else "")
            else:
                handled = "not yet acknowledged by staff"
            pdf.text_line(f"{day(row.at, tz)}, {row.at.astimezone(tz):%Y}: {row.scale} {answers}; {handled}.")


def _scale(pdf: ReportPDF, view: ScaleView, course: CourseMeasures, tz: ZoneInfo) -> None:
    p = view.progress
    pdf.keep(110)
    pdf.ln(3)
    pdf.text_line(f"{view.scale.short_name}: {view.scale.title.text('en')}", 11, "B", 6)
    pdf.text_line(f"Baseline {p.baseline.score} ({p.band_label(p.baseline)}) · latest {p.latest.score} "
                  f"({p.band_label(p.latest)}) · change: {view.change_words}")
    pdf.text_line(f"Response: {'yes' if p.response else view.response_words.lower()} ({view.response_rule}) · "
                  f"Remission: {'yes' if p.remission else view.remission_words.lower()}")
    if view.screen_words:
        pdf.text_line(f"Since then: {view.screen_words} ({day(p.latest_screen.taken_at, tz)}).")
    _chart(pdf, view, course, tz)
    _table(pdf, view, tz)


def _table(pdf: ReportPDF, view: ScaleView, tz: ZoneInfo) -> None:
    widths = (34, 62, 20, 58)
    pdf.set_font(FONT, "B", 9)
    pdf.set_text_color(*INK)
    pdf.set_fill_color(238, 242, 244)
    for width, head in zip(widths, ("Date", "Occasion", "Score", "Severity")):
        pdf.cell(width, 6, head, border="B", fill=True)
    pdf.ln()
    pdf.set_font(FONT, "", 9)
    for taken_at, occasion, score, band in view.table_rows():
        pdf.keep(6)
        cells = (f"{day(taken_at, tz)}, {taken_at.astimezone(tz):%Y}", occasion, score, band)
        for width, text in zip(widths, cells):
            if pdf.get_string_width(str(text)) > width - 2:
                pdf.set_font(FONT, "", 7)  # "PHQ-2 screen negative (score 2), not a PHQ-9 total"
            pdf.cell(width, 5.5, str(text), border="B")
            pdf.set_font(FONT, "", 9)
        pdf.ln()


def _chart(pdf: ReportPDF, view: ScaleView, course: CourseMeasures, tz: ZoneInfo) -> None:
    """Bands as shaded strips, the scores as a line, infusions as vertical lines (dashed: upcoming)."""
    scale, points = view.scale, view.progress.points
    left, top, width, height = pdf.l_margin + 10, pdf.get_y() + 6, 120, 52
    start, end = time_range([pt.taken_at for pt in points] + [i.at for i in course.infusions])

    def x(at: datetime) -> float:
        return left + width * (at - start).total_seconds() / (end - start).total_seconds()

    def y(score: float) -> float:
        return top + height * (1 - score / scale.max_score)

    bands = sorted(scale.bands, key=lambda b: b.low)
    pdf.set_font(FONT, "", 7)
    for index, band in enumerate(bands):
        upper, lower = y(band.high if band is bands[-1] else band.high + 1), y(band.low)
        pdf.set_fill_color(*rgb(band_fill(index, len(bands))))
        pdf.rect(left, upper, width, lower - upper, style="F")
        pdf.set_text_color(*MUTED)
        if lower - upper >= 3:
            pdf.text(left + width + 2, (upper + lower) / 2 + 1, f"{band.label('en')} {band.low}-{band.high}")
        pdf.text(left - 6, lower + 1, str(band.low))
    pdf.text(left - 6, y(scale.max_score) + 1, str(scale.max_score))
    pdf.set_draw_color(200, 210, 216)
    pdf.set_line_width(0.2)
    pdf.rect(left, top, width, height)
    for infusion in course.infusions:
        pdf.set_draw_color(*INFUSION)
        pdf.set_line_width(0.5)
        if not infusion.held:
            pdf.set_dash_pattern(dash=1.2, gap=1)
        pdf.line(x(infusion.at), top, x(infusion.at), top + height)
        pdf.set_dash_pattern()
        pdf.set_text_color(*INFUSION)
        pdf.text(x(infusion.at) - 1, top - 1.2, str(short_label(infusion.label)))
    pdf.set_draw_color(*LINE)
    pdf.set_line_width(0.7)
    for a, b in zip(points, points[1:]):
        pdf.line(x(a.taken_at), y(a.score), x(b.taken_at), y(b.score))
    pdf.set_fill_color(*LINE)
    pdf.set_text_color(*INK)
    for point in points:
        px, py = x(point.taken_at), y(point.score)
        if point is view.progress.baseline:
            pdf.set_fill_color(255, 255, 255)
            pdf.rect(px - 1.4, py - 1.4, 2.8, 2.8, style="FD")
            pdf.set_fill_color(*LINE)
        else:
            pdf.circle(px, py, 1.2, style="F")  # fpdf2: x, y is the centre
        pdf.text(px - 1.5, py - 2.2, str(point.score))
        pdf.set_text_color(*MUTED)
        pdf.text(px - 4, top + height + 4, str(day(point.taken_at, tz)))
        pdf.set_text_color(*INK)
    pdf.set_text_color(*MUTED)
    pdf.text(left, top + height + 8, "Lines: infusion days (number above; dashed: upcoming). Square: baseline.")
    pdf.set_draw_color(0, 0, 0)
    pdf.set_line_width(0.2)
    pdf.set_y(top + height + 11)


def _footnote(pdf: ReportPDF, courses: list[CourseMeasures]) -> None:
    pdf.keep(40)
    pdf.ln(6)
    pdf.set_draw_color(200, 210, 216)
    pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
    pdf.ln(2)
    names = "; ".join(f"{s.short_name}: {s.title.text('en')}" for s in instruments(courses))
    if names:
        pdf.text_line(f"Instruments: {names}.", 8, height=4, colour=MUTED)
    pdf.text_line(RULES, 8, height=4, colour=MUTED)
    pdf.text_line("Scores are the patients' own answers to validated questionnaires sent by the clinic; "
                  "they support, and do not replace, clinical judgement.", 8, height=4, colour=MUTED)
