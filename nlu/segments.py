"""The questions of one message: "How long does shipping to Germany take, and do I pay customs?" asks two.

A shopper who writes several questions in one message expects an answer to each. The message as a whole reads
as one intent and matches one article best, so the engine also looks at its parts: its sentences, and the
clauses of a sentence joined by a conjunction that starts a new question (", and do I ...", " und wie ...",
"、あと…"). Each part says whether it is a question: it ends with a question mark (or a Japanese or Chinese
question particle) or starts with a question word. Chat messages often have neither capitals nor full
stops, so the splitting stays conservative: a full stop after an abbreviation ("U.S.", "e.g.", "Mr.") or an
initial ends no sentence, and a bare "and" splits only before a question word. A later part that points back
at an earlier one ("... When will it be back?") says so: read alone, it would be about something else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from nlu.vocabulary import words


class Phrases:
    """A test for phrases in the supported languages, regular expressions searched case-blind anywhere in a text:
    `says_not_received("I never got it")`."""

    def __init__(self, *patterns: str, doc: str = "") -> None:
        self.__doc__ = doc
        self._pattern = re.compile("|".join(patterns), re.IGNORECASE)

    def __call__(self, text: str) -> bool:
        return self._pattern.search(text) is not None


MAX_SEGMENTS = 6  # a long email is not searched sentence by sentence beyond this
MIN_WORDS = 3  # shorter parts ("Hi!", "Thanks.") carry no question of their own

_QUESTION_WORDS = {
    # en
    "can", "could", "do", "does", "did", "is", "are", "will", "would", "how", "what", "when", "where", "why",
    "which", "who", "should", "may", "any",
    # de
    "wie", "was", "wann", "wo", "warum", "welche", "welcher", "kann", "können", "könnt", "muss", "müssen", "gibt",
    "ist", "sind", "wird", "habe", "bekomme", "darf",
    # es
    "cómo", "como", "qué", "cuándo", "cuando", "dónde", "donde", "cuánto", "cuanto", "cuánta", "cuántos",
    "puedo", "pueden", "puede", "hay", "tengo",
    # fr
    "comment", "quand", "où", "combien", "quel", "quelle", "quels", "quelles", "pourquoi", "puis", "pouvez",
    "est",  # "est-ce que …"
    # it
    "come", "quando", "dove", "quanto", "quanti", "posso", "potete", "perché",
    # pt
    "onde", "podem", "qual", "quais",
}
# A part that starts so, and says what in two words or more, states a wish ("I also want to change my email."):
# no question, but something to answer ("I need help." says too little to look up).
_WISH = re.compile(
    r"^(?:i(?: also| really| just)? (?:want|need|would like|wish)|i'd(?: also)? like"
    r"|ich (?:möchte|will|würde gern|brauche|hätte gern)|(?:también )?(?:quiero|quisiera|necesito)|me gustaría"
    r"|je (?:voudrais|veux|souhaite)|j'aimerais|j'ai besoin|vorrei|voglio|ho bisogno|quero|gostaria|preciso)"
    r"\s+\w\S*\s+\w",
    re.IGNORECASE)
# The same in Chinese (a wish up front) and Japanese (a wish at the end: 変更したいです).
_CJK_WISH = re.compile(r"^(?:我想|我要|我需要|我希望)\S{2,}|\S{2,}(?:たいです|たいのですが|たいんですが|たい)[。．.！!]?$")
# An indirect question ("I want to know if I can pay with Klarna", "ich möchte wissen, ob ..."): a lead-in that asks
# to be told, then "if"/"whether" (dropped) or a question word (kept). Read as the question it wraps, it is looked up
# as one: "I can pay with Klarna next time?" matches the payment article; wrapped, it matched nothing.
# Greetings by the time of day, which open a chat message and a letter alike.
_DAY_GREETINGS = (r"good (?:morning|afternoon|evening)|guten (?:morgen|tag|abend)|buen(?:os|as) (?:días|dias|tardes"
                  r"|noches)|bonsoir|buongiorno|buonasera|bom dia|boa tarde|goedemorgen|goedemiddag")
_GREETING = rf"(?:(?:hi|hey|hello|hallo|hola|bonjour|salut|ciao|olá|oi|{_DAY_GREETINGS})(?:\s+there)?\s*[,!.]?\s+)?"
_INDIRECT_LEAD = (
    r"(?:i(?: also| just)?(?:'d| would)? (?:like|want|need|wanted) to know|i (?:was )?wonder(?:ing)?"
    r"|i(?:'m| am) wondering|(?:can|could) you (?:please )?tell me|please (?:tell me|let me know)|let me know"
    r"|ich (?:möchte|würde|will|wollte)(?: gerne?)? (?:gerne? )?wissen|ich frage mich|(?:können|könnt) (?:sie|ihr) mir sagen"
    r"|(?:quiero|quisiera|me gustaría|necesito|querría) saber|me pregunto|(?:pueden|puede|podrían|podría)s? decirme"
    r"|je (?:voudrais|veux|souhaite|souhaiterais|aimerais) savoir|j'aimerais savoir|je me demande"
    r"|(?:pouvez|pourriez)-vous me dire"
    r"|(?:vorrei|voglio) sapere|mi chiedo|(?:potete|potreste|può|potrebbe) dirmi"
    r"|(?:quero|queria|gostaria de) saber|(?:pode|podem|poderia) me dizer)")
_DROPPED = r"(?:if|whether|ob|si|s'|se)"
_KEPT = (r"(?:how|what|when|where|which|why|who|wie|wann|wo|was|welche[rsnm]?|warum|cómo|cuándo|dónde|qué|cuánt[oa]s?"
         r"|cuál(?:es)?|comment|quand|où|combien|quel(?:le)?s?|pourquoi|come|quando|dove|quant[oaie]|qual[ei]?"
         r"|perché|como|onde|quais)")
_INDIRECT = re.compile(
    rf"^{_GREETING}{_INDIRECT_LEAD}\s*[,:]?\s*(?:{_DROPPED}(?=\s|(?<=')\w)\s*|(?={_KEPT}\b))(?P<question>\S.*?)\s*[.!?]?$",
    re.IGNORECASE | re.DOTALL)
# Chinese and Japanese: "我想知道…" / "请问…", "…か知りたいです" / "…か教えてください".
_CJK_INDIRECT = re.compile(
    r"^(?:我想知道|我想问一下|我想问|请问|想问一下)[，,]?(?P<zh>.+?)[。．.]?$"
    r"|^(?P<ja>.+?か)(?:を)?(?:知りたいです|知りたい|教えてください|教えて下さい|教えていただけますか)[。．.？?]?$")


def direct(text: str) -> str:
    """The question an indirect one wraps, as a question ("I want to know if I can pay with Klarna." -> "I can pay
    with Klarna?"); any other text as it is."""
    stripped = text.strip()
    match = _INDIRECT.match(stripped)
    if match and len(words(match.group("question"))) >= 2:
        return match.group("question").rstrip(" ,.!?") + "?"
    cjk = _CJK_INDIRECT.match(stripped)
    if cjk:
        return (cjk.group("zh") or cjk.group("ja")).rstrip("。．.？?") + ("？" if cjk.group("zh") else "")
    return text


# A letter's salutation and its closing with the name under it ("Geachte heer/mevrouw, … Met vriendelijke groet,\nEmma de
# Jong"): a third of a short email's words, and the invoice it asked for read as nothing.
_SALUTATION = re.compile(
    r"^\s*(?:dear|hello|hi|hey|sehr geehrte[rs]?|liebe[rs]?|hallo|estimad[oa]s?|hola|bonjour|madame|monsieur|ch[eè]re?s?"
    rf"|gentil[ei]|salve|car[oa]|olá|ola|prezad[oa]s?|beste|geachte|{_DAY_GREETINGS})\b[^\n?]{{0,60}}?[,:!.]?[ \t]*\n",
    re.IGNORECASE)
SALUTATION_MAX_WORDS = 5  # "Sehr geehrte Damen und Herren,"; a longer first line says something of its own
_CLOSING = re.compile(
    r"(?:^|\n)[ \t]*(?:thanks?(?: you)?(?: in advance| a lot| so much)?|many thanks|best(?: regards| wishes)?|kind regards"
    r"|warm regards|regards|cheers|sincerely(?: yours)?|yours(?: sincerely| faithfully)?|mit freundlichen grüßen|freundliche"
    r" grüße|viele grüße|beste grüße|liebe grüße|lg|mfg|gruß|danke(?: schön| im voraus)?|vielen dank|saludos(?: cordiales)?"
    r"|un saludo|atentamente|muchas gracias|gracias|cordialement|bien à vous|bien cordialement|merci(?: beaucoup| d'avance)?"
    r"|cordiali saluti|distinti saluti|saluti|grazie(?: mille)?|atenciosamente|cumprimentos|obrigad[oa]|met vriendelijke"
    r" groet(?:en)?|groeten|bedankt|よろしくお願い(?:いたします|致します|します)|宜しくお願いします|谢谢|此致|敬礼)"
    r"[ \t]*[,.!。！]?[ \t]*(?:\n[^\n]{0,40}){0,2}\s*$",
    re.IGNORECASE)


def core(text: str) -> str:
    """A letter without its salutation line and its closing (with the name after it): what it asks. Text that is
    nothing but those, or has neither, comes back as it is."""
    salutation = _SALUTATION.match(text)
    body = text[salutation.end():] if salutation and len(words(salutation.group(0))) <= SALUTATION_MAX_WORDS else text
    closing = _CLOSING.search(body)
    if closing is not None and closing.start() > 0:
        body = body[:closing.start()]
    body = body.strip()
    return body if body and len(words(body)) >= 2 else text


# A plea for help after what the shopper says ("I paid twice for the same order, can you help?"): it says nothing
# about the topic but pulls the question away from it (the payment article's confidence fell from 0.98 to 0.16).
_PLEA = (
    r"(?:(?:can|could|would) you(?: please)? help(?: me)?(?: with (?:this|that|it))?|(?:please )?help(?: me)?(?: please)?"
    r"|any (?:help|ideas?|advice)(?: (?:please|appreciated))?|what (?:should|can|do) i do(?: now)?"
    r"|what do i (?:need|have) to do(?: now)?|how do i proceed"
    r"|(?:können|könnten|kannst|könnt) (?:sie|du|ihr) mir (?:bitte )?helfen|(?:bitte )?helfen sie mir(?: bitte)?"
    r"|was (?:soll|kann|muss) ich (?:jetzt |da |nun )?(?:tun|machen)"
    r"|¿?(?:me )?(?:pueden|puedes|podéis|podrían|podrías|puede|podría) ayudar(?:me)?"
    r"|¿?qué (?:hago|puedo hacer|tengo que hacer|debo hacer)(?: ahora)?|ayuda(?: por favor)?"
    r"|(?:pouvez|pourriez)-vous m'aider|tu peux m'aider|vous pouvez m'aider|que (?:dois|puis)-je faire|que faut-il faire"
    r"|que dois-je faire maintenant|aidez-moi(?: svp| s'il vous plaît)?"
    r"|(?:mi )?(?:potete|puoi|può|potreste) aiutar(?:mi|e)|cosa (?:devo|posso) fare"
    r"|(?:vocês )?(?:podem|pode|poderiam) (?:me )?ajudar|o que (?:devo|posso|tenho que) fazer)")
# Asking how it is done, after saying what is wanted ("Compré unas cortinas y quiero devolverlas, ¿cómo lo hago?"):
# the intent is in what came before (return_request 0.45 with it, 0.97 without). The knowledge base keeps it: the
# articles' example questions ask "how do I …" too ("je voudrais renvoyer une lampe, comment faire ?" found the returns
# article at 0.24 without it, over the threshold with it).
_HOW = (
    r"(?:how (?:does|do|would) (?:that|this|it) work|how do i (?:do|go about) (?:that|this|it)"
    r"|wie (?:geht|funktioniert) (?:das|es)(?: genau)?|wie mache ich das"
    r"|¿?cómo (?:lo hago|se hace|funciona(?: eso)?|hago)"
    r"|comment (?:faire|je fais|(?:ça|cela) (?:marche|fonctionne)|dois-je (?:faire|procéder)|procéder)"
    r"|come (?:faccio|si fa|funziona)|como (?:faço|se faz|funciona))")
_TAIL = r"(?<=\S)\s*[,.;!]\s*(?:(?:so|and|but)\s+)?{}\s*[?!.¿？！。]*\s*$"
_HELP_TAIL = re.compile(_TAIL.format(_PLEA), re.IGNORECASE)
_HOW_TAIL = re.compile(_TAIL.format(_HOW), re.IGNORECASE)
# The same as a sentence of its own ("I would like to return it. What do I need to do?"): about what came before.
_PLEA_PART = re.compile(rf"^¿?(?:{_PLEA}|{_HOW})\s*[?!.？！。]*$", re.IGNORECASE)
_CJK_PLEA = r"(?:能帮我吗|可以帮我吗|请帮帮我|帮帮我|怎么办|助けてください|どうすればいいですか|どうしたらいいですか)"
_CJK_HELP_TAIL = re.compile(rf"(?<=\S)[，,。！!]?{_CJK_PLEA}[？?！!。]*$")
_CJK_PLEA_PART = re.compile(rf"^{_CJK_PLEA}[？?！!。]*$")


def without_help(text: str, how: bool = False) -> str:
    """The text without a plea for help at its end ("..., can you help?"), when enough is left to look up; with
    `how`, also without a question how it is done ("..., how does that work?", see _HOW)."""
    stripped = text.strip()
    for tail in (_HELP_TAIL, _CJK_HELP_TAIL) + ((_HOW_TAIL,) if how else ()):
        match = tail.search(stripped)
        if match and (len(words(stripped[:match.start()])) >= MIN_WORDS or tail is _CJK_HELP_TAIL):
            return stripped[:match.start()].rstrip(" ,.;!")
    return text


def lookup_text(text: str) -> str:
    """What to look a shopper's text up by: an indirect question as the question it wraps, without a plea for help
    at its end ("Ich habe zweimal bezahlt, können Sie mir helfen?" -> "Ich habe zweimal bezahlt")."""
    return direct(without_help(text))


# A question about what the shop does in general, put to the shop ("Do you deliver on Saturdays?", "Liefern Sie auch
# samstags?", "¿Hacen envíos en fin de semana?", "你们周六送货吗？"): it asks about no order of the shopper's, though it
# reads as order_status (0.84-0.96), and asking for an order number does not answer it.
_PRACTICE_EN = r"(?:deliver|ship|send|post|dispatch|accept|take|offer|work|use|charge|call|ring|do)"
_PRACTICE = re.compile(
    rf"^{_GREETING}(?:"
    r"(?:where|from where) do you (?:ship|send|dispatch|deliver)\b"
    r"|(?:von wo(?: aus)?|woher) (?:versendet|verschickt|liefert|schickt) ihr\b"
    r"|(?:von wo(?: aus)?|woher) (?:versenden|verschicken|liefern|schicken) sie\b"
    r"|¿?(?:desde|de) dónde (?:envían|enviáis|mandan|hacen los envíos)\b|d'où (?:expédiez|envoyez|livrez)-vous\b"
    r"|da dove (?:spedite|inviate)\b|de onde (?:vocês )?(?:enviam|entregam)\b"
    r"|(?:do|does) (?:you|your (?:shop|store|company|couriers?|drivers?)|the (?:couriers?|drivers?|carriers?))"
    rf"(?: (?:also|usually|ever|still|normally))? {_PRACTICE_EN}\b"
    r"|(?:liefern|versenden|verschicken|schicken|stellen|akzeptieren|nehmen|bieten|arbeiten) sie\b"
    r"|(?:liefert|versendet|verschickt|schickt|akzeptiert|nehmt|bietet) ihr\b"
    r"|¿?(?:ustedes )?(?:entregan|envían|enviáis|mandan|reparten|aceptan|hacen envíos|trabajan)\b"
    r"|(?:est-ce que vous|vous) (?:livrez|expédiez|envoyez|acceptez|travaillez)\b"
    r"|(?:livrez|expédiez|envoyez|acceptez|travaillez)-vous\b"
    r"|(?:consegnate|spedite|accettate|lavorate)\b"
    r"|(?:vocês )?(?:entregam|enviam|aceitam|trabalham)\b)",
    re.IGNORECASE)
# Chinese: "你们…吗" (not "…了吗", which asks whether something happened); Japanese: "…配達していますか".
_CJK_PRACTICE = re.compile(
    r"^(?:你们|您们|贵店)[^了]*[吗么][？?]?$|^(?:你们|您们)?从哪里发货"
    r"|(?:配達|発送|配送|営業)(?:して(?:い)?ます|します|されます)か[？?]?$")
# Words that tie a question to the shopper's own order or parcel ("Do you know where my order is?", "ship it").
_OWN = re.compile(
    r"\b(?:my|mine|i (?:ordered|bought|placed|paid)|it|it's|its|them|mein\w*|es|bestellt|gekauft|mi|mis|pedí|compré"
    r"|mon|ma|mes|commandé|acheté|mio|mia|miei|mie|ordinato|meu|minha|meus|minhas)\b"
    r"|私の|僕の|注文した|買った|いつ|どこ(?!から)|我的|我买|我订|什么时候|哪里(?!发货)",
    re.IGNORECASE)


def asks_practice(text: str) -> bool:
    """A question about what the shop does in general, put to the shop, with nothing that ties it to the shopper's
    own order ("Do you deliver on Saturdays?" but not "Do you know where my order is?")."""
    stripped = text.strip()
    if not is_question(stripped) or _OWN.search(stripped):
        return False
    return bool(_PRACTICE.match(stripped) or _CJK_PRACTICE.search(stripped))


# A question word that may start a new question after a bare conjunction ("... take and can I pay by PayPal?").
_BARE_JOINERS = r"(?:and|und|y|et|e)"
# A conjunction after a comma or semicolon always starts a new part (", and do I pay customs?").
_COMMA_JOINERS = r"(?:and|also|plus|und|außerdem|y|además|también|et|aussi|e|anche|inoltre|também)"
_CLAUSE = re.compile(
    rf"\s*[,;]\s*(?={_COMMA_JOINERS}[\s,])|\s*;\s*"
    rf"|\s+(?={_BARE_JOINERS}\s+(?:{'|'.join(sorted(map(re.escape, _QUESTION_WORDS), key=len, reverse=True))})\b)",
    re.IGNORECASE)
# Japanese and Chinese: a comma followed by "and also" ("、あと", "，另外").
_CJK_CLAUSE = re.compile(r"[、，,](?=(?:あと|それと|それから|また|另外|还有|以及|而且)\S)")
# A line break, or a numbered item's marker ("Two questions: 1) how long ... 2) can I pay ..."), ends a sentence
# (the PayPal question of that message was passed over); a bullet or number at a line's start is no word of it.
_LIST_BREAK = re.compile(r"\s*\n\s*|(?:^|(?<=\s))\(?\d{1,2}\)\s+")
_BULLET = re.compile(r"^\s*(?:[-•*·]|\d{1,2}[.)])\s+")
_SENTENCE_END = re.compile(r"([.!?]+)\s+|([。！？!?]+)")
_CJK_QUESTION_END = ("か", "吗", "呢", "嗎", "の")
_LEADING_JOINER = re.compile(rf"^(?:{_COMMA_JOINERS})(?:[\s,]+|$)", re.IGNORECASE)
# Words a full stop follows without ending the sentence.
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "no", "nr", "vs", "etc", "ca", "approx", "bzw", "usw", "sr", "sra",
                  "mme", "mlle", "tel", "str"}

