"""Which language a text is written in: a code ("en", "es"), from counts of common words. Pure.

Adding a language is a word list here, a phrase file in ``phrases/`` and its templates."""
from __future__ import annotations

import re

from reminders.triage.engine import fold

EN, ES = "en", "es"
_WORDS = {
    ES: frozenset(
        "que de del el la los las y o es son soy estoy esta estas este esto eso estar estare estaba por "
        "para con sin un una uno unos unas dos tres cero mi mis tu te se le les lo nos yo ella el ya pero "
        "muy mucho mucha muchas muchos mas menos gracias hola adios cita citas quiero quisiera tengo "
        "tiene puedo puede pueden hoy manana ayer bien mal todo toda todos todas nada nadie nunca "
        "siempre si porque q xq toy kiero como cuando donde cuanto cuantas cuantos hora horas tiempo "
        "favor ayuda parar alto cancelar confirmo confirmado necesito voy vamos llego llegar tarde "
        "buenos buenas dias noches noche semana siento senti dolor cabeza pecho nauseas mareo mareada "
        "mareado vida morir muerte matar aguanto tambien pastillas esposo esposa hijo hija hijos "
        "mama papa casa llevar ir hay ahi aqui alli vez veces otra otro solo sola ojala vivir despertar "
        "hubiera nacido deseo importa pensado pense intente corte proposito esperanza salida vale pena "
        "veo futuro estorbo pertenezco ningun lado necesita respirar cuesta desmaye presion sobre "
        "vemos lunes martes miercoles jueves viernes sabado domingo dura estacionamiento gratis "
        "infusion infusiones faltan feliz navidad volvi perdon sueno hambre cansada cansado gustaria "
        "preferiria mientras duermo carta cartas despedida familia puedes quieres estas manden mensajes "
        "quien contesta".split()),
    EN: frozenset(
        "the i you to and my is it in of for have be can this that im its am are was with just so "
        "thanks thank ok okay yes please what when how will would see get at on not dont cant feel "
        "feeling want today tomorrow appointment time your we do did been had has they he she "
        "going gonna wanna really about after before all anymore again who".split()),
}
_ES_ENDINGS = ("cion", "ando", "iendo", "arme", "erme", "irme", "ado", "ada", "amos", "aste")
_ES_SHORTHAND = {"q": "que", "xq": "porque", "toy": "estoy", "kiero": "quiero"}


def detect_language(text: str, default: str = EN) -> str:
    """"es" when a text reads as Spanish rather than English, else `default` (unsure, or no words)."""
    try:
        words = [_ES_SHORTHAND.get(w, w) for w in re.findall(r"[^\W\d_]+", fold(text).replace("'", ""))]
        spanish = sum(w in _WORDS[ES] or (len(w) > 4 and w.endswith(_ES_ENDINGS)) for w in words)
        spanish += 2 * sum(c in "ñ¿¡" for c in str(text))
        english = sum(w in _WORDS[EN] for w in words)
        if spanish > english:
            return ES
        return EN if english > spanish else default
    except Exception:  # noqa: BLE001 - pure helper on untrusted text: never raise
        return default
