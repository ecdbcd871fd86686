"""What a patient's question is about, for the answers the service gives by itself
(reminders.inbound.answers): eating and drinking before the visit, arriving, how long it takes,
the ride home. Anything that names a medicine, a drug, a symptom or a worry, or says what already
happened, is for a nurse: no topic. Pure: no I/O.

Phrases in the syntax of reminders.inbound.phrases (matched on the folded text: lower case, no
accents, no punctuation, doubled letters counted once). Every language's phrases are tried."""
from __future__ import annotations

from reminders.inbound.phrases import compile_phrases, fold, search_any

MAX_WORDS = 40  # a longer text says more than one question: staff read it
MAX_TEXT = 1000  # characters looked at, at most (an SMS is at most 1600)

FASTING, ARRIVE, LENGTH, RIDE = "fasting", "arrive", "length", "ride"
TIMED = frozenset({FASTING, ARRIVE, LENGTH})

_GROUPS = {
    "when": "when|wen|whn|wehn|wheb|what_time|wat_time|wht_time|wut_time|whattime|what_tme|what_tim|"
            "till_when|until_when|til_when|how_late|by_when|what_hour|by_what_time|"
            "a_que_hora|aque_hora|a_q_hora|que_hora|cuando|hasta_cuando|hasta_que_hora|para_que_hora",
    "can": "can|could|may|cn|cann|should|shud|shld|am_i_allowed|am_i_able|is_it_ok|is_it_okay|is_it_alright|"
           "is_it_fine|ok_to|okay_to|allowed_to|able_to|do_i_have_to|do_i_need_to|do_i_need|is_there",
    "eat": "eat|eating|eats|food|foods|meal|meals|snack|snacks|breakfast|brekfast|breakfas|brekkie|lunch|dinner|"
           "supper|solid|solids|solid_food|bite|toast|cereal|something_to_eat",
    "drink": "drink|drinking|drinks|liquid|liquids|fluid|fluids|water|watr|coffee|cofee|cofe|coffe|tea|juice|"
             "gatorade|soda|sip|sips|electrolyte*|beverage*",
    "stop": "stop|quit|finish|cut_off|cutoff|last|no_longer",
    "comer": "comer|coma|comida|comidas|alimento*|desayun*|almorzar|almuerzo|cenar|cena|algo_de_comer|"
             "solidos|merendar|merienda",
    "beber": "tomar|tomo|beber|bebo|agua|cafe|cafecito|jugo|liquido*|bebida*|refresco|suero",
    "dejar": "dejo|dejar|deje|debo_dejar|tengo_que_dejar|paro|parar",
    "drink_noun_es": "agua|cafe|cafecito|te|jugo|liquido*|bebida*|refresco|suero|gatorade|algo",
    "arrive": "arrive|ariv*|arive|get_there|be_there|get_here|be_here|show_up|come_in|check_in|checkin|be_at|"
              "get_to|arrival|head_over|be_in|leave_home|leave_the_house",
    "llegar": "llegar|llego|llegue|estar_ahi|estar_alli|estar_alla|estar_aqui|presentarme|venir|vengo|registrarme",
    "visit": "visit|appointment|appt|apt|infusion|session|treatment",
}