# Words by which a part points back at an earlier one ("Do you have the oak table in stock? When will it be
# back?"): read alone, such a part is about something else (a refund "back"). Words in scripts written without
# spaces are looked for as substrings.
_BACK_REFERENCES = {
    "it", "its", "this", "these", "those", "they", "them",  # en
    "er", "ihn", "dies", "diese", "dieses", "diesen", "dafür", "davon", "damit", "darauf", "dazu",  # de (not "es", "sie")
    "eso", "esto", "ello", "esos", "esas",  # es
    "ça", "cela", "ceci", "elle", "elles",  # fr ("est-ce qu'elle est suivie ?": the delivery; not the impersonal "il")
    "ciò", "questo", "questa", "quello", "quella",  # it
    "isso", "isto", "esse", "essa",  # pt
}
# Words that point back when they end the part ("Do you charge a fee for that?", "Wie lange dauert das?", "Wie
# bekomme ich die?", "How do I get one?"); elsewhere they are mostly a conjunction, an article or a number.
_BACK_AT_END = {"that", "one", "das", "die", "sie", "es", "ihn"}
OWN_TOPIC_WORDS = 7  # a part this long names its own topic, whatever it points back at
_CJK_BACK_REFERENCES = ("それ", "これ", "あれ", "它", "这个", "那个", "這個", "那個")


