"""The words of an answer to a patient's text: its template on the channel the patient wrote on,
the context it is rendered with, and the built-in text when a template cannot be rendered."""
from __future__ import annotations

import logging

from reminders.channel_specs import spec_for
from reminders.inbound.office_hours import OfficeHours, when_read
from reminders.rendering import (clinic_context, flag_failures, message_context, render, team_name, team_name_es,
                                 text_template)
from reminders.visits.series import planned_length

log = logging.getLogger(__name__)


class ReplyWriting:
    """The conversation's answers (reminders.inbound.conversation): rendered from its state, the
    patient, the visit, the score taken, the reasons found, in the patient's language."""

    def context(self) -> dict:
        if self.patient is None:
            context = {"patient": {"first_name": "", "last_name": ""}, "clinic": clinic_context(self.settings),
                       "visit": None}
        else:
            with self.session.no_autoflush:  # loading the course need not insert the text's row early
                course = self.appointment.course if self.appointment is not None else None
            series = planned_length(course, self.settings)
            context = message_context(self.settings, self.patient, self.appointment, series)
        hours = OfficeHours.from_settings(self.settings)
        context["answer"] = {"read_when": when_read(hours, self.now, self.language),
                             "in_office_hours": hours.is_open(self.now),
                             "score": self.answer.get("score"),
                             "asks": "hurt" if self.answer.get("kind") == "pain" else "mood",
                             "period": self.answer.get("period", "day"),
                             # side effects or a blood pressure (not only a question): "if you feel worse"
                             "symptoms": any(r != "a question" for r in self.reasons),
                             "poison_control": bool(self.triage and self.triage.poison_control),
                             "callback_minutes": self.settings.oncall_callback_minutes}
        return context

    def reply(self, name: str) -> str:
        template = self.template(f"reply_{name}", self.language)
        context = self.context()
        return self.render(template, context) or fallback_reply(name, self.settings, context, self.language)

    def crisis_reply(self, base: str) -> str:
        """"emergency" (911 first) or "crisis" (988 first), in the patient's language; whatever staff
        made of the template, the answer carries both numbers."""
        template = self.template(f"reply_{base}", self.language)
        context = self.context()
        text = self.render(template, context)
        if not text or self.settings.crisis_line not in text or self.settings.emergency_number not in text:
            text = fallback_reply(base, self.settings, context, language=self.language)
            if base == "emergency" and context["answer"]["poison_control"]:
                text += (" Poison Control: 1-800-222-1222." if self.language != "es"
                         else " Control de Envenenamientos: 1-800-222-1222.")
        return text

    def with_score_noted(self, reply: str) -> str:
        """The answer, then a line saying what the number was taken as (a check-in's score); after
        it, so that a crisis answer still opens with the crisis line."""
        if self.answer.get("score") is None:
            return reply
        noted = self.render(self.template("reply_checkin_noted", self.language), self.context())
        return f"{reply} {noted}" if noted else reply

    def template(self, name: str, language: str) -> str:
        """The answer's template on the channel the patient wrote on (its own wording, else SMS's)."""
        return text_template(self.store, name, spec_for(self.text.channel), language)

    def render(self, name: str, context: dict) -> str | None:
        try:
            text = render(self.store, name, context) or None
            flag_failures(self.session, self.store, self.now)
            return text
        except Exception:  # noqa: BLE001 - a broken template must not cost the patient an answer
            log.exception("reply template %s failed; the built-in text is used", name)
            return None