_PHRASES: dict[str, tuple[str, ...]] = {
    FASTING: (
        # eating
        "@when ...4 @stop ...1 eat|eating|food|foods|solids|solid_food|meal|meals|snack|snacking",
        "@stop eat|eating|food|solids|snacking",
        "last time|chance ...3 eat|food|meal|snack",
        "last meal|bite|snack|food",
        "@when ...4 @eat",
        "@can ...3 @eat",
        "@eat ...3 before|beforehand|prior|morning|day_of|that_morning",
        "need|have|supposed ...1 to fast",
        "how long ...3 fast|fasting",
        "fasting|npo|empty_stomach|nothing_by_mouth",
        "@dejar de @comer|@beber",
        "@when ...4 @comer",
        "puedo|podre|podria|debo|se_puede ...2 @comer",
        "ayun*",
        "ultima comida",
        # drinking
        "@when ...4 @stop ...1 drink|drinking|liquids|fluids|water|coffee",
        "@stop drinking|liquids|fluids|water|coffee|tea",
        "@when ...4 @drink",
        "@can ...4 @drink",
        "@drink ...3 before|beforehand|prior|morning|ok|okay|allowed|fine|alright",
        "clear liquids|fluids",
        "puedo|podre|podria|debo|se_puede ...2 beber|bebo",
        "puedo|podre|podria|debo|se_puede ...2 tomar|tomo ...2 @drink_noun_es",
        "@when ...4 @beber",
        "agua|cafe|jugo|liquidos ...3 antes|manana|puedo|se_puede|esta_bien",
        "liquidos claros",
    ),
    ARRIVE: (
        "@when ...4 @arrive",
        "@when ...4 come|come_in|go_in|get_in|be_in !back|home|out|after",
        "how early",
        "arrival time",
        "@can ...3 arrive|come_early|get_there_early|show_up_early|be_early",
        "@when ...4 @llegar",
        "que tan temprano|con_cuanto_tiempo|con_cuanta_anticipacion|cuanto_antes",
        "hora de llegada",
    ),
    LENGTH: (
        "how long ...4 @visit|be_there|be_here|stay|am_i_there|be_at_the_clinic|be_at_the_office|be_gone",
        "how long ...2 take|takes|last|lasts $",
        "how long is it|the_visit|the_appointment|the_infusion $",
        "@when ...4 done|finish|finished|over|ready|leave|out|go_home|be_done|pick_me_up|pick_up|pickup|"
        "get_out|be_finished|end|ends",
        "how much time ...3 take|@visit|there|block|plan",
        "how many hours|minutes ...3 there|@visit|take|block",
        "cuanto ...3 dura|tarda|tardo|demora|demoro|tiempo|rato",
        "@when ...4 termin*|salgo|salir|acab*|listo|lista|recoger*|me_voy|irme",
    ),
    RIDE: (
        # driving home (driving there is a question for staff: the answer is about the way back)
        "drive|driving|drve|driv ...3 home|back|after|afterwards|afterward|back_home|again|next_day",
        "drive|driving myself|my_self !there|to|in|over",
        "@can ...2 drive|driving !there|to|in|over|myself|my_self",
        "need|have|bring|require|get|must ...3 ride|driver|someone|somebody|an_adult|adult|escort|chaperone",
        "who ...3 pick|drive|take ...1 me|home",
        "uber|lyft|taxi|cab|rideshare|ride_share|bus|train|subway|metro|transit|public_transport*|paratransit",
        "how ...2 get|go|going|getting ...1 home",
        "walk|bike|cycle|ride ...1 home",
        "go|leave ...1 alone|by_myself|on_my_own",
        "manejar|conducir|manejo|conduzco|maneje|manejando",
        "uber|taxi|camion|autobus|transporte|raite|aventon|colectivo",
        "alguien|adulto|acompanante|chofer|quien|persona ...3 lleve|llevarme|recoja|recogerme|acompan*",
        "regresar|volver|irme|regreso|vuelvo ...3 casa|solo|sola|manejando",
        "de regreso",
    ),
}