@dataclass(frozen=True)
class Segment:
    text: str
    question: bool
    refers_back: bool = False  # a later part that points back at an earlier one ("When will it be back?")
    short: bool = False  # a question of two words ("¿Aceptan PayPal?"): answered if the KB is sure, else let be
    wish: bool = False  # no question, but a wish to answer ("I also want to change my email.")


def _sentences(text: str) -> list[str]:
    """The sentences of a text: its lines and list items ("1) ... 2) ...", "- ...") each end one."""
    out: list[str] = []
    for line in _LIST_BREAK.split(text):
        out.extend(_line_sentences(_BULLET.sub("", line)))
    return out


def _line_sentences(text: str) -> list[str]:
    out: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end(1) if match.group(1) else match.end(2)
        if match.group(1) and set(match.group(1)) == {"."}:
            before = text[start:match.start(1)].split()
            last = before[-1].casefold() if before else ""
            dotted = "." in last and "@" not in last and len(last) <= 6  # "u.s", "e.g", "z.b"; not an email
            if dotted or last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha()):
                continue  # "U.S. and", "e.g. a lamp", "Mr. Smith": no sentence ends here
        out.append(text[start:end].strip())
        start = match.end()
    out.append(text[start:].strip())
    return [s for s in out if s]


# Words that ask when they open a message, typed without a question mark as chats often are ("how long does a refund
# take", "whats the return address", "combien de temps pour etre rembourse"). Not the auxiliaries ("can you cancel
# my order" is a request) nor words that open statements as often ("was", "como", "que", "ou", "come").
_INTERROGATIVES = {
    "how", "what", "whats", "when", "where", "wheres", "why", "which", "who",
    "wie", "wann", "wo", "warum", "wieso", "weshalb", "welche", "welcher", "welches",
    "cómo", "qué", "cuándo", "cuando", "dónde", "donde", "cuánto", "cuanto", "cuánta", "cuanta", "cuántos", "cuantos",
    "comment", "quand", "où", "combien", "quel", "quelle", "quels", "quelles", "pourquoi",
    "quando", "dove", "quanto", "quanti", "perché", "onde", "qual", "quais",
    "hoe", "wanneer", "waar", "waarom", "welke",
}
_LEADING_GREETING = re.compile(_GREETING, re.IGNORECASE)


