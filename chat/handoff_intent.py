"""Whether a visitor's message clearly asks for a person, detected offline with phrase patterns per language
(CHAT_LANGUAGES), and the handoff reason it implies. A pattern needs both a way of asking (talk to, connect me
with, I want ...) and someone to ask for (a human, an agent, someone from the team): a question that only
mentions people ("is the human body ...") is a question for the assistant. A refusal close before the request
("I don't want to talk to a person") cancels it. The patterns are about asking for people, never about the
domain, so they hold for any knowledge base.

Text is compared case-folded and without accents, so "pásame", "pasame", "möchte" and "mochte" all match."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from django.conf import settings

from review.models import Handoff

Reason = Handoff.Reason

# A refusal this many words before a request cancels it ("I really don't think I need to talk to ...").
NEGATION_WORDS = 5

# Who a visitor may ask for: the noun (after its article and an adjective such as "real"), per language,
# unless what follows describes someone else ("how do I talk to a person with dementia").
_EN_WHO = (r"(?:(?:a|an|the|some|your|one of your|a member of (?:your |the )?)\s+)?"
           r"(?:(?:real|actual|live|human|living)\s+)?"
           r"(?:human(?: being)?|person|agent|representative|rep|operator|staff(?: member)?|employee|team member|"
           r"team|support(?: team| agent| staff| person)?|customer (?:service|support|care)(?: agent| team)?|"
           r"help ?desk|manager|supervisor|someone|somebody|anyone|anybody)\b"
           r"(?!\s+(?:at|in|of) (?:my|the|a|an|his|her|their|our)\b)"  # "the staff at my gym" is not ours
           r"(?!\s+(?:with|who (?:has|have|is|was|had)|that (?:has|is)|suffering|living)\b)")
_EN_PERSON = (r"(?:(?:a|an|the|some)\s+)?(?:(?:real|actual|live)\s+)?"
              r"(?:human(?: being)?|person|agent|representative|operator|staff member|someone real|somebody real)")
# After "I want a human" the sentence must end or go on about talking: "I need a human spotter" is no request.
_EN_AFTER = (r"(?=\s*(?:$|[.!?,;:)]|(?:please|pls|plz|now|instead|here|asap|right away|immediately|"
             r"to (?:talk|speak|chat|answer|reply|respond|help me)|who|that|not|on the (?:line|chat|phone)|"
             r"about|for (?:this|that|help)|and|or)\b))")

_DE_WHO = (r"(?:(?:einem|einer|einen|eine|dem|der|den|ihrem|ihrer|eurem|eurer|deinem|deiner)\s+)?"
           r"(?:(?:echten|echter|echte|echtem|richtigen|richtiger|menschlichen|realen|lebenden)\s+)?"
           r"(?:menschen|mensch|mitarbeiter(?:in|innen|n)?|person|ansprechpartner(?:in)?|berater(?:in)?|"
           r"agent(?:en|in)?|support(?:team|-team| team)?|kundendienst|kundenservice|kundenberater(?:in)?|"
           r"team|operator|vorgesetzten|jemandem|jemanden|jemand)\b(?!\s+mit\b)")
_DE_PERSON = (r"(?:(?:einen|eine|einem|den)\s+)?(?:(?:echten|echte|richtigen|menschlichen|realen)\s+)?"
              r"(?:menschen|mitarbeiter(?:in)?|person|ansprechpartner(?:in)?|berater(?:in)?)")
_DE_AFTER = r"(?=\s*(?:$|[.!?,;:]|(?:bitte|jetzt|sofort|sprechen|reden|dran|am telefon|und|oder)\b))"

_FR_WHO = (r"(?:(?:un|une|le|la|l'|votre|vos|ton|des)\s*)?(?:(?:vrai|vraie|veritable)\s+)?"
           r"(?:etre humain|humain|personne(?: reelle| physique| humaine)?|conseiller(?:e)?|agent|"
           r"operateur|operatrice|membre de (?:votre |l')?equipe|equipe|service client|support|responsable|"
           r"employe(?:e)?|interlocuteur|quelqu'un|quelqu un)\b"
           r"(?!\s+(?:agee|avec|qui (?:a|est|souffre)|malade|handicapee?)\b)")
_FR_PERSON = (r"(?:(?:un|une)\s+)?(?:(?:vrai|vraie|veritable)\s+)?"
              r"(?:etre humain|humain|personne(?: reelle)?|conseiller(?:e)?|agent|operateur|operatrice)")
_FR_AFTER = (r"(?=\s*(?:$|[.!?,;:]|(?:s'il|svp|stp|maintenant|tout de suite|pour (?:parler|discuter|m'aider)|"
             r"qui|et|ou)\b))")

_ES_WHO = (r"(?:(?:un|una|el|la|algun|alguna|su|tu)\s+)?"
           r"(?:ser humano|humano|persona|agente|asesor(?:a)?|operador(?:a)?|representante|empleado|empleada|"
           r"encargado|encargada|gerente|supervisor(?:a)?|soporte|servicio (?:al|de atencion al) cliente|"
           r"atencion al cliente|equipo|alguien)\b(?!\s+(?:mayor|con|que (?:tiene|sufre|padece|esta)|enferm\w*)\b)")
_ES_PERSON = (r"(?:(?:un|una)\s+)?(?:ser humano|humano|persona(?: real| de verdad)?|agente|asesor(?:a)?|"
              r"operador(?:a)?)")
_ES_AFTER = r"(?=\s*(?:$|[.!?,;:]|(?:por favor|porfa|ya|ahora|real|de verdad|que me|para (?:hablar|que))\b))"

_IT_WHO = (r"(?:(?:un|una|uno|un'|il|lo|la|l'|qualche)\s*)?"
           r"(?:operatore|operatrice|persona(?: reale| vera)?|essere umano|umano|agente|consulente|"
           r"servizio clienti|assistenza(?: clienti)?|supporto|responsabile|impiegato|dipendente|qualcuno)\b"
           r"(?!\s+(?:anzian\w*|con|che (?:ha|soffre|e)|malat\w*)\b)")
_IT_PERSON = r"(?:(?:un|una|un')\s*)?(?:operatore|operatrice|persona(?: reale| vera)?|essere umano|umano)"
_IT_AFTER = r"(?=\s*(?:$|[.!?,;:]|(?:per favore|per piacere|subito|adesso|ora|che mi)\b))"

_NL_WHO = (r"(?:(?:een|de|het|jullie|uw)\s+)?(?:(?:echte|echt|levende)\s+)?"
           r"(?:mens|persoon|medewerker|medewerkster|agent|klantenservice|support(?:team)?|helpdesk|operator|"
           r"iemand)\b(?!\s+(?:met|die (?:heeft|lijdt)|ouder\w*)\b)")
_NL_PERSON = r"(?:een\s+)?(?:echte\s+)?(?:mens|persoon|medewerker|medewerkster)"
_NL_AFTER = r"(?=\s*(?:$|[.!?,;:]|(?:spreken|nodig|alstublieft|alsjeblieft|aub|nu|graag|die|om te)\b))"

_PT_WHO = (r"(?:(?:um|uma|o|a|algum|alguma|seu|sua)\s+)?"
           r"(?:ser humano|humano|pessoa(?: real| de verdade)?|atendente|agente|operador(?:a)?|consultor(?:a)?|"
           r"representante|funcionario|funcionaria|suporte|atendimento(?: ao cliente)?|equipe|alguem|gerente|"
           r"supervisor(?:a)?)\b(?!\s+(?:idos\w*|com|que (?:tem|sofre|esta)|doente)\b)")
_PT_PERSON = r"(?:(?:um|uma)\s+)?(?:ser humano|humano|pessoa(?: real| de verdade)?|atendente|agente|operador(?:a)?)"
_PT_AFTER = r"(?=\s*(?:$|[.!?,;:]|(?:por favor|agora|ja|que me|para (?:falar|me))\b))"

# Per language: the ways of asking. A sentence or clause that is only "a human, please" asks too (the last one).
REQUESTS: dict[str, tuple[str, ...]] = {
    "en": (
        rf"\b(?:talk|speak|chat)(?:ing)?\s+(?:to|with)\s+{_EN_WHO}",
        rf"\b(?:connect|put|pass|hand|get)\s+(?:me|us)\s+(?:(?:through|over|on)\s+)?(?:to|with)\s+{_EN_WHO}",
        rf"\b(?:transfer|redirect|forward|escalate|switch)(?:\s+(?:me|us|this|it))?\s+(?:(?:over|on)\s+)?to\s+{_EN_WHO}",
        rf"\b(?:i|we)(?:'d| would)?\s+(?:really\s+)?(?:want|need|like|prefer|demand|request)\s+"
        rf"(?:to (?:have|get)\s+)?{_EN_PERSON}{_EN_AFTER}",
        rf"\b(?:get|give|find|bring|send)\s+me\s+{_EN_PERSON}{_EN_AFTER}",
        r"\b(?:is|are) there\s+(?:(?:a|an|any|some)\s+)?(?:(?:real|actual|live)\s+)?"
        r"(?:human(?: being)?|person|agent|operator|someone|somebody|anyone|anybody|staff)\b"
        r"(?=\s*(?:$|[?.!,]|(?:(?:i|we) (?:can|could)|(?:who|that) (?:can|could|will)|to (?:talk|speak|chat|help)|"
        r"available|here|there|around|online)\b))",
        rf"(?:^|(?<=[,;:]))\s*{_EN_PERSON}(?:\s+(?:please|pls|plz|now))*[.!?]*$",
    ),
    "de": (
        rf"\bmit\s+{_DE_WHO}[^.!?,]{{0,40}}?\b(?:sprechen|reden|chatten|schreiben|telefonieren|verbunden|"
        rf"verbinden|kommunizieren)\b",
        rf"\b(?:verbinden|verbinde|verbindet|weiterleiten|leite|leiten|durchstellen|stellen sie|stell)\b"
        rf"[^.!?,]{{0,25}}?\b(?:mit|an|zu)\s+{_DE_WHO}",
        rf"\b(?:will|mochte|moechte|brauche|hatte gerne?|haette gerne?|verlange|wunsche|wuensche)\s+"
        rf"(?:(?:gerne?|bitte|jetzt|sofort)\s+)*{_DE_PERSON}{_DE_AFTER}",
        r"\bgibt es\s+(?:(?:hier|auch)\s+)*(?:einen\s+(?:echten\s+)?(?:menschen|mitarbeiter)|"
        r"eine\s+(?:echte\s+)?person|jemanden)\b(?=\s*(?:$|[?.!,]|(?:mit dem|der|die)\b))",
        r"(?:^|(?<=[,;:]))\s*(?:bitte\s+)?(?:(?:einen|ein|eine)\s+)?(?:(?:echten|echter|echte)\s+)?"
        r"(?:menschen|mitarbeiter|person)"
        r"(?:\s+(?:bitte|jetzt|sofort))*[.!?]*$",
    ),
    "fr": (
        rf"\b(?:parler|discuter|causer|echanger|communiquer)\s+(?:a|avec|au|aux)\s+{_FR_WHO}",
        rf"\b(?:mettre|mettez|mets|passer|passez|passe|transferer|transferez|transfere|rediriger|redirigez|"
        rf"connecter|connectez|connecte)[- ](?:moi|me|nous)\s+(?:(?:en (?:relation|contact|communication))\s+)?"
        rf"(?:(?:a|avec|au|vers)\s+)?{_FR_WHO}",
        rf"\b(?:je\s+(?:veux|voudrais|souhaite|souhaiterais|demande|prefere|prefererais)|j'aimerais|"
        rf"j aimerais|il me faut|j'ai besoin d'|j'ai besoin de|j ai besoin d)\s*{_FR_PERSON}{_FR_AFTER}",
        r"\b(?:y a-t-il|il y a|est-ce qu'il y a)\s+(?:un\s+(?:vrai\s+)?(?:humain|conseiller|agent|operateur)|"
        r"une\s+(?:vraie\s+)?personne(?:\s+reelle)?|quelqu'un)\b"
        r"(?=\s*(?:$|[?.!]|a qui|avec qui|qui (?:peut|pourrait)))",
        r"(?:^|(?<=[,;:]))\s*(?:(?:un|une)\s+)?(?:(?:vrai|vraie)\s+)?"
        r"(?:humain|conseiller|agent|operateur|personne reelle|personne)"
        r"(?:\s+(?:svp|stp|s'il vous plait|s'il te plait|maintenant))*[.!?]*$",
    ),
    "es": (
        rf"\b(?:hablar|hablo|conversar|chatear|comunicarme|contactar)\s+(?:con|a)\s+{_ES_WHO}",
        rf"\b(?:pasame|pasarme|paseme|pongame|ponme|ponerme|comunicame|comuniqueme|transfiereme|transfierame|"
        rf"transferirme|conectame|conecteme|conectarme|derivame|redirigeme)\s+(?:con|a)\s+{_ES_WHO}",
        rf"\b(?:quiero|quisiera|necesito|prefiero|exijo|me gustaria)\s+{_ES_PERSON}{_ES_AFTER}",
        r"\b(?:hay|existe)\s+(?:(?:algun|alguna|un|una)\s+)?(?:humano|persona(?: real)?|agente|alguien)\b"
        r"(?=\s*(?:$|[?.!,]|con quien|que (?:me )?(?:pueda|atienda)))",
        r"(?:^|(?<=[,;:]))\s*(?:(?:un|una)\s+)?(?:humano|agente|operador|persona real|ser humano|asesor)"
        r"(?:\s+(?:por favor|porfa|ya|ahora))*[.!?]*$",
    ),
    "it": (
        rf"\b(?:parlare|parlo|chattare|comunicare)\s+(?:con|a|ad)\s+{_IT_WHO}",
        rf"\b(?:mettimi|mi metta|mi metti|passami|mi passi|collegami|mi colleghi|trasferiscimi|mi trasferisca)\s+"
        rf"(?:in contatto\s+)?(?:(?:con|a)\s+)?{_IT_WHO}",
        rf"\b(?:voglio|vorrei|ho bisogno di|preferisco|mi serve)\s+{_IT_PERSON}{_IT_AFTER}",
        r"\bc'e\s+(?:un\s+operatore|una\s+persona|un\s+umano|qualcuno)\b(?=\s*(?:$|[?.!,]|con cui|che (?:possa|mi)))",
        r"(?:^|(?<=[,;:]))\s*(?:(?:un|una)\s+)?(?:operatore|umano|persona reale)"
        r"(?:\s+(?:per favore|subito))*[.!?]*$",
    ),
    "nl": (
        rf"\b(?:spreken|praten|chatten|spreek|praat)\s+(?:met|tegen)\s+{_NL_WHO}",
        rf"\bmet\s+{_NL_WHO}[^.!?,]{{0,30}}?\b(?:spreken|praten|chatten|bellen)\b",
        rf"\b(?:verbind|verbindt|verbinden|doorverbinden|doorverbind|schakel|zet)\b[^.!?,]{{0,20}}?\b(?:met|naar)\s+"
        rf"{_NL_WHO}",
        rf"\bik\s+(?:wil|zou|heb|moet)\s+(?:graag\s+)?{_NL_PERSON}{_NL_AFTER}",
        r"(?:^|(?<=[,;:]))\s*(?:een\s+)?(?:echte\s+)?(?:mens|medewerker)"
        r"(?:\s+(?:graag|alstublieft|alsjeblieft|aub|nu))*[.!?]*$",
    ),
    "pt": (
        rf"\b(?:falar|conversar|falo)\s+(?:com|a)\s+{_PT_WHO}",
        rf"\b(?:me\s+)?(?:transfira|transferir|transfere|conecte|conectar|coloque|passe|encaminhe|encaminha)"
        rf"(?:[- ]?me)?\s+(?:para|com|a)\s+{_PT_WHO}",
        rf"\b(?:quero|queria|gostaria de|preciso de|prefiro)\s+{_PT_PERSON}{_PT_AFTER}",
        r"\b(?:tem|ha|existe)\s+(?:(?:algum|alguma|um|uma)\s+)?(?:humano|pessoa|atendente|alguem)\b"
        r"(?=\s*(?:$|[?.!,]|ai\b|aqui\b|com quem|que (?:possa|me)))",
        r"(?:^|(?<=[,;:]))\s*(?:(?:um|uma)\s+)?(?:humano|atendente|operador|pessoa real)"
        r"(?:\s+(?:por favor|agora|ja))*[.!?]*$",
    ),
}

# Words that, shortly before a request, turn it into a refusal or a question about someone else's advice.
NEGATIONS: dict[str, str] = {
    "en": r"don't|dont|do not|doesn't|does not|didn't|did not|never|no need|not|without|rather than|instead of|"
          r"won't|wouldn't|would not|should (?:i|we|one)",
    "de": r"nicht|kein\w*|nie|niemals|ohne|statt|anstatt|soll(?:te)? ich",
    "fr": r"ne|n'|pas|jamais|sans|plutot que|au lieu de|dois-je|devrais-je|je devrais",
    "es": r"no|nunca|jamas|sin|en vez de|en lugar de|deberia|debo",
    "it": r"non|mai|senza|invece di|dovrei|devo",
    "nl": r"niet|geen|nooit|zonder|in plaats van|moet ik|zou ik moeten",
    "pt": r"nao|nunca|jamais|sem|em vez de|deveria|devo",
}
# A new clause starts a new thought: "No, I want a human" and "I'm not happy, let me talk to a person" ask.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_CLAUSE_BREAK = re.compile(r"[,;:.!?¿¡]|\b(?:but|aber|sondern|mais|pero|ma|maar|mas|so|also|alors)\b")

# Reason words, any language, checked in this order: the first that matches decides.
REASON_WORDS: list[tuple[str, str]] = [
    (Reason.URGENT, r"emergenc\w*|urgen\w*|notfall|dringend\w*|spoed|noodgeval|lebensgefahr|life.threatening|"
                    r"danger\w*|gefahr\w*|gefahrlich|peligr\w*|pericol\w*|gevaar\w*|perigo\w*|unsafe|safety|"
                    r"suicid\w*|suizid\w*|kill myself|hurt myself|harm myself|self.harm|umbringen|injured|"
                    r"verletzt|blesse\w*|herid[oa]|ferit[oa]|ferid[oa]|gewond|bleeding|ambulan\w*|krankenwagen|"
                    r"police|polizei|policia|polizia|politie|threat\w*|bedroh\w*|menace\w*|amenaz\w*|minacc\w*"),
    (Reason.ACCOUNT, r"account|konto|(?:mon|ma|votre|le) compte|(?:mi|la|su|tu) cuenta|(?:minha|a|sua) conta|"
                     r"billing|bills?|invoice\w*|rechnung\w*|factur\w*|fattur\w*|factuur\w*|fatura\w*|payment\w*|"
                     r"charged|overcharg\w*|zahlung\w*|abbuch\w*|abgebucht|paiement\w*|pago|pagos|cobr\w*|"
                     r"pagament\w*|betaling\w*|pagamento\w*|refund\w*|erstatt\w*|rembours\w*|reembols\w*|"
                     r"rimbors\w*|terugbetal\w*|subscription\w*|abo|abonnement\w*|abonn\w*|suscrip\w*|"
                     r"abbonament\w*|assinatura\w*|password\w*|passwort\w*|mot de passe|contrasena|senha|"
                     r"wachtwoord|login|log in|sign in|anmeld\w*|einlogg\w*|personal data|my data|meine daten|"
                     r"personliche\w* daten|mes donnees|donnees personnelles|mis datos|datos personales|"
                     r"miei dati|dati personali|mijn gegevens|persoonsgegevens|meus dados|dados pessoais|gdpr|"
                     r"dsgvo|rgpd|privacy|datenschutz|confidentialite|privacidad\w*|delete my|cancel my|"
                     r"kundig\w*|resilier\w*|cancelar|opzeggen|membership|mitgliedschaft|credit card|"
                     r"kreditkarte|carte bancaire|tarjeta|cartao"),
    (Reason.UNHAPPY, r"complain\w*|complaint\w*|beschwer\w*|reklamation|plainte|reclamation|quej\w*|reclam\w*|"
                     r"klacht\w*|lamentel\w*|useless|unhelpful|not helpful|terribl\w*|awful|horribl\w*|frustrat\w*|"
                     r"annoy\w*|angry|furious|disappoint\w*|ridiculous|waste of time|rubbish|sucks|stupid|"
                     r"nutzlos|unbrauchbar|schrecklich|argerlich|verargert|wutend|enttausch\w*|zeitverschwendung|"
                     r"sinnlos|inutile|inutil|nul|nulle|enerve\w*|decu|decue|en colere|perte de temps|"
                     r"molest[oa]|enfadad[oa]|enojad[oa]|decepcion\w*|perdida de tiempo|arrabbiat[oa]|"
                     r"delus[oa]|nutteloos|waardeloos|vreselijk|gefrustreerd|boos|teleurgesteld|irritad[oa]"),
]


def normalize(text: str) -> str:
    """Case-folded, accents and typographic apostrophes gone, whitespace single."""
    folded = unicodedata.normalize("NFKD", text.casefold().replace("’", "'").replace("`", "'"))
    return " ".join("".join(c for c in folded if not unicodedata.combining(c)).split())


@lru_cache(maxsize=8)
def _compiled(languages: tuple[str, ...]) -> tuple[list[re.Pattern[str]], re.Pattern[str]]:
    known = [language for language in languages if language in REQUESTS]
    requests = [re.compile(pattern) for language in known for pattern in REQUESTS[language]]
    negation = re.compile(r"\b(?:" + "|".join(NEGATIONS[language] for language in known) + r")(?:\b|(?<='))")
    return requests, negation


@lru_cache(maxsize=1)
def _reason_patterns() -> list[tuple[str, re.Pattern[str]]]:
    return [(reason, re.compile(rf"\b(?:{words})\b")) for reason, words in REASON_WORDS]


def _refused(text: str, start: int, negation: re.Pattern[str]) -> bool:
    clause = _CLAUSE_BREAK.split(text[:start])[-1]
    return bool(negation.search(" ".join(clause.split()[-NEGATION_WORDS:])))


def asks_for_person(text: str) -> bool:
    """Whether the (normalized) text asks for a person in one of CHAT_LANGUAGES. Sentence by sentence, so
    that "That's useless. Agent!" asks as "Agent!" alone does."""
    requests, negation = _compiled(tuple(settings.CHAT_LANGUAGES))
    return any(not _refused(sentence, match.start(), negation)
               for sentence in _SENTENCE_END.split(text)
               for pattern in requests for match in pattern.finditer(sentence))


def handoff_reason(text: str) -> str:
    """The taxonomy reason a request for a person implies: urgent, then account, then unhappy, else asked."""
    return next((reason for reason, pattern in _reason_patterns() if pattern.search(text)), Reason.ASKED)


def person_requested(text: str) -> str | None:
    """The Handoff.Reason code when the visitor's message clearly asks for a person, else None."""
    normalized = normalize(text)
    if not asks_for_person(normalized):
        return None
    return str(handoff_reason(normalized))