# A text that names any of these is for a nurse, whatever it asks.
_FOR_A_NURSE = compile_phrases((
    # medicines
    "med|meds|medicine*|medication*|medicacion|medicament*|medicina*|pill|pills|pastilla*|pildora*|tablet|tablets|"
    "capsule*|dose|dosis|prescription*|prescribed|rx|receta|recetad*",
    "klonopin|clonazepam|ativan|lorazepam|xanax|alprazolam|valium|diazepam|benzo|benzos|benzodiazepin*|lamictal|"
    "lamotrigin*|lithium|litio|seroquel|quetiapin*|abilify|aripiprazol*|zoloft|sertralin*|prozac|fluoxetin*|"
    "lexapro|escitalopram|celexa|citalopram|wellbutrin|bupropion|effexor|venlafaxin*|cymbalta|duloxetin*|"
    "trazodon*|mirtazapin*|remeron|gabapentin*|neurontin|lyrica|pregabalin*|adderall|ritalin|vyvanse|concerta|"
    "stimulant*|naltrexon*|suboxone|buprenorphin*|methadone|metadona|insulin*|metformin*|ozempic|wegovy|"
    "mounjaro|semaglutid*|tirzepatid*|tylenol|acetaminophen|paracetamol|advil|ibuprofen*|motrin|aleve|naproxen|"
    "aspirin*|tramadol|oxycodone|percocet|hydrocodone|vicodin|norco|opioid*|zofran|ondansetron|melatonin*|"
    "ambien|zolpidem|vitamin*|supplement*|suplemento*|inhaler|inhalador|antidepress*|antidepresivo*|ssri|maoi|"
    "lisinopril|amlodipin*|metoprolol|propranolol|clonidin*|prazosin|hydroxyzin*|vistaril|benadryl|"
    "spravato|esketamin*|levothyroxin*|synthroid|eliquis|warfarin|blood_thinner*|birth_control|anticonceptiv*",
    # alcohol, cannabis, nicotine, other drugs
    "alcohol|alcoholic|beer|beers|wine|liquor|vodka|whiskey|whisky|tequila|cocktail*|booze|drunk|weed|marijuana|"
    "cannabis|thc|cbd|edible*|gummy|gummies|smoke|smoking|vape|vaping|cigarette*|nicotine|tobacco|gum|chew*|"
    "cerveza|vino|licor|fumar|cigar*|marihuana|mota|chicle|drug|drugs|droga*|kratom|shrooms|psilocybin",
    # symptoms and conditions
    "pain|painful|hurt*|sick|fever|vomit*|nause*|throw_up|throwing_up|dizzy|headache|migraine|chest|heart|"
    "breath*|bleed*|pregnan*|breastfeed*|breast_feeding|diabet*|blood_sugar|glucose|covid|flu|cough*|allerg*|"
    "asthma|seizure*|surgery|blood_pressure|bp|dolor|duele|enferm*|fiebre|mareo*|mareada|mareado|"
    "embaraz*|lactan*|azucar|gripe|tos|alergi*|convulsion*|cirugia|presion",
    # worry: a person answers it
    "scared|afraid|nervous|anxious|worried|panic*|terrified|freaking_out|miedo|nerviosa|nervioso|ansiedad|"
    "ansiosa|ansioso|preocupad*|asustad*",
    # a visit to change: the caller's reschedule path
    "cancel*|resched*|reprogram*|postpone|cambiar_la_cita|cambiar_mi_cita",
))
# A statement of what happened ("I already ate", "ya comí"): a nurse reads it, whatever follows.
_HAPPENED = compile_phrases((
    "ate|eaten|drank|already|accident*|accidently|i_have_had|ive_had|"
    "comi|desayune|almorce|cene|bebi|ya_tome|tome_cafe|tome_agua|olvide|se_me_olvido|sin_querer",
    "i|we|just had !a_question|question|questions|a_quick|quick|a_few|one",
    "forgot !what|when|how|the_time|to_ask|if|whether",
))
# Eating or drinking after the visit is a nurse's answer, not the fasting clock.
_AFTER_THE_VISIT = compile_phrases((
    "@eat|@drink|@comer|@beber ...3 after|afterwards|afterward|despues|luego !@clock",
    "after|despues_de|luego_de the|my|your|la|mi|su @visit|cita|infusion|sesion|consulta|tratamiento",
    "afterwards|afterward|despues|luego $",
), {**_GROUPS, "clock": "midnight|noon|medianoche|mediodia|de_las|de_la_medianoche|de_la_una|de_medianoche|"
                        "1*|2*|3*|4*|5*|6*|7*|8*|9*|one|two|three|four|five|six|seven|eight|nine|ten|eleven|"
                        "twelve"})
# "how long after/before ...": not the visit's length (the topic it names answers it).
_NOT_LENGTH = compile_phrases(("how long|much_time ...2 after|before|until|til|till",
                               "cuanto ...3 antes|despues"))
# Something a question looks like: a question word, or a question mark in the raw text.
_QUESTION = compile_phrases((
    "what|wat|wht|wut|whats|wats|when|wen|whn|how|hw|which|who|where|until|til|till",
    "can|could|may|should|shud|do|does|am|will|would|is|are|cn i|we|my|someone|somebody|it|coffee|water|that",
    "wondering|question|tell_me|let_me_know|need_to_know|want_to_know|ok_to|okay_to|allowed",
    "^ can|could|may|should|shud|do|does|am|is|are|will|would|r|cn|need|ok|okay",
    "que|cuando|como|puedo|podre|podria|debo|tengo_que|hasta|cuanto|cuanta|cual|quien|se_puede|esta_bien|"
    "es_necesario|pregunta|quisiera_saber|queria_saber|necesito_saber",
))
_TOPICS = {topic: compile_phrases(phrases, _GROUPS) for topic, phrases in _PHRASES.items()}


def topics(text: str) -> list[str]:
    """What a text asks, in answer order ([] when it is not a question this module answers)."""
    if not isinstance(text, str) or not text.strip():
        return []
    text = text[:MAX_TEXT]
    folded = fold(text)
    if not folded or len(folded.split()) > MAX_WORDS:
        return []
    if not ("?" in text or "¿" in text or search_any(_QUESTION, folded)):
        return []
    if search_any(_FOR_A_NURSE, folded) or search_any(_HAPPENED, folded):
        return []
    found = [topic for topic, patterns in _TOPICS.items() if search_any(patterns, folded)]
    if FASTING in found and search_any(_AFTER_THE_VISIT, folded):
        return []
    if LENGTH in found and search_any(_NOT_LENGTH, folded):
        found.remove(LENGTH)
    return found