def asks(text: str) -> bool:
    """Whether a whole message asks: a question mark or a Japanese or Chinese question particle at its end, an
    indirect question ("I want to know if ..."), or an interrogative first, after a greeting ("hola cuanto tarda el
    envio a mexico"). Narrower than `is_question`, for which "can you cancel my order" asks."""
    stripped = text.strip()
    if stripped.endswith(("?", "？", "か", "吗", "呢", "嗎")) or direct(stripped) != stripped:
        return True
    return opens_with_interrogative(stripped)


def opens_with_interrogative(text: str, within: int | None = 1) -> bool:
    """Whether a text opens with an interrogative (among its first `within` words, None: anywhere), after a greeting
    and a joiner ("Also, how do I return them?"): it asks for information, where "can I get an invoice?" asks for
    something to be done."""
    rest = _LEADING_JOINER.sub("", _LEADING_GREETING.sub("", text.strip(), count=1).lstrip("¿¡"), count=1)
    return any(word in _INTERROGATIVES for word in words(rest)[:within])


def is_question(sentence: str) -> bool:
    """A sentence that asks: a question mark, an opening "¿", a Japanese or Chinese question particle at the end,
    a question wrapped in "I want to know if ...", or a question word first ("how can i contact u by phone")."""
    stripped = sentence.rstrip()
    if stripped.endswith(("?", "？")) or stripped.startswith(("¿", "？")):
        return True
    if stripped.rstrip("。.!！").endswith(_CJK_QUESTION_END):
        return True
    if direct(stripped) != stripped:
        return True  # "I want to know if I can pay with Klarna"
    first = words(stripped)[:1]
    return bool(first) and first[0] in _QUESTION_WORDS