FALLBACKS = {
    "en": {
        "crisis": ("We're so sorry you're going through this. Please call or text {crisis} now to talk with someone, "
                   "day or night. If you are in immediate danger, call {emergency}. We have alerted {team}, "
                   "but this number is not watched around the clock."),
        "emergency": ("This may be a medical emergency: please call {emergency} now. If you are having thoughts of "
                      "harming yourself, call or text {crisis}, day or night. We have alerted {team}, but this "
                      "number is not watched around the clock."),
        "stop": ("{clinic}: you're unsubscribed and will get no more texts from us. Reply START to resubscribe. In a "
                 "crisis call or text {crisis}."),
        "urgent": ("Thank you for telling us. We have paged the on-call nurse, who will call you within about "
                   "{callback} minutes. If it gets worse, call {emergency}. In a crisis, call or text {crisis}."),
        "possible_risk": ("Thank you for your message. We want to be sure you're OK, so we've asked the on-call nurse "
                          "to read it now. If you are having thoughts of harming yourself, call or text {crisis} any "
                          "time, or {emergency} in an emergency."),
        "follow_up_emergency": ("Thank you for telling us. The on-call nurse has your message and we have alerted them "
                                "again. If this is getting worse, call {emergency} now."),
        "follow_up_crisis": ("Thank you for telling us. The on-call nurse has your message and we have alerted them "
                             "again. Please call or text {crisis} now, day or night, or {emergency} if you are in "
                             "danger."),
        "follow_up_urgent": ("Thank you for telling us. The on-call nurse has your message and we have alerted them "
                             "again. If it gets worse, call {emergency}."),
        "follow_up_ack": "Thank you. This is {clinic}'s text line: the on-call nurse has your message and will reach out.",
        "wants_back_in": ("{clinic}: you're unsubscribed right now, so we can't send reminders. To get them again, "
                          "reply START."),
        "stop_cancel": ("{clinic}: you're unsubscribed and will get no more texts from us. If you meant to cancel a "
                        "visit, please call us on {phone}, or reply START and then R."),
        "start": "{clinic}: you're subscribed again. Reply HELP for help, STOP to opt out.",
        "already_subscribed": ("{clinic}: you're subscribed to visit reminders. To confirm your visit reply C, to "
                               "reschedule reply R. Reply HELP for help, STOP to opt out."),
        "help": ("{clinic}: visit reminders and check-ins. Questions: call {phone}. Reply STOP to opt out. Not "
                 "watched around the clock: in a crisis call or text {crisis}, or {emergency} in an emergency."),
        "confirmed": "Thank you, your visit is confirmed. See you then! Reply R if you need to reschedule.",
        "no_visit": "Thank you. We couldn't find an upcoming visit for you, so someone from {clinic} will be in touch.",
        "reschedule": "Thank you. Someone from {clinic} will call you to find a new time. Or call us on {phone}.",
        "checkin_thanks": "Thank you, glad to hear it!",
        "checkin_middling": ("Thank you for letting us know. If anything changes or you have a question, text us or "
                             "call {phone}. In a crisis, call or text {crisis}."),
        "checkin_low": ("Thank you for telling us. We're sorry today is hard. If you'd like to talk, call us on "
                        "{phone}. In a crisis, call or text {crisis} any time."),
        "checkin_details": "Thank you, we've added that to your check-in.",
        "checkin_reask": "Sorry, we couldn't read a number there. From 0 (worst) to 10 (best), how is your mood today?",
        "checkin_reask_pain": ("Sorry, we couldn't read a number there. From 0 (no pain) to 10 (worst), how is your "
                               "pain today?"),
        "flagged": ("Thank you for telling us. A nurse will read this {read_when}. If you feel much worse, call "
                    "{emergency}. In a crisis, call or text {crisis}."),
        "received": ("Thank you, we've passed your message to {team}. Questions: call {phone}. Not watched around "
                     "the clock: in a crisis call or text {crisis}, or {emergency} in an emergency."),
        "unknown": ("Thank you for your message to {clinic}. Questions: call {phone}. Not watched around the clock: "
                    "in a crisis call or text {crisis}, or {emergency} in an emergency."),
    },
    "es": {
        # The crisis answers keep the wording of the shipped templates es/reply_crisis|emergency.
        "crisis": ("Lamentamos mucho que esté pasando por esto. Llame o mande un texto al {crisis} ahora, a cualquier "
                   "hora (marque 2 para español, o envíe AYUDA por texto). Si está en peligro inmediato, llame al "
                   "{emergency}. Ya avisamos al equipo de {clinic}, pero este número no se revisa las 24 horas."),
        "emergency": ("Esto puede ser una emergencia médica: llame al {emergency} ahora. Si piensa en hacerse daño, "
                      "llame o mande un texto al {crisis} (marque 2 para español), a cualquier hora. Ya avisamos al "
                      "equipo de {clinic}, pero este número no se revisa las 24 horas."),
        "stop": ("{clinic}: ya no le enviaremos mensajes. Para volver a recibirlos, responda START. En una crisis llame o "
                 "escriba al {crisis}."),
        "urgent": ("Gracias por contarnos. Avisamos a la enfermera de guardia, que le va a llamar en unos {callback} "
                   "minutos. Si empeora, llame al {emergency}. En una crisis, llame o escriba al {crisis}."),
        "possible_risk": ("Gracias por su mensaje. Queremos saber que está bien, así que le pedimos a la enfermera de "
                          "guardia que lo lea ahora. Si piensa en hacerse daño, llame o escriba al {crisis} a cualquier "
                          "hora, o al {emergency} en una emergencia."),
        "follow_up_emergency": ("Gracias por contarnos. La enfermera de guardia tiene su mensaje y le avisamos otra "
                                "vez. Si esto empeora, llame al {emergency} ahora."),
        "follow_up_crisis": ("Gracias por contarnos. La enfermera de guardia tiene su mensaje y le avisamos otra vez. "
                             "Por favor llame o escriba al {crisis} ahora, o al {emergency} si está en peligro."),
        "follow_up_urgent": ("Gracias por contarnos. La enfermera de guardia tiene su mensaje y le avisamos otra vez. "
                             "Si empeora, llame al {emergency}."),
        "follow_up_ack": ("Gracias. Este es el número de mensajes de {clinic}: la enfermera de guardia tiene su mensaje "
                          "y se va a comunicar con usted."),
        "wants_back_in": ("{clinic}: ahora no recibe mensajes nuestros. Para volver a recibir los recordatorios, "
                          "responda START."),
        "stop_cancel": ("{clinic}: ya no le enviaremos mensajes. Si lo que quiere es cancelar una cita, llame al "
                        "{phone} o responda START y luego R."),
        "start": ("{clinic}: le volveremos a enviar recordatorios de sus citas. Responda AYUDA para ayuda o PARAR para "
                  "no recibirlos."),
        "already_subscribed": ("{clinic}: ya recibe nuestros recordatorios. Para confirmar su cita responda C; para "
                               "cambiarla, R."),
        "help": ("{clinic}: recordatorios de citas. Preguntas: llame al {phone}. Responda PARAR para no recibir "
                 "mensajes. En una crisis llame o escriba al {crisis}; en una emergencia, al {emergency}."),
        "confirmed": "¡Gracias! Su cita queda confirmada. Lo esperamos. Si necesita cambiarla, responda R.",
        "no_visit": "Gracias. No encontramos su próxima cita, así que alguien de {clinic} le llamará.",
        "reschedule": "Gracias. Alguien de {clinic} le va a llamar para buscar otra hora. O llame al {phone}.",
        "checkin_thanks": "¡Gracias, nos alegra mucho!",
        "checkin_middling": ("Gracias por contarnos. Si algo cambia o tiene preguntas, llame al {phone} o mande un "
                             "mensaje. En una crisis llame o escriba al {crisis}."),
        "checkin_low": ("Gracias por contarnos. Sentimos que hoy sea un mal momento. Si quiere hablar, llame al "
                        "{phone}. A cualquier hora del día o de la noche puede llamar o mandar un texto al {crisis}."),
        "checkin_details": "Gracias, lo añadimos a su respuesta.",
        "checkin_reask": ("Perdone, no logramos leer la respuesta. Del 0 (muy mal) al 10 (muy bien), ¿qué tal se "
                          "siente hoy?"),
        "checkin_reask_pain": ("Perdone, no logramos leer la respuesta. Del 0 (nada) al 10 (el peor), ¿qué tanto le "
                               "duele hoy?"),
        "flagged": ("Gracias por contarnos. Una enfermera va a leer esto {read_when}. Si se siente mucho peor, llame "
                    "al {emergency}. En una crisis llame o escriba al {crisis}."),
        "received": ("Gracias. Pasamos su mensaje a nuestro equipo. Nadie lee estos mensajes las 24 horas: en una "
                     "crisis llame o escriba al {crisis}; en una emergencia, al {emergency}."),
        "unknown": ("Gracias por su mensaje a {clinic}. Preguntas: llame al {phone}. En una crisis llame o escriba al "
                    "{crisis}; en una emergencia, al {emergency}."),
    },
}


def fallback_reply(name: str, settings, context: dict | None = None, language: str = "en") -> str:
    """The built-in answer, used when a template cannot be rendered."""
    texts = FALLBACKS.get(language, FALLBACKS["en"])
    answer = (context or {}).get("answer") or {}
    return texts.get(name, texts["received"]).format(
        clinic=settings.clinic_name, phone=settings.clinic_phone, crisis=settings.crisis_line,
        emergency=settings.emergency_number, team=team_name(settings.clinic_name),
        callback=settings.oncall_callback_minutes,
        team_es=team_name_es(settings.clinic_name), read_when=answer.get("read_when", "as soon as the office opens"
                                                                          if language == "en" else "en cuanto abra"))
