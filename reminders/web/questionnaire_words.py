"""Every word the patient questionnaire pages say around the scale's own wording, in English
and Spanish (the scale's items and options come from its definition file)."""
from __future__ import annotations

WORDS: dict[str, dict[str, str]] = {
    "en": {
        "hello": "Hello {name}",
        "intro_title": "A few questions before your visit",
        "intro_count": "{questions} short questions, about {minutes}.",
        "minutes": "{n} minutes",
        "minute": "1 minute",
        "intro_care_team": "Your answers go to your care team at {clinic}, who use them to see how your "
                           "treatment is working.",
        "intro_how": "Tap the answer that fits best. Each tap saves your answer and moves on.",
        "intro_not_watched": "This form is not watched around the clock.",
        "crisis_line_short": "If you are thinking about hurting yourself, call or text {crisis} now. "
                             "In an emergency, call {emergency}.",
        "start": "Start",
        "progress": "Question {n} of {of}",
        "part": "Part {n} of {of}",
        "back": "Back to the previous question",
        "extra_progress": "One last question",
        "extra_skip": "Skip this question",
        "your_answer": "your answer",
        "choose": "Choose one answer",
        "safety_title": "Please reach out now",
        "safety_call": "Call {crisis}",
        "safety_text": "Text {crisis}",
        "safety_emergency": "Call {emergency}",
        "safety_crisis": "If you are having thoughts of hurting yourself, call or text {crisis}{lifeline} now.",
        "lifeline_988": " (the Suicide & Crisis Lifeline, free and open day and night)",
        "safety_danger": "If you are in danger, call {emergency}.",
        "safety_told": "Your care team has been told about your answer and will contact you.",
        "thanks_title": "Thank you, {name}",
        "thanks_body": "Your answers have been sent to your care team at {clinic}. You can close this page.",
        "one_more": "One more short set: {questions} questions",
        "bad_answer": "That answer could not be saved. Please choose one of the answers below.",
        "expired_title": "This link has expired",
        "expired_body": "This link has expired. Please call the clinic at {phone}.",
        "reused_title": "Already answered",
        "reused_body": "These questions are already answered, thank you.",
        "not_found_title": "Page not found",
        "not_found_body": "This page could not be found.",
        "too_many_title": "Please wait a moment",
        "too_many_body": "Too many requests. Please try again in {seconds} seconds.",
        "forbidden_title": "Not allowed",
        "forbidden_body": "This answer was not sent from this page.",
    },
    "es": {
        "hello": "Hola {name}",
        "intro_title": "Unas preguntas antes de su cita",
        "intro_count": "{questions} preguntas breves, unos {minutes}.",
        "minutes": "{n} minutos",
        "minute": "1 minuto",
        "intro_care_team": "Sus respuestas van a su equipo de atención en {clinic}, que las usa para ver "
                           "cómo funciona su tratamiento.",
        "intro_how": "Toque la respuesta que mejor corresponda. Cada toque guarda su respuesta y sigue.",
        "intro_not_watched": "Nadie vigila este formulario a toda hora.",
        "crisis_line_short": "Si está pensando en hacerse daño, llame o envíe un mensaje de texto al {crisis} "
                             "ahora. En una emergencia, llame al {emergency}.",
        "start": "Empezar",
        "progress": "Pregunta {n} de {of}",
        "part": "Parte {n} de {of}",
        "back": "Volver a la pregunta anterior",
        "extra_progress": "Una última pregunta",
        "extra_skip": "Omitir esta pregunta",
        "your_answer": "su respuesta",
        "choose": "Elija una respuesta",
        "safety_title": "Por favor, busque ayuda ahora",
        "safety_call": "Llamar al {crisis}",
        "safety_text": "Enviar un texto al {crisis}",
        "safety_emergency": "Llamar al {emergency}",
        "safety_crisis": "Si tiene pensamientos de hacerse daño, llame o envíe un mensaje de texto al "
                         "{crisis}{lifeline} ahora.",
        "lifeline_988": " (Línea de Prevención del Suicidio y Crisis, gratis, día y noche; oprima 2 para español)",
        "safety_danger": "Si está en peligro, llame al {emergency}.",
        "safety_told": "Su equipo de atención ya sabe de su respuesta y se comunicará con usted.",
        "thanks_title": "Gracias, {name}",
        "thanks_body": "Sus respuestas se enviaron a su equipo de atención en {clinic}. Puede cerrar esta página.",
        "one_more": "Una serie breve más: {questions} preguntas",
        "bad_answer": "No se pudo guardar esa respuesta. Por favor, elija una de las respuestas de abajo.",
        "expired_title": "Este enlace ha vencido",
        "expired_body": "Este enlace ha vencido. Por favor, llame a la clínica al {phone}.",
        "reused_title": "Ya respondido",
        "reused_body": "Estas preguntas ya están respondidas, gracias.",
        "not_found_title": "Página no encontrada",
        "not_found_body": "No se encontró esta página.",
        "too_many_title": "Espere un momento, por favor",
        "too_many_body": "Demasiadas solicitudes. Por favor, inténtelo de nuevo en {seconds} segundos.",
        "forbidden_title": "No permitido",
        "forbidden_body": "Esta respuesta no se envió desde esta página.",
    },
}


def language_of(code: str | None) -> str:
    return "es" if code and code.lower().startswith("es") else "en"


class PageWords:
    """`say("progress", n=3, of=9)` in a template: one word of the page, in the patient's language."""

    def __init__(self, language: str | None):
        self.language = language_of(language)
        self._words = WORDS[self.language]

    def __call__(self, key: str, **values) -> str:
        return self._words[key].format(**values)