def split(text: str) -> list[Segment]:
    """The parts of a message that may each ask something, in order; one part when it asks one thing."""
    parts: list[Segment] = []
    for sentence in _sentences(text):
        for clause in _CJK_CLAUSE.split(sentence):
            for piece in _CLAUSE.split(clause):
                piece = piece.strip()
                opening = "¿" if piece.startswith("¿") else ""  # "¿Y puedo devolverlo?" -> "¿puedo devolverlo?"
                piece = opening + _LEADING_JOINER.sub("", piece.removeprefix(opening)).strip(" ,;")
                if piece:
                    question = is_question(piece)
                    parts.append(Segment(piece, question, bool(parts) and (_refers_back(piece) or _is_plea(piece)),
                                         wish=not question and _is_wish(piece)))
    return parts


def _is_plea(text: str) -> bool:
    """A part that asks for help and names nothing ("What do I need to do?", "Que dois-je faire ?")."""
    stripped = text.strip()
    return bool(_PLEA_PART.match(stripped) or _CJK_PLEA_PART.match(stripped))


def _is_wish(text: str) -> bool:
    return bool(_WISH.match(text.lstrip("¿¡")) or _CJK_WISH.search(text.strip()))


def _refers_back(text: str) -> bool:
    """A short part with a word that points back ("When will it be back?"), or any part that ends with one ("Do you
    charge a fee for that?"). A longer one names a topic of its own ("if it arrives damaged, how do I return it?":
    returns), which it is looked up by."""
    if any(w in text for w in _CJK_BACK_REFERENCES):
        return True
    found = words(text)
    if found and found[-1] in _BACK_AT_END:
        return True
    return len(found) < OWN_TOPIC_WORDS and bool(_BACK_REFERENCES.intersection(found))


ELLIPSIS_MAX_WORDS = 4


def elliptical(text: str) -> bool:
    """A short message that goes on from the previous one with a joiner ("and express?", "und per Express?", "et le
    suivi ?"): it means nothing alone."""
    stripped = text.strip().lstrip("¿¡")
    found = words(stripped)
    return 0 < len(found) <= ELLIPSIS_MAX_WORDS and _LEADING_JOINER.match(stripped) is not None


def points_back(text: str) -> bool:
    """A message that points back at what was said before and names no topic of its own ("how much would that cost
    me?", "Wie lange dauert das?", "それはいくらですか？")."""
    found = words(text)
    pronoun = len(found) < OWN_TOPIC_WORDS and bool(_BACK_AT_END.intersection(found))  # "how much would that cost?"
    return pronoun or _refers_back(text.strip()) or _is_plea(text)


def questions(text: str) -> list[Segment]:
    """The parts of a message worth looking up on their own: long enough, at most MAX_SEGMENTS; empty when the
    message is a single part (it was looked up whole). A short part still makes the rest a part of its own:
    in "ND-100104, and how long do refunds take?" the order number is the turn's, the question is not."""
    parts = split(text)
    if len(parts) < 2:
        return []
    kept = []
    for part in parts:
        count = len(words(part.text))
        if count >= MIN_WORDS:
            kept.append(part)
        elif count == MIN_WORDS - 1 and part.question and not part.refers_back:
            kept.append(replace(part, short=True))
    return kept[:MAX_SEGMENTS]


def count_questions(text: str) -> int:
    """How many questions and wishes a message holds, without the MAX_SEGMENTS cap of `questions`."""
    return sum(1 for part in split(text) if (part.question or part.wish) and len(words(part.text)) >= MIN_WORDS)


# A shopper writing again because earlier messages went unanswered, in the supported languages: "this is the third
# time I'm writing, nobody answers" read as calm (angry 0.50) and was asked for an order number. Tied to writing or
# asking, so "nobody answered the door" and "the third time I order from you" are not such a message.
REPEAT_CONTACT: tuple[str, ...] = (
    r"\b(third|3rd|fourth|4th|fifth|5th|umpteenth|nth) time (that )?(i'?m |i am |i have |i've |i )?"
    r"(writ|ask|contact|messag|email|reach|chat)",
    r"\b(no ?one|nobody) (has |is |ever |even )*(answer|repl|respond|get back|gets back|got back)\w*+"
    r"(?! (at |to )?the (door|bell|intercom))",
    r"\bstill no (answer|reply|response)", r"\bno (answer|reply|response) (yet|so far|from you|to my)",
    r"\b(writ|email|messag|contact)\w* (to )?you \w+ (times|days in a row)\b",
    r"niemand (antwortet|meldet sich|reagiert)", r"(immer )?noch keine antwort", r"keine antwort (bekommen|erhalten)",
    r"(schreibe|frage|melde)\w* .{0,20}zum (dritten|vierten|fünften|x-ten|wiederholten) mal",
    r"zum (dritten|vierten|fünften|x-ten|wiederholten) mal .{0,20}(geschrieben|gefragt|gemeldet|nachgefragt)",
    r"nadie (me |nos )?(responde|contesta)", r"(todavía|aún|sigo) sin (ninguna )?respuesta",
    r"(tercera|cuarta|quinta) vez que (les |te |os )?(escrib|pregunt|contact|reclam)",
    r"personne ne (me |nous )?r[ée]pond", r"(toujours|encore) (pas de|aucune) r[ée]ponse",
    r"(troisi[èe]me|quatri[èe]me|ni[èe]me) fois que (je )?(vous )?([ée]cri|demande|contacte|relance)",
    r"nessuno (mi |ci )?rispond", r"ancora nessuna risposta",
    r"(terza|quarta|quinta) volta che (vi |ti )?(scriv|chied|contatt)",
    r"ningu[ée]m (me |nos )?respond", r"(ainda )?sem (nenhuma )?resposta",
    r"(terceira|quarta|quinta) vez que (eu )?(vos |te )?(escrev|pergunt|contat|entro em contato)",
    r"niemand reageert", r"nog steeds geen (antwoord|reactie)",
    r"(返事|返信|回答)が(ない|来ない|こない|ありません)", r"何度も(問い合わせ|連絡|メール)",
    r"[三3３]回目の(問い合わせ|連絡|メール)",
    r"没(有)?人(回复|回|理)", r"一直没(有)?(回复|回音)", r"第[三四五3-5]次(联系|问|发消息|询问|催)",
)
says_written_before = Phrases(*REPEAT_CONTACT, doc="Whether the shopper says they wrote before and got no answer "
                                                  "(the `repeat_contact` escalation trigger).")


# Words of a bare "no" or "no thanks" in the supported languages: no reason, no question in them.
BARE_NO = frozenset({
    "no", "nope", "nah", "not", "nein", "non", "nee", "não", "nao", "thanks", "thank", "you", "danke", "merci", "gracias",
    "grazie", "obrigado", "obrigada", "bedankt", "ok", "okay", "that", "s", "it", "is", "all", "fine", "alles", "gut",
    "bien", "c", "est", "tout", "va", "bene", "tudo", "bem", "nothing", "else", "nichts", "weiter", "mehr", "rien", "d",
    "autre", "nada", "más", "mas", "niente", "altro", "niets", "meer", "いいえ", "大丈夫です", "ないです", "不用了", "不用",
    "没有", "没有了", "谢谢",
})
# The words around a destination named alone: "and to Norway?", "Und Norwegen?", "¿y a Italia?", "オーストラリアは？".
ELLIPSIS_WORDS = frozenset({
    "and", "to", "what", "about", "how", "for", "also", "too", "und", "nach", "was", "ist", "mit", "y", "a", "para", "et",
    "pour", "en", "au", "aux", "e", "per", "in", "o", "em", "naar", "は", "へ", "に", "呢", "到", "和", "还有", "那",
})


def _words(text: str) -> list[str]:
    """The tokens between non-word characters, case-folded; Chinese and Japanese words stay whole ("不用了"), unlike
    `words`, which splits them into characters."""
    return [token for token in re.split(r"[\W_]+", text.casefold()) if token]


def is_bare_no(text: str) -> bool:
    """Whether the message says no more than "no", "no thanks" or "that's all", in the supported languages."""
    return all(token in BARE_NO for token in _words(text))


def only_joiners(text: str) -> bool:
    """Whether what is left around a destination named alone is only joiners ("and to …?", "Und …?", "¿y a …?")."""
    return all(token in ELLIPSIS_WORDS for token in _words(text))


# A shopper saying the parcel never reached them, in the supported languages ("I never received my order ND-100142
# but the tracking says delivered"). Only read together with a delivered status: the order-status question that
# says it has not arrived gets the status when the parcel is still on its way.
NOT_RECEIVED: tuple[str, ...] = (
    r"\b(have ?n[o']t|has ?n[o']t|did ?n[o']t|never|not|still not|still have ?n[o']t|yet to) (yet )?"
    r"(received|receive|got|get|gotten|arrived|arrive|come|came|turned up|shown up|showed up)\b",
    r"\bnever (got|received|arrived|came|reached)\b", r"\b(no|nothing) (parcel|package|order) (has )?(arrived|came)",
    r"\b(it's|it is|its|they're|they are) (still )?not here\b", r"\b(isn't|aren't|is not) here\b",
    r"\b(no (está|esta|están|estan) aquí|no lo tengo)\b", r"\bn'(est|sont) (toujours )?pas (là|ici)\b",
    r"\bnon (c'è|ce l'ho)\b", r"\b(ist|sind) (aber )?nicht (hier|bei mir)\b",
    r"\bnicht (bekommen|erhalten|angekommen|zugestellt|da)\b", r"\bnie (bekommen|erhalten|angekommen)\b",
    r"\bkein(e|en)? (paket|lieferung|sendung) (bekommen|erhalten)",
    r"\bno (me )?(he|ha|han) (recibido|llegado)", r"\bnunca (me )?(lleg[óo]|recib[íi])", r"\bno (me )?lleg[óo]\b",
    r"\b(pas|jamais|rien) re[çc]u", r"\bn'(est|ai|a) (toujours |jamais )?(pas |rien )?(arriv[ée]e?|re[çc]u)",
    r"\bnon (l'|lo |la |li |le )?(ho )?(mai )?ricevut[oaie]", r"\bnon (è|e') (mai |ancora )?arrivat[oaie]",
    r"\bn[ãa]o (o |a )?(recebi|chegou|recebemos)", r"\bnunca (chegou|recebi)",
    r"\bniet (ontvangen|aangekomen|bezorgd gekregen)\b", r"\bnooit (ontvangen|aangekomen)\b",
    r"(届いていません|届いていない|届かない|受け取っていません|受け取っていない|来ていません)",
    r"(没收到|没有收到|未收到|还没到|没到货|根本没到)",
)
says_not_received = Phrases(*NOT_RECEIVED, doc="Whether the shopper says the parcel has not reached them.")


# A shopper saying the parcel or an item came damaged ("Olá, a minha encomenda ND-100337 chegou danificada."): read
# as order_status with the order named, it was told the delivery date. Past tense only: "if it arrives damaged, how
# do I return it?" asks about the policy.
ARRIVED_DAMAGED: tuple[str, ...] = (
    r"\b(arrived|came|was delivered|were delivered|got here|showed up|turned up)( \w+)? (damaged|broken|smashed|"
    r"cracked|shattered|dented|torn|in pieces|chipped)\b",
    r"\b(damaged|broken|smashed|cracked) (on|upon) (arrival|delivery)\b",
    r"\b(beschädigt|kaputt|zerbrochen|defekt|gebrochen|zerkratzt) (angekommen|angeliefert|geliefert)\b",
    r"\b(kam|kamen|ist|sind)( \w+)? (beschädigt|kaputt|zerbrochen|defekt)( \w+)? an\b",
    r"\b(lleg[óo]|llegaron|ha llegado|han llegado|vino|vinieron)( \w+)? (dañad[oa]s?|rot[oa]s?|estropead[oa]s?|"
    r"golpead[oa]s?|partid[oa]s?|en pedazos)\b",
    r"\b(arriv[ée]e?s?|re[çc]ue?s?|livr[ée]e?s?)( \w+)? (ab[îi]m[ée]e?s?|endommag[ée]e?s?|cass[ée]e?s?|bris[ée]e?s?|"
    r"f[êe]l[ée]e?s?|en morceaux)",
    r"\b(arrivat[oaie]|consegnat[oaie]|ricevut[oaie])( \w+)? (danneggiat[oaie]|rott[oaie]|ammaccat[oaie]|"
    r"scheggiat[oaie]|in pezzi)\b",
    r"\b(chegou|chegaram|veio|vieram)( \w+)? (danificad[oa]s?|partid[oa]s?|quebrad[oa]s?|estragad[oa]s?|"
    r"amassad[oa]s?|em pedaços)",
    r"\b(beschadigd|kapot|gebroken|stuk) (aangekomen|geleverd|bezorgd|binnengekomen)\b",
    r"\bkwam(en)? (\w+ )?(beschadigd|kapot|stuk) aan\b",
    r"(破損|壊れ|割れ|傷つ|へこん)[^。？?]{0,6}(届|到着)", r"届いた[^。？?]{0,12}(破損|壊れ|割れ|欠けて|傷が)",
    r"(收到|到货|送到|寄到|到了)[^。？?]{0,8}(破损|坏了|碎了|破了|损坏|摔坏|裂了)",
    r"(破损|损坏|摔坏|碎了)的?(包裹|商品|货)",
)
says_arrived_damaged = Phrases(*ARRIVED_DAMAGED, doc="Whether the shopper says the parcel or an item came damaged.")


# A shopper saying a payment was taken twice ("I paid twice for order ND-100207, can you refund one?"): read as a
# refund question it got "there is no refund on this order"; a person has to check the payments.
CHARGED_TWICE: tuple[str, ...] = (
    r"\b(charged|paid|billed|debited|taken|deducted) (me )?(twice|two times|double)\b",
    r"\bdouble (charge|charged|charging|payment|billing|billed)\b", r"\b(two|2|duplicate) (charges|payments)\b",
    r"\b(zweimal|doppelt|2x|2 mal) (abgebucht|bezahlt|belastet|berechnet|abgezogen|gezahlt)",
    r"\bdoppelte (abbuchung|zahlung|belastung)",
    r"\b(cobrado|cobraron|cobrasteis|cobró|pagué|pague|cargaron|cargado) (?!en )(\w+ )?(dos veces|doble)\b",
    r"\b(doble|duplicado) (cobro|cargo|pago)\b", r"\bcobro (doble|duplicado)\b",
    r"\b(débité|debite|débitée|prélevé|preleve|facturé|payé)e? (?!en (?!double))(\w+ )?(deux fois|2 fois|en double)",
    r"\b(double|deux) (prélèvements?|débits?|paiements?)\b",
    r"\b(addebitat[oaie]|pagat[oaie]) (?!in )(\w+ )?(due volte|doppio)", r"\bdoppio addebito\b",
    r"\b(cobrad[oa]|cobraram|paguei|debitad[oa]) (?!em )(\w+ )?(duas vezes|em dobro)", r"\bcobran[çc]a (duplicada|dupla)\b",
    r"\b(twee keer|dubbel) (betaald|afgeschreven|gefactureerd)", r"\bdubbele (afschrijving|betaling)\b",
    r"(二重(に)?(請求|引き落とし|決済|支払い)|2回(引き落と|請求|決済|支払)|二回(引き落と|請求|決済|支払))",
    r"(扣了两次|扣款两次|重复扣款|重复付款|付了两次|扣了兩次|重複扣款|被扣两次|收了两次)",
)
says_charged_twice = Phrases(*CHARGED_TWICE, doc="Whether the shopper says a payment was taken from them twice.")


# A sentence in which the shopper tells that they ordered something ("I ordered the blackout curtains last week, order
# ND-100190."): what happened, no request of its own, though it reads as a status question.
TELLS_ORDERING: tuple[str, ...] = (
    r"\b(i|we)( have|'ve| had)? (just |recently )?(ordered|bought|purchased|placed)\b",
    r"\b(habe|haben|hatte) .{0,60}\b(bestellt|gekauft|aufgegeben)\b",
    r"\b(pedí|compré|encargué|he pedido|he comprado|hice (un|el) pedido)\b",
    r"\b(j'ai|nous avons) (\w+ )?(commandé|acheté|passé)", r"\b(ho|abbiamo) (ordinato|comprato|acquistato)\b",
    r"\b(encomendei|comprei|fiz (uma|a) encomenda)\b", r"\b(ik|we) heb(ben)? .{0,60}\b(besteld|gekocht)\b",
    r"(注文しました|注文した|購入しました|購入した|買いました)", r"(我.{0,4}(买了|订了|下单|下了单|购买了)|下单了)",
)
tells_ordering = Phrases(*TELLS_ORDERING, doc="Whether a sentence tells that the shopper ordered something.")


# A message that only says the shopper has a question or needs help, the question still to come ("hello, I have a
# question about my order", "I need help with my order", "kurze Frage"): it fell back or asked for an order number.
_ABOUT = (r"(?:\s+(?:about|regarding|with|concerning|on|for)(?:\s+(?:my|an|the|your|a))?"
          r"(?:\s+(?:order|orders|purchase|delivery|parcel|package|shipment|shop|store))?)?")
_ABOUT_DE = (r"(?:\s+(?:zu|zur|zum|wegen|bezüglich|über|mit|bei)"
             r"(?:\s+(?:meiner|meinem|meinen|einer|einem|der|dem|ihrer))?(?:\s+(?:bestellung|lieferung|paket|sendung))?)?")
_ABOUT_ES = (r"(?:\s+(?:sobre|con|acerca de|de|respecto a)(?:\s+(?:mi|un|el|la))?"
             r"(?:\s+(?:pedido|compra|envío|envio|paquete))?)?")
_ABOUT_FR = (r"(?:\s+(?:concernant|sur|à propos de|a propos de|pour|avec|au sujet de)(?:\s+(?:ma|une|la|mon))?"
             r"(?:\s+(?:commande|livraison|colis))?)?")
ANNOUNCES_QUESTION: tuple[str, ...] = (
    rf"(?:i (?:have|'ve got|got)|i've|got) (?:a|one|some|a few|another|a quick|a small) ?(?:quick |small |short )?"
    rf"(?:question|questions|query|problem|issue){_ABOUT}",
    rf"(?:i )?(?:need|want) (?:some )?help{_ABOUT}", rf"(?:can|could) you help(?: me)?(?: please)?{_ABOUT}",
    r"(?:can|may|could) i ask (?:you )?(?:a|something|a quick)(?: question)?", r"quick (?:question|one|q)",
    rf"ich (?:habe|hätte) (?:eine|ein paar|noch eine|mal eine) (?:kurze |kleine )?(?:frage|fragen|problem){_ABOUT_DE}",
    rf"ich brauche (?:kurz )?hilfe{_ABOUT_DE}", r"(?:eine )?kurze frage",
    rf"(?:tengo|tenía|tendría) (?:una|unas|otra) (?:pregunta|duda|consulta|problema){_ABOUT_ES}",
    rf"necesito (?:una )?ayuda{_ABOUT_ES}", r"una (?:pregunta|consulta)(?: rápida)?",
    rf"j'(?:ai|aurais) (?:une|quelques|encore une) (?:petite )?(?:question|questions|problème){_ABOUT_FR}",
    rf"j'ai besoin d'aide{_ABOUT_FR}", r"(?:une )?petite question",
    r"ho (?:una|qualche) (?:domanda|problema)(?:\s+(?:sul|sul mio|riguardo|sull'|per il mio|per)(?:\s+ordine)?)?",
    r"ho bisogno di aiuto(?:\s+con il mio ordine)?",
    r"tenho uma (?:pergunta|dúvida|duvida|questão)(?:\s+sobre(?:\s+(?:a minha|o meu))?(?:\s+(?:encomenda|pedido))?)?",
    r"preciso de ajuda(?:\s+com (?:a minha|o meu) (?:encomenda|pedido))?",
    r"ik heb een (?:vraag|probleem)(?:\s+over(?:\s+mijn)?(?:\s+bestelling)?)?", r"ik heb hulp nodig",
)
_ANNOUNCES_QUESTION = re.compile(rf"^(?:{'|'.join(ANNOUNCES_QUESTION)})$", re.IGNORECASE)
_CJK_ANNOUNCES_QUESTION = re.compile(
    r"^(?:(?:注文|商品|配送)(?:について|に関して)(?:の)?)?(?:質問|問い合わせ|相談|お聞きしたいこと)"
    r"(?:があります|があるのですが|がありまして|したいのですが|したいです|です)$"
    r"|^(?:我)?(?:想)?(?:咨询|问)(?:一下)?(?:(?:关于)?(?:我的)?订单的?(?:问题|事)|(?:一)?个问题)$|^(?:我)?有(?:一)?个问题$")


def announces_question(text: str) -> bool:
    """Whether a message only says that a question or a request for help is coming ("hi, I have a question about
    my order", "Ich habe eine Frage zu meiner Bestellung", "注文について質問があります")."""
    rest = _LEADING_GREETING.sub("", text.strip(), count=1).strip()
    rest = re.sub(r"^(?:你好|您好|こんにちは|すみません)[\s,.!，、！。]*", "", rest)
    rest = re.sub(r"[\s.!?,:;…。！？、，：~]+$", "", rest)
    rest = re.sub(r"^[\s,.!]+|\s+please$|^please\s+", "", rest, flags=re.IGNORECASE)
    rest = re.sub(r"\s+", " ", rest).replace("’", "'")
    return bool(rest) and (_ANNOUNCES_QUESTION.match(rest) is not None or _CJK_ANNOUNCES_QUESTION.match(rest) is not None)
