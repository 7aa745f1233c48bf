"""The one place that decides: an inbound message -> a Decision -> replies, with a trace of why.

Policy, in order: a human owns the thread -> stay silent; escalation triggers -> escalate; a
button or an answer to the bot's own question -> continue that flow; action intents -> run the
action (asking for missing slots, proving order ownership first); greetings and thanks ->
small talk; knowledge questions -> answer from the KB when confident, ask to clarify when two
articles are close; otherwise a helpful fallback, and after two in a row, escalate.
"""

from __future__ import annotations

import asyncio
import copy
import re
import time
import unicodedata
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog
from babel import Locale, UnknownLocaleError
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from actions.carriers import tracking_url
from bot.channels.base import QuickReply
from bot.identity import merged_profiles
from bot.pipeline import ReplyDraft, TurnOutcome
from bot.store.models import ChannelIdentity, Conversation, Customer, Message
from nlu import segments
from nlu.segments import Segment
from nlu.types import ORIGIN_ROLE, ParseResult, Sentiment
from nlu.vocabulary import words

log = structlog.get_logger(__name__)

ORDER_ACTIONS = {
    "order_status": "action_order_status",
    "cancel_order": "action_cancel_order",
    "change_address": "action_change_address",
    "refund_status": "action_refund_status",
    "request_invoice": "action_send_invoice",
    "return_request": "action_return_request",
    "change_items": "action_change_items",
    "missing_items": "action_missing_items",
}
OTHER_ACTIONS = {"shipping_estimate": "action_shipping_estimate"}
# Right after one of these actions, a message with no clear wish that names a new value of these entities
# asks the same again for it: "and to Norway?" after the estimate for Japan.
FOLLOW_UPS = {"action_shipping_estimate": ("country",)}
CHANGE_ADDRESS = ORDER_ACTIONS["change_address"]
RETURN_REQUEST = ORDER_ACTIONS["return_request"]
# Readings of a message that, right after a return was opened, tell why the items come back ("it's too small" reads
# as deny at 0.96, "wrong size" as return_request): none of them is a new wish.
REASON_READINGS = {None, "deny", "inform", "return_request", "change_items"}
ACTION_INTENTS = {action: intent for intent, action in {**ORDER_ACTIONS, **OTHER_ACTIONS}.items()}
INFORM = "inform"  # a message that only gives details; see handle()
SMALLTALK = {"greet": "utter_greet", "goodbye": "utter_goodbye", "thanks": "utter_thanks",
             "bot_challenge": "utter_bot_challenge"}
# Intents that say nothing of a topic; a message of this many words or more read as one of them is also looked
# up in the KB, and a confident answer wins ("my discount code doesn't work" is no plain "no").
CONTENTLESS = {"greet", "goodbye", "thanks", "affirm", "deny"}
CONTENT_MIN_WORDS = 3
# Replies that end by asking whether the shopper needs anything else: a "yes" or "no" next answers that.
OFFERS_MORE = {"utter_thanks", "utter_ack"}
# Responses by which an action asks the shopper something; the answer comes back in this slot.
ASKS = {"utter_confirm_cancel": "confirm", "utter_ask_new_address": "new_address", "utter_ask_country": "country"}
# What the bot waits for -> the entities that answer it.
AWAITED_ENTITIES = {"order_number": ("order_number",), "contact": ("email", "phone"), "country": ("country",)}
# What the bot asks again after answering another question while waiting for one of those, or for a new address.
ASK_AGAIN = {"order_number": "utter_ask_order_number", "contact": "utter_ask_email_or_phone",
             "country": "utter_ask_country", "new_address": "utter_ask_new_address"}
# The shopper cannot give what the bot asked for -> where to find it, or why it is needed.
MISSING_ANSWER = {"order_number": "utter_no_order_number", "contact": "utter_no_contact"}
REPEAT_CONTACT_DAYS = 7
# An answer to the bot's question with this many letters besides the entities, in a language detected this surely,
# switches the replies to that language (`_written_in`).
ANSWER_SWITCH_LETTERS = 15
ANSWER_SWITCH_CONFIDENCE = 0.8
SWITCH_CONFIDENCE = 0.9  # an action intent this sure replaces the action the bot was collecting slots for
RETURN_REASON_CHARS = 500
CERTAIN_INTENT = 0.97  # above this an action intent is a request, whatever the KB also matches
NEAR_CONFIDENT = 0.6  # a KB hit (of the top two) this close to the threshold is offered as a choice, not a fallback
# An order-status reading this unsure, with no order number, loses to a more confident KB answer: "is it possible
# to order by phone?" was order_status at 0.60 and asked for an order number (how-to-order matched at 0.99).
DOUBTFUL_ORDER_STATUS = 0.9
# Under this an order action other than the status, read with no order number, is offered as a choice rather than
# started: "can i change the color of the rug i ordered?" (change_address 0.55) was asked for the order number.
DOUBTFUL_ACTION = 0.7
SURE_OVER_ORDER = 0.8  # a KB answer this sure answers a message that names an order but asks no order action
# Two order actions that together are read at least this surely, each under the intent threshold: ask which one.
TORN_ACTIONS = 0.7
# However sure, an order-status reading with no order number loses to a confident KB answer from an article that
# the intent's own training examples do not lead to: "Kann ich die Lieferung an eine Packstation schicken?" reads as
# order_status at 0.95 and asked for an order number, though it asks what the shipping-address article answers;
# "where is my order?" finds the order-tracking article, which order-status examples find too. An article is the
# intent's own when at least this share (and two) of the examples the KB answers confidently find it.
OWN_ARTICLE_SHARE = 0.05
FOLLOW_UP_CONTEXT = 300  # characters of the question the last KB answer answered, kept to read a follow-up by
# Order actions a general policy question is often mistaken for: without an order number, a confident
# KB answer wins (order status always asks for the number: "where is my order?" wants the order).
POLICY_LOOKALIKES = {"refund_status", "return_request", "request_invoice", "cancel_order", "change_address"}
# Once the shopper has proven an order, these ask about it ("can I change the delivery address?"), not about
# the policy in general: the action for that order, which still asks or confirms before changing anything.
# (Not return_request, which opens a return at once; refund_status goes to the order's refund when it has one.)
FOR_PROVEN_ORDER = {"change_address", "cancel_order", "request_invoice", "change_items", "missing_items"}
NO_REFUND = "utter_refund_status_none"  # action_refund_status: the order has no refund
DELIVERED = "utter_order_status_delivered"  # action_order_status: the carrier delivered the order
NOT_RECEIVED = "utter_order_not_received"  # ... and the shopper says it never came: a person checks
ASK_QUESTION = "utter_ask_question"  # the shopper says a question is coming: "Of course, tell me more."
MANY_QUESTIONS = "utter_many_questions"  # more questions than a turn answers: a person reads the rest
CHARGED_TWICE = "utter_charged_twice"  # the shopper says a payment was taken twice: a person checks the payments
SELF_PROVING_EMAIL = {"email", "amazon"}  # the mail came from that address
SELF_PROVING_PHONE = {"whatsapp"}  # the message came from that number
MAIL_CHANNELS = {"email", "amazon"}  # no buttons: a reply's buttons go out as a list of their titles
# Decisions after which the other questions of a message are answered too (see _other_questions).
ANSWERS_MORE = {"answer", "act", "ask", "smalltalk"}
MAX_EXTRA_ANSWERS = 3
UNANSWERED_PART = "utter_part_unanswered"  # {question}: one of them has no answer
NO_ANSWER = "utter_no_answer"  # a question understood as one that the KB has no answer to
# A statement the bot can place nowhere, this angry (under the angry label's threshold, which hands the conversation
# to a person): an apology and the offer of a person ("that is way too long, I am really disappointed", 0.67, got
# "Sorry, I didn't understand that").
DISSATISFIED = 0.5
# A question read as an order request (under CERTAIN_INTENT) that the KB's classifier places among the off-topic
# questions this surely asks about a product or the shop, not about an order (see _decide).
OFF_TOPIC_QUESTION = 0.8
SORRY = "utter_sorry_offer_person"
# Said before the handoff's own words when the shopper is angry, threatens or writes about it again: "your service is
# terrible" was answered "Thanks for your message! Our team is offline right now; …" and nothing more.
SORRY_HANDOFF = "utter_sorry_handoff"
UPSET_TRIGGERS = {"anger", "threat", "repeat_contact"}
IDENTIFIERS = {"order_number", "email", "phone", "tracking_number"}  # a part naming one is the turn's business
QUOTED_CHARS = 120


@dataclass
class Decision:
    kind: str  # answer | act | ask | clarify | escalate | after_hours | silent | fallback | smalltalk
    intent: str | None = None
    confidence: float = 0.0
    article_id: str | None = None
    article_version: int | None = None
    action: str | None = None
    language: str = "en"
    ticket_id: int | None = None
    rule: str = ""
    slot: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "extra"}
        data.update(self.extra)
        return data


@dataclass
class Parts:
    """What the parts of a message say, read one by one (`ConversationEngine._read_parts`)."""
    answered: list[tuple[Segment, KBHit, KBAnswer]] = field(default_factory=list)
    unanswered: list[Segment] = field(default_factory=list)
    requests: list[tuple[Segment, ParseResult]] = field(default_factory=list)
    lookups: list[tuple[Segment, ParseResult]] = field(default_factory=list)  # questions an OTHER_ACTION answers
    trace: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Rendered:
    text: str
    quick_replies: list[QuickReply] = field(default_factory=list)
    fallback_used: bool = False


class Responses(Protocol):
    def render(self, name: str, language: str, **variables: Any) -> Rendered: ...

    def __contains__(self, name: object) -> bool: ...


class Understanding(Protocol):
    def parse(self, text: str, previous_language: str | None = None) -> ParseResult: ...
    def examples(self, intent: str) -> list[tuple[str, str]]: ...


@dataclass
class KBHit:
    article_id: str
    version: int
    title: str
    answer: str
    locale: str
    confidence: float


@dataclass
class KBAnswer:
    hits: list[KBHit]
    confident: bool
    close_call: bool
    fallback_used: bool
    trace: dict[str, Any]


class Knowledge(Protocol):
    @property
    def version(self) -> int: ...
    def search(self, query: str, language: str) -> KBAnswer: ...
    async def record_unanswered(self, text: str, language: str, channel: str, conversation_id: int,
                                reason: str) -> None: ...


@dataclass
class ActionOutcome:
    replies: list[Rendered]
    slots: dict[str, Any]
    trace: dict[str, Any]
    failed: bool = False  # the store could not be reached: honest message and a ticket
    handoff_reason: str | None = None  # the action asks for a person (store_unavailable, shopper_asked, ...)
    # Each response's variables by response name ({"utter_order_status_delivered": {"carrier": "DHL", ...}}).
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)


class Actions(Protocol):
    async def run(self, action: str, slots: dict[str, Any], language: str, sender: str,
                  customer: CustomerFacts) -> ActionOutcome: ...
    async def verify_ownership(self, sender: str, order_number: str, email: str | None, phone: str | None,
                               customer: CustomerFacts) -> tuple[str, dict[str, Any]]:
        """("ok" | "no" | "rate_limited", facts about a proven order: total, currency, in_transit)."""
        ...


@dataclass
class CustomerFacts:
    customer_id: int
    emails: list[str]
    phones: list[str]
    name: str | None


@dataclass
class Escalation:
    ticket_id: int | None
    replies: list[Rendered]
    after_hours: bool
    trace: dict[str, Any]


class Handoff(Protocol):
    def triggers(self, parse: ParseResult, state: dict[str, Any], message: Message) -> list[dict[str, Any]]: ...
    async def escalate(self, session: AsyncSession, conversation: Conversation, message: Message,
                       parse: ParseResult, triggers: list[dict[str, Any]], language: str,
                       customer: CustomerFacts, state: dict[str, Any]) -> Escalation: ...
    async def notify_agent(self, conversation: Conversation, message: Message, parse: ParseResult) -> None: ...
    # The project's escalation rules (handoff.yml) for what the engine itself counts.
    @property
    def failed_turns_limit(self) -> float: ...
    @property
    def repeat_contact_days(self) -> int: ...
    @property
    def escalates_human_requests(self) -> bool: ...


class ConversationEngine:
    def __init__(self, *, nlu: Understanding | None, knowledge: Knowledge | None, responses: Responses,
                 actions: Actions | None, handoff: Handoff | None, languages: list[str], fallback_language: str,
                 intent_threshold: float = 0.5, session_expiry_minutes: int = 60) -> None:
        self.nlu = nlu
        self.knowledge = knowledge
        self.responses = responses
        self.actions = actions
        self.handoff = handoff
        self.languages = languages
        self.fallback_language = fallback_language
        self.intent_threshold = intent_threshold
        self.session_expiry = timedelta(minutes=session_expiry_minutes) if session_expiry_minutes > 0 else None
        # (intent, KB version) -> the articles that the intent's training examples find (see OWN_ARTICLE_SHARE).
        self._own_articles: dict[tuple[str, int], frozenset[str]] = {}
        self._spared_version: int | None = None  # the KB version whose words the NLU's spelling correction spares
        # Called once a shopper proved an order: links their channel identity to the order's customer.
        self.on_order_proven: Callable[[Conversation, str, dict[str, Any]], Awaitable[None]] | None = None

    def _expired(self, state: dict[str, Any], written: datetime) -> bool:
        """The shopper's last turn was longer ago than the session expiry: what the bot was waiting for is stale
        ("yes" a day later must not confirm yesterday's cancellation)."""
        last = state.get("last_turn_at")
        if self.session_expiry is None or not last:
            return False
        try:
            return written - _utc(datetime.fromisoformat(str(last))) > self.session_expiry
        except ValueError:
            return False

    async def _spare_kb_words(self) -> None:
        """Tell the NLU the KB's words (once per KB version), so that spelling correction leaves them alone: German
        "Konto" is in the articles but in no training example, and "wie kann ich meine Adresse im Konto ändern?" was
        mended into "… im Kongo …", missed the account article and asked for an order number. Reading every entry of a
        large KB takes a while: off the event loop, like the parse."""
        spare = getattr(self.nlu, "spare_words", None)
        kb_words = getattr(self.knowledge, "words", None)
        if spare is None or kb_words is None or self.knowledge is None or self._spared_version == self.knowledge.version:
            return
        version = self.knowledge.version
        await asyncio.to_thread(lambda: spare(kb_words()))
        self._spared_version = version  # after: a turn parsed meanwhile waits for its own reading, never goes without

    def _articles_of(self, intent: str) -> frozenset[str]:
        """The articles that the intent's own training examples find in the KB (see OWN_ARTICLE_SHARE): searched
        once per KB version, so a published article counts from the next message on."""
        if self.knowledge is None or self.nlu is None:
            return frozenset()
        key = (intent, self.knowledge.version)
        own = self._own_articles.get(key)
        if own is None:
            found = Counter(
                answer.hits[0].article_id
                for answer in (self.knowledge.search(text, language) for text, language in self.nlu.examples(intent))
                if answer.confident and answer.hits
            )
            least = max(2.0, OWN_ARTICLE_SHARE * sum(found.values()))
            own = frozenset(article for article, count in found.items() if count >= least)
            self._own_articles = {k: v for k, v in self._own_articles.items() if k[1] == key[1]}
            self._own_articles[key] = own
        return own

    # ---- the turn -------------------------------------------------------------------------
    async def handle(self, session: AsyncSession, conversation: Conversation, message: Message) -> TurnOutcome:
        timings: dict[str, float] = {}
        started = time.perf_counter()
        state: dict[str, Any] = dict(conversation.state or {})
        written = _utc(message.created_at)
        new_session = self._expired(state, written)
        if new_session:
            state = _new_session(state)
        state["last_turn_at"] = written.isoformat()
        # The NLU works in a thread while this one reads what the database knows of the shopper.
        parsing = asyncio.ensure_future(self._parse(message.text, conversation.language, timings))
        try:
            customer = await self._customer_facts(session, conversation, state)
        finally:
            parse = await parsing
        # An order number or email with words around it is written in a language ("meine Bestellnummer ist
        # ND-100173"); an address is not ("Keizersgracht 123, 1015 CJ Amsterdam" in an English conversation).
        answering = _answers_question(state, parse) and not (
            state.get("awaiting") in AWAITED_ENTITIES and _written_in(parse, self.languages))
        language = self._language(parse, conversation, message, answering=answering)
        conversation.language = language
        if conversation.owner != "bot":
            decision = Decision("silent", parse.intent, parse.confidence, language=language, rule="human_owns_thread")
            if self.handoff is not None:
                await self.handoff.notify_agent(conversation, message, parse)
            replies: list[Rendered] = []
        else:
            decision, replies, state = await self._decide(session, conversation, message, parse, language,
                                                          state, customer, timings)
            if decision.kind in ANSWERS_MORE and "also_answered" not in decision.extra:
                decision, replies, state = await self._other_questions(session, conversation, message, parse,
                                                                       language, decision, replies, state, customer,
                                                                       timings)
            asked = segments.count_questions(message.text) if decision.kind in ("answer", "act") else 0
            if asked > MAX_EXTRA_ANSWERS + 1 and self.handoff is not None and MANY_QUESTIONS in self.responses:
                decision, replies, state = await self._many_questions(session, conversation, message, parse, language,
                                                                      decision, replies, state, customer, asked)
        conversation.state = state
        timings["engine_total"] = round((time.perf_counter() - started) * 1000, 2)
        trace = {
            "decision": decision.to_dict(),
            "language": language,
            "language_confidence": parse.language_confidence,
            **({"foreign_language": parse.foreign_language} if parse.foreign_language else {}),
            **({"mended": parse.corrected} if parse.corrected else {}),  # the message with its typing slips mended
            "intent_ranking": [{"name": r.name, "confidence": round(r.confidence, 4)} for r in parse.ranking[:5]],
            "entities": [{"entity": e.entity, "value": e.value, "text": e.text, "extractor": e.extractor,
                          **({"extra": e.extra} if e.extra else {})} for e in parse.entities],
            "sentiment": {"scores": parse.sentiment.scores, "labels": list(parse.sentiment.labels)},
            "slots": state.get("slots", {}),
            **({"new_session": True} if new_session else {}),
            "timings_ms": {**parse.timings_ms, **timings},
            **decision.extra.get("_trace", {}),
        }
        trace["decision"].pop("_trace", None)
        drafts = [ReplyDraft(text=r.text, quick_replies=r.quick_replies, language=language) for r in replies]
        return TurnOutcome(replies=drafts, trace=trace)

    async def _parse(self, text: str, previous: str | None, timings: dict[str, float]) -> ParseResult:
        t = time.perf_counter()
        if self.nlu is None:
            result = ParseResult(text=text, language=previous or self.fallback_language, language_confidence=0.0,
                                 intent=None, confidence=0.0, ranking=[], entities=[],
                                 sentiment=Sentiment(scores={}, labels=()))
        else:
            await self._spare_kb_words()
            # CPU-bound: off the event loop so the API stays responsive.
            result = await asyncio.to_thread(self.nlu.parse, text, previous)
            # Read again when the classifier rejects the message as a whole or reads it below the threshold: an
            # indirect question by the question it wraps ("Je me demande si vous livrez au Japon", shipping_estimate
            # 0.87 but out of scope, as "vous livrez au Japon ?"), and a letter by what it asks without its salutation
            # and closing ("Gentili signori, vorrei sapere dove si trova il mio ordine … Cordiali saluti, Sofia
            # Russo": order_status 0.44 whole, 0.97 without them). Entities, sentiment and language stay the whole's.
            # Last, what it says without asking how to go about it at its end ("Compré unas cortinas y quiero
            # devolverlas, ¿cómo lo hago?": return_request 0.45 whole, 0.97 without "¿cómo lo hago?").
            if result.intent is None or result.confidence < self.intent_threshold:
                body = segments.core(text)
                tried = {text}
                for reading in (segments.direct(text), body,
                                segments.direct(segments.without_help(body, how=True))):
                    if reading in tried:
                        continue
                    tried.add(reading)
                    wrapped = await asyncio.to_thread(self.nlu.parse, reading, previous)
                    if wrapped.intent is not None and wrapped.confidence >= self.intent_threshold:
                        result = replace(result, intent=wrapped.intent, confidence=wrapped.confidence,
                                         ranking=wrapped.ranking)
                        break
        timings["nlu"] = round((time.perf_counter() - t) * 1000, 2)
        return result

    def _language(self, parse: ParseResult, conversation: Conversation, message: Message, answering: bool) -> str:
        # The answer to the bot's question (an address, an email, "ja") is in no language of its own: a Dutch
        # street name in an English conversation must not switch the replies to Dutch.
        if answering and conversation.language in self.languages:
            return conversation.language  # type: ignore[return-value]
        # A message in a language the shop does not speak: `parse.language` is only the closest configured one
        # (Polish reads as Dutch), so answer in the conversation's language, the browser's, or the fallback.
        foreign = parse.foreign_language is not None
        if not foreign and parse.language in self.languages and parse.language_confidence >= 0.5:
            return parse.language
        if conversation.language in self.languages:
            return conversation.language  # type: ignore[return-value]
        hint = str((message.payload or {}).get("locale_hint") or "").split("-")[0].lower()
        if hint in self.languages:
            return hint
        return parse.language if parse.language in self.languages and not foreign else self.fallback_language

    async def _customer_facts(self, session: AsyncSession, conversation: Conversation,
                              state: dict[str, Any]) -> CustomerFacts:
        """Contacts this shopper has proven: channel addresses that prove themselves (an email sender, a
        WhatsApp number) on any of the customer's merged profiles, and the contacts of orders proven in
        this conversation. An address the shopper merely typed is not among them."""
        customer = await _live_customer(session, conversation.customer_id)
        customer_id = customer.id if customer is not None else conversation.customer_id
        identities = (await session.execute(_MERGED_IDENTITIES, {"customer_id": customer_id})).scalars().all()
        emails = [i.address.lower() for i in identities if i.channel in SELF_PROVING_EMAIL and "@" in i.address]
        phones = [i.address if i.address.startswith("+") else f"+{i.address}"
                  for i in identities if i.channel in SELF_PROVING_PHONE]
        for contact in state.get("proven_contacts", []):
            (emails if "@" in contact else phones).append(contact)
        return CustomerFacts(customer_id, emails, phones, customer.display_name if customer else None)

    async def _repeat_contacts(self, session: AsyncSession, conversation: Conversation, parse: ParseResult,
                               slots: dict[str, Any], customer: CustomerFacts) -> int:
        """Earlier conversations of this customer (any channel) in the last days about the same order that
        the bot did not settle: a ticket was opened, or turns were not understood."""
        entity = parse.entity("order_number")
        order = str(entity.value) if entity is not None else slots.get("order_number")
        if not order:
            return 0
        days = self.handoff.repeat_contact_days if self.handoff is not None else REPEAT_CONTACT_DAYS
        since = datetime.now(UTC) - timedelta(days=days)
        # customer: this turn's facts, looked up before anything in the turn could link or merge profiles.
        earlier = (await session.execute(_EARLIER_STATES, {"customer_id": customer.customer_id,
                                                           "conversation_id": conversation.id, "since": since})
                   ).scalars().all()
        count = 0
        for other in earlier:
            other_slots = (other or {}).get("slots", {})
            same = order in (other_slots.get("order_number"), other_slots.get("verified_order"))
            unsettled = bool((other or {}).get("ticket_id")) or (other or {}).get("failed_turns", 0) > 0
            count += int(same and unsettled)
        return count

    def _say(self, name: str, language: str, **variables: Any) -> Rendered:
        return self.responses.render(name, language, **variables)

    async def _decide(self, session: AsyncSession, conversation: Conversation, message: Message, parse: ParseResult,
                      language: str, state: dict[str, Any], customer: CustomerFacts,
                      timings: dict[str, float]) -> tuple[Decision, list[Rendered], dict[str, Any]]:
        slots: dict[str, Any] = dict(state.get("slots", {}))
        state["slots"] = slots
        button = str((message.payload or {}).get("payload") or "")
        offered_more = bool(state.pop("offered_more", False))  # the bot's last reply asked "anything else?"
        if not state.get("awaiting"):
            state.pop("queued_action", None)  # queued behind a question the conversation has left
        just_acted = state.pop("just_acted", None)  # the action the bot's last turn ran to the end, if any
        answered_text = state.pop("answered_text", None)  # what the bot's last turn answered from the KB, if it did
        acted_text = state.pop("acted_text", None)  # what the bot's last turn looked up with an action (an estimate)
        # The order action the bot's last turn answered a general question about ("can I get an invoice?").
        answered_about = state.pop("answered_about", None)
        # The bot's last turn said the carrier delivered this order: {"order": ..., "carrier": ...}.
        told_delivered = state.pop("told_delivered", None)
        if state.get("pending_action") != ORDER_ACTIONS["order_status"]:
            state.pop("said_not_received", None)  # said while asked for an order status the shopper left since
        intent = parse.intent if parse.intent and parse.confidence >= self.intent_threshold else None
        confirming = intent in ("affirm", "deny") and state.get("awaiting") == "confirm"
        if intent == INFORM or (intent in CONTENTLESS and parse.entity("order_number") is not None and not confirming):
            # Rasa's usual name for a message that only supplies details ("it's ND-100134", "my email is ..."):
            # no new wish, so the details continue what the conversation was doing (slots, corrections).
            # "no, it's ND-100105" is such a correction too, whatever the "no" makes the classifier say, and a
            # message with an order number is no greeting or goodbye ("status of ND-100123 please, <email>"
            # read as goodbye at 0.92 once its order number and email were masked).
            intent = None
        tracking = parse.entity("tracking_number")
        if (intent is None and tracking is not None and tracking.extra.get("carrier") and not state.get("awaiting")
                and parse.entity("order_number") is None and _little_else(message.text, tracking.start, tracking.end)
                and (not re.search(r"\w", message.text[:tracking.start] + message.text[tracking.end:])
                     or (parse.ranking and parse.ranking[0].name == "order_status"))):
            # "where is LP00827162066818" (order_status 0.36 once the number is masked: "where is"), or the number
            # alone: the parcel's whereabouts, which its carrier's page tells (the order status's tracking link).
            intent = "order_status"
        if (intent in (None, "order_status") and not state.get("awaiting") and "return_request" in ORDER_ACTIONS
                and segments.says_arrived_damaged(message.text) and not segments.says_not_received(message.text)):
            # "Olá, a minha encomenda ND-100337 chegou danificada." (order_status 0.50) and "Bonjour, ma commande
            # ND-100337 est arrivée abîmée" (0.53) were told the delivery date: what came damaged is returned.
            intent = "return_request"
        # A message of several parts that reads doubtfully as a whole: the part that names the order says what the
        # shopper wants of it ("I ordered a lamp (order ND-100104) and it still hasn't arrived. ... Also, if it
        # arrives damaged, how do I return it?": order_status 0.49, return_request 0.47), or without an order number
        # a part that surely asks for an order action ("Where is my order? I also want to change my email.":
        # change_items 0.45 as a whole).
        # The ranking's top counts too when the classifier calls the whole message out of scope ("Hi, where is my
        # order? Emma Davis, 77 5th Avenue, Austin TX 73301": the name and address drown the question).
        doubtful = intent is None and not state.get("awaiting") and (
            parse.intent in ORDER_ACTIONS or parse.entity("order_number") is not None
            or (parse.intent is None and bool(parse.ranking) and parse.ranking[0].name in ORDER_ACTIONS))
        if (intent in ORDER_ACTIONS or intent in OTHER_ACTIONS or doubtful) and not button:
            parse, intent = await self._order_part(message, parse, intent)
        if button.startswith("/intent:"):
            intent = button.removeprefix("/intent:")
        elif intent == "return_request":
            # Why the items come back, in the shopper's words ("the vase arrived broken"): the return records it
            # for the agent and the warehouse.
            slots["return_reason"] = message.text.strip()[:RETURN_REASON_CHARS]
        if (just_acted == RETURN_REQUEST and slots.get("return_id") and not button and not state.get("awaiting")
                and slots.get("return_order") == slots.get("verified_order") and _tells_reason(message.text, parse,
                                                                                                 intent)):
            # "it's too small" right after the return was opened: why the items come back, added to that return;
            # it used to get the fallback (read as "no") or, read as a return request, the whole return again.
            slots["return_note"] = message.text.strip()[:RETURN_REASON_CHARS]
            return await self._run_action(RETURN_REQUEST, parse, language, state, customer, conversation, session,
                                          message)
        if intent in OTHER_ACTIONS and just_acted != OTHER_ACTIONS[intent] and _destination_alone(message.text, parse):
            # "and to Norway?" follows up on what the bot said last: right after the returns article it is no
            # request for a delivery estimate, however sure the classifier is (0.98).
            intent = None

        # A rating for the satisfaction question.
        if state.get("csat_pending"):
            rating = _rating(button or message.text)
            if rating is not None:
                state["csat_pending"] = False
                state["csat"] = rating
                extra: dict[str, Any] = {"csat": rating}
                if not button and not re.fullmatch(r"\s*[1-5]\s*", message.text):
                    state["csat_comment"] = extra["csat_comment"] = message.text.strip()  # "5 stars, great service"
                conversation.status = "closed"
                return (Decision("smalltalk", "csat", 1.0, language=language, rule="csat_answer", extra=extra),
                        [self._say("utter_csat_thanks", language)], state)

        # Escalation triggers come before anything else the bot might say.
        if self.handoff is not None:
            state["recent_similar_contacts"] = await self._repeat_contacts(session, conversation, parse, slots,
                                                                           customer)
            fired = self.handoff.triggers(parse, state, message)
            if fired:
                upset = SORRY_HANDOFF in self.responses and any(t["name"] in UPSET_TRIGGERS for t in fired)
                return await self._escalate(session, conversation, message, parse, language, state, customer, fired,
                                            [self._say(SORRY_HANDOFF, language)] if upset else [])

        # Buttons from a clarifying question or a confirmation.
        if button.startswith("/kb:") and self.knowledge is not None:
            return self._answer_article(button[4:], message.text, language, state, parse)
        if state.get("awaiting") == "confirm" and state.get("pending_action"):
            yes = button == "/affirm" or intent == "affirm"
            no = button == "/deny" or intent == "deny"
            if yes or no:
                slots["confirmed"] = yes
                return await self._run_action(state["pending_action"], parse, language, state, customer, conversation,
                                                session, message)
            if (self.knowledge is not None and _is_question(message.text) and not parse.entity("order_number")
                    and (intent is None or intent in POLICY_LOOKALIKES)):
                # "how long do refunds take?" before saying yes to a cancellation: a policy question, answered
                # from the KB (not the refund status of this order); then the bot asks for the yes or no again,
                # so the next "yes" plainly answers that question.
                answer = self._kb_answer(_asked(message, parse), language, parse, state, timings, "kb_while_confirming")
                if answer is not None:
                    slots["confirmed"] = None
                    _, confirm, state = await self._run_action(state["pending_action"], parse, language, state,
                                                               customer, conversation, session, message)
                    return answer[0], answer[1] + confirm, state
        switching = intent in ORDER_ACTIONS and intent != "change_address" and parse.confidence >= SWITCH_CONFIDENCE
        if state.get("awaiting") == "new_address" and state.get("pending_action") and not switching:
            numberless = not any(ch.isdigit() for ch in message.text)  # an address has a house number or postcode
            if intent == "deny" and numberless and "utter_address_kept" in self.responses:
                # "no, never mind, keep it": the change is off.
                state["awaiting"] = None
                state.pop("pending_action", None)
                slots.pop("new_address", None)
                return self._smalltalk(intent, "utter_address_kept", parse, language, state, "address_kept",
                                       order_number=slots.get("verified_order") or slots.get("order_number") or "")
            leaving = numberless and parse.confidence >= SWITCH_CONFIDENCE and (
                intent in OTHER_ACTIONS or intent == "human_handoff")
            if leaving:
                # "wait, how long does delivery to Singapore take?": another wish, not the address.
                state["awaiting"] = None
                state.pop("pending_action", None)
            else:
                asked = intent is None and numberless and _is_question(message.text) and self.knowledge is not None
                answer = self._kb_answer(_asked(message, parse), language, parse, state, timings, "kb_while_waiting") \
                    if asked else None
                if answer is not None:
                    return self._asking_again(answer, state, language)  # a question of its own, then the address
                slots["new_address"] = message.text
                return await self._run_action(state["pending_action"], parse, language, state, customer,
                                              conversation, session, message)

        # "I don't have it" to the question for the order number or the email on the order.
        lacking = MISSING_ANSWER.get(state.get("awaiting") or "")
        if parse.intent == "deny" and lacking and lacking in self.responses and not any(
                parse.entity(name) for name in AWAITED_ENTITIES[state["awaiting"]]):
            return await self._cannot_answer(session, conversation, message, parse, language, state, customer, lacking)

        # Slot filling: the bot asked for an order number or an email; corrections overwrite.
        self._fill_slots(parse, slots, state)
        if state.get("awaiting") == "contact" and not (parse.entity("email") or parse.entity("phone")):
            phone = _phone_like(message.text)
            if phone:  # the bot asked for a phone number: digits here are one, whatever they look like
                slots["phone"] = phone
        bare_number = None
        if state.get("awaiting") == "order_number" and not parse.entity("order_number"):
            # The bot asked for the order number: "100105" or "#100105" without the shop's prefix is one (the
            # store connector completes it); it was asked for again and again.
            bare_number = _order_number_like(message.text)
            if bare_number:
                slots["order_number"] = bare_number
                slots.pop("verified_order", None)
        retried = None
        if slots.get("order_number"):
            state.pop("unproven_order", None)
        elif (state.get("awaiting") == "order_number" and state.get("unproven_order")
              and (parse.entity("email") or parse.entity("phone"))):
            # "Please check the order number and the email": the email alone, corrected, is for the number given
            # before (the bot asked for the order number again, which the shopper had already given).
            retried = slots["order_number"] = state.pop("unproven_order")
        answered = any(parse.entity(name) for name in AWAITED_ENTITIES.get(state.get("awaiting") or "", ())) or (
            state.get("awaiting") == "contact" and bool(slots.get("phone") or slots.get("email"))) or bool(
            bare_number or retried)
        # A question of its own while the bot waits ("what's your return policy?" when asked for the order
        # number): a confident KB answer answers it, and the bot asks again for what it is still waiting for. So is
        # a question that reads as an action policy questions read as ("how long do refunds usually take?" when
        # asked for the email: refund_status at 0.99 ran the refund lookup), as it is when the bot waits for nothing.
        policy_question = intent in POLICY_LOOKALIKES and _is_question(message.text)
        if (state.get("awaiting") in AWAITED_ENTITIES and not answered and (intent is None or policy_question)
                and self.knowledge is not None):
            answer = self._kb_answer(_asked(message, parse), language, parse, state, timings, "kb_while_waiting")
            if answer is not None:
                return self._asking_again(answer, state, language)
        if (not state.get("awaiting") and ASK_QUESTION in self.responses and intent != "greet"
                and segments.announces_question(message.text)
                and not any(parse.entity(name) for name in ("order_number", "email", "phone"))):
            # "hello, I have a question about my order" says the question is coming: "tell me more" (it fell
            # back, and a second fallback went to a person; "Ich habe eine Frage zu meiner Bestellung" was asked for
            # an order number to look up its status). One read as a greeting gets the greeting, which says what
            # the bot can do ("Bonjour, j'ai besoin d'aide").
            return self._smalltalk(str(parse.intent or "greet"), ASK_QUESTION, parse, language, state,
                                   "question_announced")
        if (segments.says_charged_twice(message.text) and self.handoff is not None
                and CHARGED_TWICE in self.responses and not state.get("charged_twice")):
            # "I paid twice for order ND-100207, can you refund one?" read as refund_status (1.0) and, once the order
            # was proven, was told the order has no refund: only a person can check the payments.
            return await self._charged_twice(session, conversation, message, parse, language, state, customer)
        # The awaited answer wins over whatever the classifier makes of a bare email or number.
        if state.get("awaiting") in AWAITED_ENTITIES and (
            answered or (intent not in SMALLTALK and (intent is None or intent in ORDER_ACTIONS))
        ):
            action = state.get("pending_action")
            if intent in ORDER_ACTIONS and not answered and parse.confidence >= SWITCH_CONFIDENCE:
                action = ORDER_ACTIONS[intent]
            if action:
                return await self._run_action(action, parse, language, state, customer, conversation,
                                                session, message)

        order_entity = parse.entity("order_number")
        if (told_delivered and told_delivered.get("order") == slots.get("verified_order") and not state.get("awaiting")
                and intent in ("order_status", "deny") and self.handoff is not None
                and (order_entity is None or str(order_entity.value) == told_delivered["order"])
                and NOT_RECEIVED in self.responses):
            # "I haven't received it" after "delivered ... if you haven't received it, tell me": a person checks with
            # the carrier, as that reply promised (before, the bot gave the same status again).
            return await self._not_received(session, conversation, message, parse, language, state, customer,
                                            told_delivered)
        if (intent == "refund_status" and slots.get("verified_order") and not state.get("awaiting")
                and order_entity is None and slots.get("order_number") == slots["verified_order"]):
            # "When will I get my refund?" once an order is proven: that order's refund. When it has none, the
            # question is about refunds in general ("how long do refunds take?"): answered as if no order were known.
            before = copy.deepcopy(state)
            decided = await self._run_action(ORDER_ACTIONS[intent], parse, language, state, customer, conversation,
                                             session, message)
            responses = decided[0].extra.get("_trace", {}).get("action", {}).get("responses", [])
            if responses != [NO_REFUND] or self.knowledge is None:
                decided[0].rule = "refund_of_proven_order"
                return decided
            state.clear()
            state.update(before)
            slots = state["slots"]
        kb_first: KBAnswer | None = None
        practice = False  # a question about what the shop does in general (see below)
        about_proven_order = bool(slots.get("verified_order")) and intent in FOR_PROVEN_ORDER
        doubtful_lookup = intent == "order_status" and parse.confidence < DOUBTFUL_ORDER_STATUS
        # "Bestellung 100149 stornieren bitte" names its order without the shop's prefix: a request about that order,
        # not a question for the cancellation article.
        if self.knowledge is not None and order_entity is None and not state.get("awaiting") and (
            intent in POLICY_LOOKALIKES or intent in OTHER_ACTIONS or intent == "order_status"
        ) and not about_proven_order and _order_number_named(message.text, parse) is None:
            t = time.perf_counter()
            kb_first = self.knowledge.search(_asked(message, parse), language)
            timings["kb"] = round((time.perf_counter() - t) * 1000, 2)
            top = kb_first.hits[0] if kb_first.hits else None
            # "I want to cancel my order" is a request (near-certain intent); "how does cancelling work?" is not.
            # "How long to Germany?" is a request for that destination's estimate when the intent is near-certain,
            # however well the general shipping article also matches.
            # Right after an estimate, "how long does it take?" asks about the same country again.
            follow_up = intent in OTHER_ACTIONS and just_acted == OTHER_ACTIONS[intent] and bool(slots.get("country"))
            named = (intent in OTHER_ACTIONS and parse.entity("country") is not None and (
                parse.confidence >= CERTAIN_INTENT
                # "Bonjour, combien coûte la livraison en France ? Et est-ce que je dois payer des frais de douane ?"
                # (0.94 as a whole, 0.997 for its first part): the part that names the country asks for the estimate.
                or await self._part_sure(message, parse, intent)
                # "do you ship to hong kong?" (0.61) got the general shipping table, which does not name Hong Kong:
                # where the KB's answer is one of the estimate's own articles, the estimate for the named country
                # says more (whether the shop ships there, how long, what it costs).
                or (top is not None and top.article_id in self._articles_of(intent)))) or follow_up
            # Right after an estimate, a question of a few words whose article is one of the estimate's own asks about
            # the same destination: "¿Hacen envíos a México?" - "¿cuánto tarda?" (order_status 0.73, no pronoun to
            # point back with) got the general shipping-times table instead of Mexico's times.
            if (not follow_up and intent not in OTHER_ACTIONS and top is not None and kb_first.confident
                    and just_acted in OTHER_ACTIONS.values() and slots.get("country")
                    and len(words(message.text)) <= segments.ELLIPSIS_MAX_WORDS and top.article_id in self._articles_of(
                        ACTION_INTENTS[str(just_acted)])):
                decided = await self._run_action(str(just_acted), parse, language, state, customer, conversation,
                                                 session, message)
                decided[0].rule = "action_follow_up"
                return decided
            # A sure order-status reading is looked up only for kb_not_the_action below.
            sure_status = intent == "order_status" and not doubtful_lookup
            # A policy question wins over the request it looks like; a wish that only asks how to go about it ("Vorrei
            # restituire il tappeto, come faccio?") is the request unless the article is one of the request's own (it
            # got the rug-care article at 0.59).
            wish = segments.without_help(message.text, how=True)
            how_only = wish != segments.without_help(message.text) and not _is_question(wish)
            policy_like = intent in POLICY_LOOKALIKES and top is not None and not (
                how_only and top.article_id not in self._articles_of(intent))
            wins = top is not None and not named and not sure_status and (top.confidence >= parse.confidence or (
                policy_like and (parse.confidence < CERTAIN_INTENT or _is_question(message.text))))
            if kb_first.confident and top is not None and wins:
                policy = self._answer(top, kb_first, parse, language, state, rule="kb_before_action")
                if (intent in POLICY_LOOKALIKES and parse.confidence >= CERTAIN_INTENT
                        and f"utter_choice_{intent}" in self.responses and conversation.channel not in MAIL_CHANNELS):
                    # "how do I cancel my order?" is answered with the policy, and a button does it for their order
                    # ("Cancel it"), which asks for the order number as the request would have. (Mail shows buttons
                    # as a bare list of their titles, which under an article says nothing.)
                    policy[1][-1].quick_replies.extend(self._action_choices([intent], language))
                return policy
            if (kb_first.confident and top is not None and intent == "order_status"
                    and top.article_id not in self._articles_of(intent)):
                return self._answer(top, kb_first, parse, language, state, rule="kb_not_the_action")
        if (about_proven_order and self.knowledge is not None and order_entity is None and not button
                and not state.get("awaiting")):
            # Right after the invoice, "can you put my company name on it? ACME GmbH, VAT DE123456789" read as
            # change_address (0.94) and was told the delivered order's address can't change: a sure KB answer from
            # an article that is not the action's own (the invoices article's corrections) says what it is about.
            own = self._articles_of(str(intent))
            answer = self._kb_answer(_asked(message, parse), language, parse, state, timings, "kb_not_the_action",
                                     above=SURE_OVER_ORDER, besides=own) if own else None
            if answer is not None:
                return answer
        if (intent in ORDER_ACTIONS and intent != "order_status" and self.knowledge is not None and order_entity is None
                and not button and not state.get("awaiting") and parse.confidence < CERTAIN_INTENT
                and segments.is_question(message.text) and not about_proven_order):
            # "is the rug made by hand or by machine" (return_request 0.95), "is the oak dining table back in stock"
            # (0.92): a question about a product or the shop, which the KB's classifier places among the packaged
            # off-topic questions, asks for no order action; asking for an order number answered nothing.
            found = kb_first if kb_first is not None else self.knowledge.search(_asked(message, parse), language)
            if not found.confident and (found.trace.get("off_topic") or 0.0) >= OFF_TOPIC_QUESTION:
                intent = None
                practice = True
        if (intent in ORDER_ACTIONS and self.knowledge is not None and order_entity is None and not button
                and not state.get("awaiting") and segments.asks_practice(message.text)):
            # "Do you deliver on Saturdays?" (order_status 0.84) asks what the shop does, about no order of the
            # shopper's: asking for an order number does not answer it. With no article that answers it, it is a
            # question the KB could not answer, said so, and kept for the content owners' review like any other.
            intent = None
            practice = True
        # "I no longer want the vase": cancel_order 0.40, return_request 0.38, under the intent threshold each but
        # together surely an order action; which one, the shopper says (it fell back before). Together means all
        # the order actions of the ranking: 0.43 and 0.26, with 0.09 for missing items and 0.03 for the status.
        torn = (intent is None and not practice and parse.intent in ORDER_ACTIONS and parse.intent != "order_status"
                and not button and not state.get("awaiting") and len(parse.ranking) > 1
                and parse.ranking[1].name in ORDER_ACTIONS
                and sum(r.confidence for r in parse.ranking if r.name in ORDER_ACTIONS) >= TORN_ACTIONS)
        doubted = parse.intent if torn else intent
        # A doubtful reading of an order action that might be a status question asks first even when the order is
        # named: a return opens at once ("Bonjour, quand vais-je recevoir mon miroir ? Commande ND-100157" read as
        # return_request 0.52), and "my order ND-100149 arrived, can I pay with klarna next time?" (change_items
        # 0.61, order_status 0.34) asked for the proof of an order change.
        maybe_status = doubted in ORDER_ACTIONS and len(parse.ranking) > 1 and (
            parse.ranking[1].name == "order_status")
        if (doubted in ORDER_ACTIONS and doubted != "order_status" and parse.confidence < DOUBTFUL_ACTION
                and (order_entity is None or maybe_status or torn) and not button
                and not state.get("awaiting") and not about_proven_order and "utter_clarify" in self.responses):
            if kb_first is None and self.knowledge is not None:
                # "hi, quick question, is there a discount code for first orders?" read as change_items at 0.53 and
                # offered "Change items in the order" and "My refund": a reading this doubtful, of an intent the KB
                # was not asked about above, loses to a confident KB answer, one surer than the reading itself: "Me
                # llegó el paquete pero falta una taza" (missing_items 0.70, return_request 0.28) is no question for
                # the tracking article (0.59), and is offered the two actions. Surer than the two actions it would
                # be offered together: at 0.58 and 0.39 the same message is an order action, not the article's (0.58).
                # With the order named, only a sure answer: "I see a pending charge on my card for order ND-100207"
                # (request_invoice 0.70) is the payment article's (0.99), not a choice of invoice or status.
                # A question about a policy needs no more than a confident answer, as when read surely (above):
                # "whats the return address" (return_request 0.50, change_address 0.36; the returns article 0.71).
                mass = sum(r.confidence for r in parse.ranking[:2] if r.name in ORDER_ACTIONS)
                above = mass if order_entity is None else max(mass, SURE_OVER_ORDER)
                if order_entity is None and doubted in POLICY_LOOKALIKES and _is_question(message.text):
                    above = 0.0
                answer = self._kb_answer(_asked(message, parse), language, parse, state, timings, "kb_over_doubtful",
                                         above=above)
                if answer is not None:
                    return answer
            names = [r.name for r in parse.ranking if r.name in ORDER_ACTIONS and f"utter_choice_{r.name}" in self.responses]
            if doubted in names[:2]:
                clarify = self._say("utter_clarify", language)
                buttons = self._action_choices(names[:2], language)
                return (Decision("clarify", doubted, parse.confidence, language=language, rule="doubtful_action",
                                 extra={"candidates": names[:2]}),
                        [Rendered(clarify.text, buttons + list(clarify.quick_replies))], state)
        if intent in ORDER_ACTIONS:
            if (self.knowledge is not None and order_entity is None and not button and not state.get("awaiting")
                    and not about_proven_order):
                # "Is shipping free? And is it tracked?" reads as order_status as a whole, but no part of it asks
                # for an order's status: the parts' answers are the turn, and no order number is asked for.
                parts = await self._read_parts(message, parse, language, None, set(), timings)
                # A part that reads as the action only doubtfully ("Est-ce que la livraison est gratuite ?", 0.51)
                # does not ask for it, as a whole message that doubtful is looked up in the KB first.
                wanted = parts.requests or any(
                    entry.get("intent") == intent and entry.get("intent_confidence", 0.0) >= SWITCH_CONFIDENCE
                    for entry in parts.trace)
                if parts.answered and not wanted:
                    return await self._answer_parts(parts, parse, language, state, customer, conversation,
                                                    rule="kb_parts_over_action")
            return await self._run_action(ORDER_ACTIONS[intent], parse, language, state, customer, conversation,
                                                session, message)
        if intent in OTHER_ACTIONS and (parse.entity("country") or slots.get("country")):
            return await self._run_action(OTHER_ACTIONS[intent], parse, language, state, customer, conversation,
                                                session, message)
        if intent is None and just_acted == CHANGE_ADDRESS and _address_after_change(parse):
            # An address sent after the bot changed or refused to change the order's address: a correction of
            # the new address, or the same wish again; the action applies it or says again why it cannot.
            slots["new_address"] = message.text
            return await self._run_action(CHANGE_ADDRESS, parse, language, state, customer, conversation, session,
                                          message)
        if intent is None and just_acted in FOLLOW_UPS and any(parse.entity(name) for name in FOLLOW_UPS[just_acted]):
            return await self._run_action(just_acted, parse, language, state, customer, conversation, session,
                                          message)
        if (intent == "human_handoff" and not parse.sentiment.asks_human and segments.is_question(message.text)
                and self.knowledge is not None and not state.get("awaiting")):
            # "How can I contact you?" (human_handoff 0.66) asks for the shop's contact channels, without the wish for
            # a person that "Can I speak to an agent?" carries (the sentiment's `human` label, 0.10 against 0.98):
            # a confident KB answer answers it, where it used to open a ticket.
            answer = self._kb_answer(_asked(message, parse), language, parse, state, timings, "kb_contact_question")
            if answer is not None:
                return answer
        if intent == "human_handoff" and self.handoff is not None and self.handoff.escalates_human_requests:
            fired = [{"name": "human_request", "reason": "the shopper asked for a person", "priority_hint": "P3"}]
            return await self._escalate(session, conversation, message, parse, language, state, customer, fired)
        if intent is not None and "/" in intent and f"utter_{intent}" in self.responses:
            # A Rasa retrieval intent (`faq/ask_returns`) is answered with its response (`utter_faq/ask_returns`),
            # as Rasa's ResponseSelector would: an existing Rasa project's FAQ keeps working.
            state["failed_turns"] = 0
            state["turns_answered"] = state.get("turns_answered", 0) + 1
            return (Decision("answer", intent, parse.confidence, language=language, rule="retrieval_intent",
                             extra={"response": f"utter_{intent}"}),
                    [self._say(f"utter_{intent}", language)], state)
        if (intent in CONTENTLESS and self.knowledge is not None and not state.get("awaiting")
                and len(words(message.text)) >= CONTENT_MIN_WORDS):
            # "my discount code doesn't work" reads as "no" at 0.98; a confident KB answer says what it is about.
            answer = self._kb_answer(_asked(message, parse), language, parse, state, timings, "kb_over_smalltalk")
            if answer is not None:
                return answer
        if intent in SMALLTALK:
            return self._smalltalk(intent, SMALLTALK[intent], parse, language, state, "smalltalk")
        # "ok", "great", "no" with no question of the bot's open: an acknowledgement, not a failed turn.
        bare = not state.get("awaiting") and order_entity is None
        if intent == "affirm" and bare and "utter_ack" in self.responses:
            reply = "utter_ask_what_else" if offered_more and "utter_ask_what_else" in self.responses else "utter_ack"
            return self._smalltalk(intent, reply, parse, language, state, "acknowledged")
        if intent == "deny" and bare:
            if offered_more:  # "anything else?" - "no": the conversation is done
                return self._smalltalk(intent, "utter_goodbye", parse, language, state, "nothing_else", closes=True)
            # "no thanks" after an action that did what was asked ("I've added that to your return") is no
            # complaint about an answer; only right after a KB answer does a bare "no" say it missed.
            if (not state.get("turns_answered") or (just_acted and not answered_text)) and (
                    "utter_ack_no" in self.responses):
                return self._smalltalk(intent, "utter_ack_no", parse, language, state, "acknowledged")
            # "no" after an answer: that answer missed; the fallback below says so and asks again (a failed turn).

        # An order number (and a way to prove it) but no clear wish: ask which order action is meant.
        if order_entity is not None and intent is None and answered_about in ORDER_ACTIONS:
            # The invoice article says "tell us your order number": the number that follows is for an invoice.
            return await self._run_action(ORDER_ACTIONS[answered_about], parse, language, state, customer, conversation,
                                          session, message)
        if order_entity is not None and intent is None and state.get("last_action") in ORDER_ACTIONS.values():
            # "I meant order ND-100105": a correction of the order the last action was about.
            return await self._run_action(state["last_action"], parse, language, state, customer, conversation,
                                          session, message)
        if order_entity is not None and intent is None:
            told = f"{message.text[:order_entity.start]} {message.text[order_entity.end:]}"
            if self.knowledge is not None and not state.get("awaiting") and len(re.findall(r"\w+", told)) >= 3:
                # "I was charged twice for my order ND-100207" asks no order action (refund_status 0.44): the article
                # on double charges answers it (0.99), when the KB is sure.
                answer = self._kb_answer(_asked(message, parse), language, parse, state, timings, "kb_over_order_choice",
                                         above=SURE_OVER_ORDER)
                if answer is not None:
                    return answer
            return self._which_order_action(str(order_entity.value), parse, language, state)
        contact = parse.entity("email") or parse.entity("phone")
        if (contact is not None and order_entity is None and intent in (None, "inform") and slots.get("order_number")
                and not state.get("awaiting") and not state.get("pending_action")
                and _little_else(message.text, contact.start, contact.end)):
            # The email alone after "What would you like to know about order ND-100171?" proves the order for what
            # comes next; the question stands (it fell back: "Sorry, I didn't understand that").
            return self._which_order_action(str(slots["order_number"]), parse, language, state)

        # Knowledge questions.
        upset = (intent is None and not _is_question(message.text) and SORRY in self.responses
                 and parse.sentiment.scores.get("angry", 0.0) >= DISSATISFIED)
        if self.knowledge is not None:
            # (A joiner alone goes on only from an estimate: "and to Norway?" after the returns article is no
            # question about returns.)
            before = answered_text or acted_text
            if before and intent not in ("affirm", "deny") and (segments.points_back(message.text) or (
                    acted_text and segments.elliptical(message.text))):
                # "how much would that cost me?" right after the returns article asks about returns (alone, it matched
                # the shipping-cost article): looked up with the question that article answered. So are "and
                # express?" and "how much is it?" after a shipping estimate (they fell back).
                estimate_again = bool(acted_text and just_acted in OTHER_ACTIONS.values() and slots.get("country"))
                # The articles that the estimate's own intent finds (shipping times, shipping fees): a follow-up that
                # finds only them learns nothing the estimate does not say for the shopper's country ("how long does
                # shipping to Austria take?" - "how much is it?" got the general shipping-times table, which names
                # no price).
                own = self._articles_of(ACTION_INTENTS[str(just_acted)]) if estimate_again else frozenset()
                t = time.perf_counter()
                if estimate_again and not segments.points_back(message.text):
                    # "and customs?" names a topic of its own: looked up with the estimate's question, it found the
                    # shipping times again. ("und was kostet das?" points back at the estimate: not alone.) The same
                    # search as kb_first, when the intent made the engine ask the KB first.
                    alone = kb_first if kb_first is not None else self.knowledge.search(_asked(message, parse), language)
                    if alone.confident and alone.hits and alone.hits[0].article_id not in own:
                        timings["kb_follow_up"] = round((time.perf_counter() - t) * 1000, 2)
                        return self._answer(alone.hits[0], alone, parse, language, state, rule="kb_follow_up")
                context = self.knowledge.search(f"{before} {_asked(message, parse)}", language)
                timings["kb_follow_up"] = round((time.perf_counter() - t) * 1000, 2)
                if context.confident and context.hits and context.hits[0].article_id not in own:
                    return self._answer(context.hits[0], context, parse, language, state, rule="kb_follow_up")
                if estimate_again:
                    # "Do you ship to Brazil?" - "how much is it?": the estimate says it (free), again.
                    decided = await self._run_action(str(just_acted), parse, language, state, customer, conversation,
                                                     session, message)
                    decided[0].rule = "action_follow_up"
                    return decided
            if kb_first is not None:
                found = kb_first
            else:
                t = time.perf_counter()
                found = self.knowledge.search(_asked(message, parse), language)
                timings["kb"] = round((time.perf_counter() - t) * 1000, 2)
            kb_trace = {"kb": found.trace}
            if found.confident and found.hits:
                return self._answer(found.hits[0], found, parse, language, state, rule="kb_confident")
            # Several questions in one message, none of which the whole matches well enough: each part may.
            parts = await self._read_parts(message, parse, language, None, set(), timings, requests=False)
            if parts.answered or (parts.lookups and not state.get("awaiting")):
                return await self._answer_parts(parts, parse, language, state, customer, conversation)
            if intent in OTHER_ACTIONS and parse.confidence >= SWITCH_CONFIDENCE and not state.get("awaiting"):
                # "do u ship to australa" (shipping_estimate 0.99) names no country the NLU knows, and no article
                # answers it: the action asks which country, where the fallback said it did not understand.
                return await self._run_action(OTHER_ACTIONS[intent], parse, language, state, customer, conversation,
                                              session, message)
            # The runner-up counts too: the ranking and the confidence may disagree on which of two is likelier.
            near = bool(found.hits) and max(h.confidence for h in found.hits[:2]) >= NEAR_CONFIDENT
            if (found.close_call and len(found.hits) >= 2) or near:
                await self.knowledge.record_unanswered(message.text, language, conversation.channel, conversation.id,
                                                       "clarify")
                shown = found.hits[:3] if found.close_call else found.hits[:2]
                buttons = [QuickReply(h.title, f"/kb:{h.article_id}") for h in shown]
                clarify = self._say("utter_clarify", language)
                return (Decision("clarify", parse.intent, found.hits[0].confidence, language=language,
                                 rule="kb_close_candidates" if found.close_call else "kb_near_threshold",
                                 extra={"_trace": kb_trace,
                                                                    "candidates": [h.article_id for h in found.hits[:3]]}),
                        [Rendered(clarify.text, buttons)], state)
            if intent not in ("affirm", "deny") and not upset:  # "no" is no question for the review list
                await self.knowledge.record_unanswered(message.text, language, conversation.channel,
                                                       conversation.id, "fallback")
        else:
            kb_trace = {}

        state["failed_turns"] = state.get("failed_turns", 0) + 1
        if self.handoff is not None and state["failed_turns"] >= self.handoff.failed_turns_limit:
            fired = [{"name": "failed_turns", "reason": f"{state['failed_turns']} turns in a row not understood",
                      "priority_hint": "P3"}]
            return await self._escalate(session, conversation, message, parse, language, state, customer, fired)
        missed = (intent == "deny" and bare and bool(state.get("turns_answered"))
                  and "utter_answer_missed" in self.responses)
        if upset:
            rule, said = "dissatisfied", self._say(SORRY, language)
        elif practice and UNANSWERED_PART in self.responses:
            rule, said = "practice_unanswered", self._say(UNANSWERED_PART, language, question=_quoted(message.text))
        elif missed:
            rule, said = "answer_missed", self._say("utter_answer_missed", language)
        elif (intent is None and self.knowledge is not None and _is_question(message.text)
              and NO_ANSWER in self.responses):
            # "Is the oak shelf solid wood?" was told "Sorry, I didn't understand that": it was understood as a
            # question, and the KB has no answer to it (it is kept for the content team's review).
            rule, said = "no_answer", self._say(NO_ANSWER, language)
        else:
            rule, said = "not_understood", self._say("utter_fallback", language)
        return (Decision("fallback", parse.intent, parse.confidence, language=language, rule=rule,
                         extra={"_trace": kb_trace}), [said], state)

    async def _order_part(self, message: Message, parse: ParseResult, intent: str | None
                          ) -> tuple[ParseResult, str | None]:
        """The order action a message of several parts asks for, by its parts. "Where is my order ND-100104? Also,
        how long do refunds take?" reads as refund_status as a whole (and "Where is my order ND-100104? ... And do
        you ship to Canada?" as a shipping estimate): the part that names the order says what the shopper wants of
        it (its status), and the other part is a question for the KB or a lookup (`_other_questions`). Without
        an order number, a part that asks for an order's status wins over an intent that policy questions read as
        ("Where is my parcel? And how long do refunds take?"), and so does one over a whole message too doubtful to
        have an intent (`intent` None) or read doubtfully as another order action ("Where is my order? I also want
        to change my email.": change_items 0.50). A part's action wins only when it is sure of it."""
        order = parse.entity("order_number")
        if order is None and intent is not None and intent not in POLICY_LOOKALIKES and (
                parse.confidence >= DOUBTFUL_ACTION or intent not in ORDER_ACTIONS):
            return parse, intent
        pieces = list(_placed(message.text, segments.questions(message.text)))
        if order is not None:
            held = next(((piece, at) for piece, at in pieces if 0 <= at <= order.start < at + len(piece.text)), None)
            if held is None:
                # The part naming the order is too short to be kept among the questions ("Commande ND-100157").
                held = next(((piece, at) for piece, at in _placed(message.text, segments.split(message.text))
                             if 0 <= at <= order.start < at + len(piece.text)), None)
                if held is None or not _bare_reference(held[0], order.start - held[1], order.end - held[1]):
                    return parse, intent
            piece, at = held
            if not _bare_reference(piece, order.start - at, order.end - at):
                if (not piece.question and not piece.wish and intent in ORDER_ACTIONS
                        and parse.confidence >= DOUBTFUL_ACTION and segments.tells_ordering(piece.text)):
                    # "I ordered the blackout curtains last week, order ND-100190. Can I still cancel?": the part
                    # naming the order tells what happened (order_status 0.995 alone); the message asks to cancel.
                    # ("Mi pedido ND-100143 no llega." is a status question of its own.)
                    return parse, intent
                read = await self._parse(piece.text, parse.language, {})
                sure = read.intent in ORDER_ACTIONS and read.intent != intent and read.confidence >= SWITCH_CONFIDENCE
                return (replace(parse, intent=read.intent, confidence=read.confidence), str(read.intent)) if sure else (
                    parse, intent)
            # "Bonjour, quand vais-je recevoir mon miroir ? Commande ND-100157" (return_request 0.52 as a whole): the
            # part naming the order only names it, so the question beside it says what the shopper wants of it.
            pieces = [(p, a) for p, a in pieces if p is not piece]
        asked = [piece for piece, _ in pieces if piece.question]
        for piece in asked:
            read = await self._parse(piece.text, parse.language, {})
            # A lone question beside a bare order reference is the message without its order number, so its reading
            # wins when it is surer than the whole's (0.80 order_status against 0.72 return_request above).
            alone = order is not None and len(asked) == 1 and read.confidence > max(parse.confidence, DOUBTFUL_ACTION)
            sure = read.intent in ORDER_ACTIONS and read.intent != intent and (
                read.confidence >= SWITCH_CONFIDENCE or alone)
            if sure and (order is not None or read.intent not in POLICY_LOOKALIKES):
                return replace(parse, intent=read.intent, confidence=read.confidence), str(read.intent)
        return parse, intent

    async def _part_sure(self, message: Message, parse: ParseResult, intent: str) -> bool:
        """Whether the part of a message of several parts that names the country reads surely as `intent`."""
        country = parse.entity("country")
        pieces = segments.questions(message.text)
        if country is None or len(pieces) < 2:
            return False
        for piece, at in _placed(message.text, pieces):
            if 0 <= at <= country.start < at + len(piece.text):
                read = await self._parse(piece.text, parse.language, {})
                return read.intent == intent and read.confidence >= CERTAIN_INTENT
        return False

    async def _read_parts(self, message: Message, parse: ParseResult, language: str, skip_intent: str | None,
                          skip_articles: set[str], timings: dict[str, float], requests: bool = True) -> Parts:
        """The parts of a message that says several things (`nlu.segments`), each read on its own.

        A question is looked up in the KB: answered when the KB is confident of an article not in
        `skip_articles` (each article once); else it is a question without an answer, unless its closest
        article is in `skip_articles` (the turn's own answer covers it) or it asks for something an action
        does (not the KB's to answer). A part that is no question but a sure request for an order action ("I
        want to return my lamp") is a request. Parts read as small talk, as `skip_intent` (what the turn
        already did), naming an order or pointing back at an earlier part ("When will it be back?") are left
        out, the last two without reading them (the whole message's entities say where its identifiers are);
        so are parts that are no question when `requests` is off."""
        parts = Parts()
        if self.knowledge is None or (message.payload or {}).get("payload"):
            return parts
        pieces = segments.questions(message.text)
        if not pieces:
            return parts
        t = time.perf_counter()
        skip = set(skip_articles)
        identifiers = [(e.start, e.end) for e in parse.entities if e.entity in IDENTIFIERS]
        if skip_intent in OTHER_ACTIONS:
            # The destination the turn's estimate was for: "Est-ce que vous livrez en Suisse ?" beside "combien de
            # temps ça prend ?" got the customs article (it names Switzerland) under "we don't ship there".
            identifiers += [(e.start, e.end) for e in parse.entities if e.entity == "country" and e.role != ORIGIN_ROLE]
        orders = [(e.start, e.end) for e in parse.entities if e.entity == "order_number"]
        follows_order = False  # the part before names the order
        for piece, at in _placed(message.text, pieces):
            entry: dict[str, Any] = {"text": piece.text, "question": piece.question}
            parts.trace.append(entry)
            after_order, follows_order = follows_order, at >= 0 and any(
                b > at and a < at + len(piece.text) for a, b in orders)
            if at >= 0 and any(b > at and a < at + len(piece.text) for a, b in identifiers):
                entry["skipped"] = "identifier"  # "where is ND-100134?", "my email is ...": the turn's business
                continue
            if piece.refers_back:  # "When will it be back?": about the earlier part, left to the whole message
                entry["skipped"] = "refers_back"
                continue
            if not piece.question and not piece.wish and not requests:
                continue
            read = None
            if piece.short:
                entry["short"] = True  # "¿Aceptan PayPal?": a sure KB answer, or nothing ("Really?" is no question)
            else:
                read = await self._part_intent(piece, language, skip_intent, requests, parts, entry, bool(orders))
                if read is None:
                    continue
            intent = entry.get("intent")
            named = read is not None and intent in OTHER_ACTIONS and read.entity("country") is not None
            found = self.knowledge.search(piece.text, language)
            top = found.hits[0] if found.hits else None
            entry.update(article=top.article_id if top else None, confidence=round(top.confidence, 4) if top else 0.0)
            if found.confident and top is not None and top.article_id not in skip:
                skip.add(top.article_id)
                parts.answered.append((piece, top, found))
                entry["answered"] = True
            elif named and read is not None:
                parts.lookups.append((piece, read))  # "do you ship to Australia?": the estimate answers it
                entry["lookup"] = True
            elif (read is not None and requests and intent in ORDER_ACTIONS and intent not in POLICY_LOOKALIKES
                  and not found.confident and intent != skip_intent):
                # "wo bleibt meine Bestellung?" (order_status at 0.88) that no article answers: the status it asks for
                # (not "另外，运费多少？", read so at 0.70, which the turn's own shipping article answers; nor what the
                # turn did: "merci, et si je ne suis pas chez moi ?" after the status gave the same status twice)
                parts.requests.append((piece, read))
                entry["request"] = True
            elif after_order and skip_intent in ORDER_ACTIONS:
                # "ich habe die Bestellung ND-100250 aufgegeben und möchte noch eine Lampe hinzufügen. Geht das noch?":
                # a question right after the sentence about the order, that no article answers, asks about what the
                # turn's order action answers (it was said to have no answer).
                entry["skipped"] = "about_order"
            elif not piece.question and skip_intent in ORDER_ACTIONS:
                # A wish no article answers, beside the order request the turn runs, describes that request ("Quiero
                # cambiar mi pedido. Quiero la alfombra más grande.": change_items 0.96 as a whole, each sentence
                # doubtful alone); both were said to have no answer.
                entry["skipped"] = "detail"
            elif read is not None and (top is None or top.article_id not in skip_articles) and not (
                    intent in ORDER_ACTIONS or intent in OTHER_ACTIONS or intent == "human_handoff"):
                parts.unanswered.append(piece)
        timings["parts"] = round((time.perf_counter() - t) * 1000, 2)
        return parts

    async def _part_intent(self, piece: Segment, language: str, skip_intent: str | None, requests: bool,
                           parts: Parts, entry: dict[str, Any], named_order: bool = False) -> ParseResult | None:
        """A part's own reading (`entry` gets its intent); None when the reading settles the part: small talk, what
        the turn did or an order number (left to the turn), a request for an order action (`parts.requests`), or
        a lookup the intent is sure of (`parts.lookups`)."""
        read = await self._parse(piece.text, language, {})  # without an NLU: no intent, no entities
        intent = read.intent if read.confidence >= self.intent_threshold else None
        entry["intent"] = intent
        if intent is not None:
            entry["intent_confidence"] = round(read.confidence, 4)
        # What the turn did, read with doubt, may be something else ("Je voudrais supprimer mon compte." read as
        # cancel_order at 0.62 beside "comment annuler une commande ?"): looked up, not left to the turn.
        did = intent is not None and intent == skip_intent and read.confidence >= SWITCH_CONFIDENCE
        if intent in SMALLTALK or intent in CONTENTLESS or did or read.entity("order_number") is not None:
            entry["skipped"] = "intent"
            return None
        if not piece.question:
            if requests and intent in ORDER_ACTIONS and read.confidence >= SWITCH_CONFIDENCE:
                parts.requests.append((piece, read))
                entry["request"] = True
                return None
            if not piece.wish:
                return None
            if skip_intent in ORDER_ACTIONS and intent is None and read.ranking and read.ranking[0].name == skip_intent:
                # A wish that leans towards the turn's own request says what that request is for ("can i change my
                # order? i want the blue one instead", change_items 0.46): no question of its own, nothing to answer.
                entry["skipped"] = "detail"
                return None
            entry["wish"] = True  # "I also want to change my email.": answered like a question
        # With the order named, "Also can I get an invoice?" asks for that order's invoice (the KB's article said how
        # to get one, and the invoice was not sent once the order was proven); "if it arrives damaged, how do I
        # return it?" asks how: an interrogative anywhere in the part.
        asked_of_order = named_order and not segments.opens_with_interrogative(piece.text, within=None)
        if (requests and intent in ORDER_ACTIONS and (intent not in POLICY_LOOKALIKES or asked_of_order)
                and read.confidence >= SWITCH_CONFIDENCE):
            # "Is my parcel on its way?" beside another question asks for an order's status, not for an article (the
            # KB matched the address-change article at 0.76).
            parts.requests.append((piece, read))
            entry["request"] = True
            return None
        if intent in OTHER_ACTIONS and read.entity("country") is not None and read.confidence >= CERTAIN_INTENT:
            parts.lookups.append((piece, read))  # "combien coûte la livraison en France ?": that estimate
            entry["lookup"] = True
            return None
        return read

    async def _other_questions(self, session: AsyncSession, conversation: Conversation, message: Message,
                               parse: ParseResult, language: str, decision: Decision, replies: list[Rendered],
                               state: dict[str, Any], customer: CustomerFacts, timings: dict[str, float]
                               ) -> tuple[Decision, list[Rendered], dict[str, Any]]:
        """A message that says several things gets an answer to each: "How long does shipping to Germany take,
        and do I have to pay customs?" gets the estimate and the customs article. The other answers follow the
        turn's reply, or come before it when the reply asks the shopper something (the question stays last).
        A KB answer to a message that also asks for an order action ("I want to return my lamp. How long does
        a refund take?") is followed by that action, which then owns the turn."""
        # What the turn did: the action it ran or asks for (not the intent the message read as: "ND-100104, and
        # how long do refunds take?" read as refund_status continues a return); a KB answer is skipped by its
        # article (its intent, "shipping_estimate" for "combien coûte la livraison en France ? Et ... douane ?"
        # answered with the customs article, was not served).
        skip_intent = ACTION_INTENTS.get(decision.action or "") if decision.kind != "answer" else None
        skip = {decision.article_id} if decision.article_id else set()
        if decision.kind == "act" and skip_intent in OTHER_ACTIONS:
            # The estimate says how long and what it costs: "寄到新加坡要多久？运费多少？" got the general shipping
            # article after Singapore's estimate, for the part that asks the price.
            skip |= self._articles_of(skip_intent)
        parts = await self._read_parts(message, parse, language, skip_intent, skip, timings,
                                       requests=decision.kind in ("answer", "act", "ask"))
        if not parts.trace:
            return decision, replies, state
        pending = state.get("pending_action")
        if (decision.kind == "ask" and parts.requests and state.get("awaiting") in AWAITED_ENTITIES
                and pending in ORDER_ACTIONS.values()):
            # "(ND-100104) … wann kommt sie an? Außerdem … eine Rechnung": the bot asks for what the first action
            # needs; the other order action runs after it, on the same order (`_run_action`).
            piece, read = parts.requests[0]
            queued = ORDER_ACTIONS[str(read.intent)]
            if queued != pending:
                if read.intent == "return_request":
                    state["slots"]["return_reason"] = piece.text[:RETURN_REASON_CHARS]
                part = piece.text
                own = _asked_later(parts.trace, piece.text, skip_intent)
                if own is not None:
                    # Asked first, answered first: "(ND-100104) Können Sie mir sagen, wann sie ankommt? Außerdem …
                    # eine Rechnung" read as a whole as the invoice (0.68); both wait for the same proof, so the
                    # status becomes the turn's action and the invoice waits behind it.
                    state["pending_action"], queued, part = queued, str(pending), own
                    decision.action, decision.intent = state["pending_action"], read.intent
                    decision.confidence = read.confidence
                state["queued_action"] = queued
                decision.extra["queued_action"] = {"action": queued, "part": part}
                self._more_requests(parts, language, {str(pending), queued})
        elif decision.kind in ("answer", "act") and parts.requests and not state.get("awaiting"):
            piece, read = parts.requests[0]
            intent = str(read.intent)
            self._more_requests(parts, language, {ORDER_ACTIONS[intent], str(decision.action)})
            if intent == "return_request":
                state["slots"]["return_reason"] = piece.text[:RETURN_REASON_CHARS]
            first, first_replies = decision, replies
            decision, replies, state = await self._run_action(
                ORDER_ACTIONS[intent], replace(parse, intent=intent, confidence=read.confidence), language, state,
                customer, conversation, session, message)
            replies = first_replies + replies
            if first.kind == "act":  # "Do you ship to Japan? Where is my order?": the estimate, then the status
                decision.extra["also_acted"] = {"action": first.action, "part": message.text}
            else:
                decision.extra["also_answered"] = [  # the KB answered the message as a whole
                    {"article_id": first.article_id, "article_version": first.article_version,
                     "confidence": round(first.confidence, 4), "answer_locale": first.extra.get("answer_locale"),
                     "part": message.text}]
                decision.extra.setdefault("_trace", {})["kb"] = first.extra.get("_trace", {}).get("kb")
        if decision.kind in ("answer", "smalltalk", "ask", "act") and "also_acted" not in decision.extra:
            await self._look_up(parts, decision, replies, state, customer, conversation)
        asks_last = decision.kind == "ask" or decision.rule in ("kb_while_waiting", "kb_while_confirming")
        at = len(replies) - 1 if asks_last and replies else len(replies)
        self._add_answers(decision, replies, state, parts.answered[:MAX_EXTRA_ANSWERS], parts.unanswered, parts.trace,
                          at=at)
        await self._record_parts(parts.unanswered, language, conversation)
        return decision, replies, state

    def _more_requests(self, parts: Parts, language: str, done: set[str]) -> None:
        """Order requests past the one the turn runs or queues get their article when the KB is confident of one
        (one action waits at a time: "… wann wird sie verschickt? … die Lieferadresse noch zu ändern? Und bekomme
        ich eine Rechnung mit Mehrwertsteuer?" lost the invoice without a word)."""
        assert self.knowledge is not None
        answered = {hit.article_id for _, hit, _ in parts.answered}
        for piece, read in parts.requests[1:]:
            if ORDER_ACTIONS.get(str(read.intent)) in done:
                continue
            found = self.knowledge.search(piece.text, language)
            top = found.hits[0] if found.hits else None
            if found.confident and top is not None and top.article_id not in answered:
                parts.answered.append((piece, top, found))
                answered.add(top.article_id)

    async def _answer_parts(self, parts: Parts, parse: ParseResult, language: str, state: dict[str, Any],
                            customer: CustomerFacts, conversation: Conversation, rule: str = "kb_parts",
                            ) -> tuple[Decision, list[Rendered], dict[str, Any]]:
        """A turn made of the answers to a message's parts: the first confident KB answer (else the lookup a part
        asks for), then the others; the questions without an answer are said and recorded."""
        if parts.answered:
            _, first, first_found = parts.answered.pop(0)
            decision, replies, state = self._answer(first, first_found, parse, language, state, rule=rule)
            await self._look_up(parts, decision, replies, state, customer, conversation)
        else:
            decision, replies, state = await self._look_up_alone(parts, language, state, customer, conversation)
        self._add_answers(decision, replies, state, parts.answered[:MAX_EXTRA_ANSWERS], parts.unanswered,
                          parts.trace, at=len(replies))
        await self._record_parts(parts.unanswered, language, conversation)
        return decision, replies, state

    async def _look_up(self, parts: Parts, decision: Decision, replies: list[Rendered], state: dict[str, Any],
                       customer: CustomerFacts, conversation: Conversation) -> None:
        """A part that asks what an action looks up ("do you ship to Australia?", the shipping estimate) is
        answered by that action, after the turn's answer or action. After an answer the lookup owns the
        conversation's next turn ("and to Norway?"). After an action, or when the turn asks the shopper something
        ("dov'è il mio ordine ND-100104? E quanto costa la spedizione in Italia?": the email on the order), the
        conversation stays where the turn's own action leaves it, and the estimate comes before the question."""
        if not parts.lookups:
            return
        waiting = bool(state.get("awaiting"))
        aside = waiting or decision.kind in ("act", "ask")
        scratch = copy.deepcopy(state) if aside else state
        looked_up, found, scratch = await self._look_up_alone(parts, decision.language, scratch, customer,
                                                              conversation)
        if looked_up.kind != "act":
            return
        if aside:
            state["turns_answered"] = state.get("turns_answered", 0) + 1
        at = len(replies) - 1 if (waiting or decision.kind == "ask") and replies else len(replies)
        replies[at:at] = found
        decision.extra["also_acted"] = {"action": looked_up.action, "part": parts.lookups[0][0].text}

    async def _look_up_alone(self, parts: Parts, language: str, state: dict[str, Any], customer: CustomerFacts,
                             conversation: Conversation) -> tuple[Decision, list[Rendered], dict[str, Any]]:
        """The action that answers the first part asking what an action looks up, for that part's country."""
        _, read = parts.lookups[0]
        country = read.entity("country")
        assert read.intent is not None and country is not None
        state["slots"]["country"] = country.value
        return await self._run_action(OTHER_ACTIONS[read.intent], read, language, state, customer, conversation)

    def _add_answers(self, decision: Decision, replies: list[Rendered], state: dict[str, Any],
                     answered: list[tuple[Segment, KBHit, KBAnswer]], unanswered: list[Segment],
                     trace: list[dict[str, Any]], at: int) -> None:
        """Adds the answers to other questions of the message to a turn's replies (at index `at`), cited in the
        decision as `also_answered`, and says which questions it has no answer to (`UNANSWERED_PART`)."""
        extra = [self._article_text(hit.answer, hit.locale, decision.language) for _, hit, _ in answered]
        if UNANSWERED_PART in self.responses:
            extra += [self._say(UNANSWERED_PART, decision.language, question=_quoted(part.text))
                      for part in unanswered[:MAX_EXTRA_ANSWERS]]
        replies[at:at] = extra
        also = decision.extra.setdefault("also_answered", [])
        also += [{"article_id": hit.article_id, "article_version": hit.version, "confidence": round(hit.confidence, 4),
                  "answer_locale": hit.locale, "part": part.text} for part, hit, _ in answered]
        decision.extra.setdefault("_trace", {})["parts"] = trace
        if answered:
            state["turns_answered"] = state.get("turns_answered", 0) + len(answered)

    async def _record_parts(self, unanswered: list[Segment], language: str, conversation: Conversation) -> None:
        """The questions of a message that got no answer go to the content owners' review list, like a message
        the bot could not answer: answering the rest of the message must not bury them."""
        assert self.knowledge is not None
        for part in unanswered:
            await self.knowledge.record_unanswered(part.text, language, conversation.channel, conversation.id,
                                                   "unanswered_part")

    async def _reasked(self, session: AsyncSession | None, conversation: Conversation, message: Message | None,
                       parse: ParseResult, language: str, state: dict[str, Any], customer: CustomerFacts,
                       slot: str) -> tuple[Decision, list[Rendered], dict[str, Any]] | None:
        """The bot is about to ask again for what it asked for last turn: the shopper did not give it (an email
        for the order number, another question). That is a failed turn, so the same question does not loop for
        ever; at the limit a person takes over. None: ask (again)."""
        if state.get("awaiting") != slot:
            return None
        state["failed_turns"] = state.get("failed_turns", 0) + 1
        if (self.handoff is None or session is None or message is None
                or state["failed_turns"] < self.handoff.failed_turns_limit):
            return None
        fired = [{"name": "failed_turns", "priority_hint": "P3",
                  "reason": f"the shopper did not give the {slot.replace('_', ' ')} the bot asked for again "
                            f"({state['failed_turns']} turns in a row without progress)"}]
        return await self._escalate(session, conversation, message, parse, language, state, customer, fired)

    async def _cannot_answer(self, session: AsyncSession, conversation: Conversation, message: Message,
                             parse: ParseResult, language: str, state: dict[str, Any], customer: CustomerFacts,
                             reply: str) -> tuple[Decision, list[Rendered], dict[str, Any]]:
        """Where to find the order number (or why the email is needed), still waiting for it; a shopper who
        still cannot give it goes to a person, who can find the order another way."""
        state["failed_turns"] = state.get("failed_turns", 0) + 1
        if self.handoff is not None and state["failed_turns"] >= self.handoff.failed_turns_limit:
            fired = [{"name": "failed_turns", "priority_hint": "P3",
                      "reason": f"the shopper cannot give the {state['awaiting'].replace('_', ' ')} the bot asked for"}]
            return await self._escalate(session, conversation, message, parse, language, state, customer, fired)
        slots = state.get("slots", {})
        return (Decision("ask", parse.intent, parse.confidence, action=state.get("pending_action"), language=language,
                         rule="cannot_answer", slot=state["awaiting"]),
                [self._say(reply, language, order_number=slots.get("order_number") or "")], state)

    def _smalltalk(self, intent: str, reply: str, parse: ParseResult, language: str, state: dict[str, Any],
                   rule: str, closes: bool = False, **values: Any) -> tuple[Decision, list[Rendered], dict[str, Any]]:
        state["failed_turns"] = 0
        replies = [self._say(reply, language, **values)]
        if (closes or intent == "goodbye") and state.get("turns_answered", 0) > 0 and not state.get("csat"):
            state["csat_pending"] = True
            replies.append(self._say("utter_ask_csat", language))
        if reply in OFFERS_MORE:
            state["offered_more"] = True
        return Decision("smalltalk", intent, parse.confidence, language=language, rule=rule), replies, state

    def _answer(self, top: KBHit, found: KBAnswer, parse: ParseResult, language: str, state: dict[str, Any],
                rule: str) -> tuple[Decision, list[Rendered], dict[str, Any]]:
        state["failed_turns"] = 0
        state["turns_answered"] = state.get("turns_answered", 0) + 1
        state["answered_text"] = parse.text[:FOLLOW_UP_CONTEXT]
        if parse.intent in ORDER_ACTIONS and parse.confidence >= self.intent_threshold:
            state["answered_about"] = parse.intent
        return (Decision("answer", parse.intent, top.confidence, article_id=top.article_id,
                         article_version=top.version, language=language, rule=rule,
                         extra={"answer_locale": top.locale, "kb_fallback_locale": found.fallback_used,
                                "_trace": {"kb": found.trace}}),
                [self._article_text(top.answer, top.locale, language)], state)

    def _which_order_action(self, order_number: str, parse: ParseResult, language: str, state: dict[str, Any]
                            ) -> tuple[Decision, list[Rendered], dict[str, Any]]:
        """"What would you like to know about order ND-100171?" with a button for each of the usual order actions."""
        choices = self._action_choices(["order_status", "refund_status", "request_invoice", "return_request"], language)
        ask = self._say("utter_which_order_action", language, order_number=order_number)
        return (Decision("clarify", None, parse.confidence, language=language, rule="order_without_intent"),
                [Rendered(ask.text, choices)], state)

    def _action_choices(self, intents: list[str], language: str) -> list[QuickReply]:
        """A button per order action (`utter_choice_<intent>`) that starts it (`/intent:<intent>`)."""
        return [QuickReply(self._say(f"utter_choice_{name}", language).text, f"/intent:{name}") for name in intents]

    def _kb_answer(self, text: str, language: str, parse: ParseResult, state: dict[str, Any],
                   timings: dict[str, float], rule: str, above: float = 0.0, besides: frozenset[str] = frozenset()
                   ) -> tuple[Decision, list[Rendered], dict[str, Any]] | None:
        """The KB's answer to `text` when the KB is confident, at least `above`, from an article not in `besides`
        (the search timed into `timings`), else None."""
        assert self.knowledge is not None
        t = time.perf_counter()
        found = self.knowledge.search(text, language)
        timings["kb"] = round((time.perf_counter() - t) * 1000, 2)
        if (found.confident and found.hits and found.hits[0].confidence >= above
                and found.hits[0].article_id not in besides):
            return self._answer(found.hits[0], found, parse, language, state, rule=rule)
        return None

    def _asking_again(self, answer: tuple[Decision, list[Rendered], dict[str, Any]], state: dict[str, Any],
                      language: str) -> tuple[Decision, list[Rendered], dict[str, Any]]:
        """A KB answer given while the bot waits, followed by the bot's question again (`ASK_AGAIN`)."""
        decision, replies, state = answer
        again = ASK_AGAIN[state["awaiting"]]
        if again in self.responses:
            replies.append(self._say(again, language, order_number=state["slots"].get("order_number") or ""))
        return decision, replies, state

    def _answer_article(self, article_id: str, text: str, language: str, state: dict[str, Any],
                        parse: ParseResult) -> tuple[Decision, list[Rendered], dict[str, Any]]:
        assert self.knowledge is not None
        found = self.knowledge.search(text, language)
        hit = next((h for h in found.hits if h.article_id == article_id), None)
        if hit is None:
            return (Decision("fallback", None, 0.0, language=language, rule="clarify_choice_unknown"),
                    [self._say("utter_fallback", language)], state)
        state["failed_turns"] = 0
        state["turns_answered"] = state.get("turns_answered", 0) + 1
        return (Decision("answer", parse.intent, hit.confidence, article_id=hit.article_id, article_version=hit.version,
                         language=language, rule="clarify_choice", extra={"answer_locale": hit.locale}),
                [self._article_text(hit.answer, hit.locale, language)], state)

    def _article_text(self, answer: str, locale: str, language: str) -> Rendered:
        """The article's text; in another language than the shopper's, after a note in theirs saying so
        (`utter_answer_in_other_language`, when the domain has it in their language)."""
        shown = locale.split("-")[0].split("_")[0].lower()
        if shown == language or "utter_answer_in_other_language" not in self.responses:
            return Rendered(answer)
        try:
            name = Locale.parse(language).languages.get(shown) or shown
        except (ValueError, UnknownLocaleError):
            name = shown
        note = self._say("utter_answer_in_other_language", language, language_name=name)
        return Rendered(answer if note.fallback_used else f"{note.text}\n\n{answer}")

    def _fill_slots(self, parse: ParseResult, slots: dict[str, Any], state: dict[str, Any]) -> None:
        for name in ("order_number", "email", "phone", "country"):
            entity = parse.entity(name)
            if entity is not None:
                slots[name] = entity.value
                if name == "order_number" and slots.get("verified_order") != entity.value:
                    slots.pop("verified_order", None)  # another order: to be proven in its turn

    async def _run_action(self, action: str, parse: ParseResult, language: str, state: dict[str, Any],
                          customer: CustomerFacts, conversation: Conversation,
                          session: AsyncSession | None = None, message: Message | None = None,
                          ) -> tuple[Decision, list[Rendered], dict[str, Any]]:
        slots: dict[str, Any] = state["slots"]
        state["pending_action"] = action
        if self.actions is None:
            return (Decision("fallback", parse.intent, parse.confidence, language=language, rule="no_action_runner"),
                    [self._say("utter_fallback", language)], state)
        sender = f"{conversation.channel}:{conversation.identity_id}"
        if action == ORDER_ACTIONS["order_status"] and message is not None and segments.says_not_received(message.text):
            state["said_not_received"] = True  # kept while the bot asks for the order number and the proof
        if action in ORDER_ACTIONS.values():
            named = _order_number_named(message.text, parse) if message is not None and not slots.get(
                "order_number") else None
            if named:
                # "my order 100110 hasn't arrived": the shop's prefix left out, the number is still there (the store
                # connector completes it, the ownership check proves it); the bot asked for it anyway.
                slots["order_number"] = named
            if not slots.get("order_number"):
                reasked = await self._reasked(session, conversation, message, parse, language, state, customer,
                                              "order_number")
                if reasked is not None:
                    return reasked
                state["awaiting"] = "order_number"
                tracking = parse.entity("tracking_number")
                carrier = str(tracking.extra.get("carrier") or "") if tracking is not None else ""
                if (action == ORDER_ACTIONS["order_status"] and tracking is not None and carrier
                        and "utter_tracking_link" in self.responses):
                    # "my tracking number is 613309851179, where is it?": the carrier's page answers that, with no
                    # order to prove (the same page as the order status gives); the order itself needs its number.
                    link = self._say("utter_tracking_link", language, tracking_number=tracking.value, carrier=carrier,
                                     tracking_url=tracking_url(carrier, str(tracking.value)))
                    return (Decision("ask", parse.intent, parse.confidence, action=action, language=language,
                                     rule="tracking_number_only", slot="order_number"), [link], state)
                return (Decision("ask", parse.intent, parse.confidence, action=action, language=language,
                                 rule="missing_slot", slot="order_number"),
                        [self._say("utter_ask_order_number", language)], state)
            if slots.get("verified_order") != slots["order_number"]:
                verdict, order_facts = await self.actions.verify_ownership(
                    sender, str(slots["order_number"]), slots.get("email"), slots.get("phone"), customer)
                if verdict == "rate_limited":
                    state["awaiting"] = None
                    minutes = max(1, -(-int(order_facts.get("retry_after", 900)) // 60))
                    limited = self._say("utter_rate_limited", language, minutes=minutes)
                    return (Decision("fallback", parse.intent, parse.confidence, action=action, language=language,
                                     rule="ownership_rate_limited"), [limited], state)
                if verdict != "ok":
                    if not slots.get("email") and not slots.get("phone"):
                        reasked = await self._reasked(session, conversation, message, parse, language, state,
                                                      customer, "contact")
                        if reasked is not None:
                            return reasked
                        state["awaiting"] = "contact"
                        return (Decision("ask", parse.intent, parse.confidence, action=action, language=language,
                                         rule="ownership_proof_needed", slot="email"),
                                [self._say("utter_ask_email_or_phone", language, order_number=slots["order_number"])],
                                state)
                    # Same words as an unknown order: a wrong pair must reveal nothing. The number is kept aside
                    # for an email or phone number sent alone next (a slip in the email, not in the number).
                    slots.pop("email", None)
                    slots.pop("phone", None)
                    state["unproven_order"] = slots.pop("order_number", None)
                    state["awaiting"] = "order_number"
                    return (Decision("ask", parse.intent, parse.confidence, action=action, language=language,
                                     rule="ownership_not_proven", slot="order_number"),
                            [self._say("utter_ownership_failed", language)], state)
                # The store's own spelling from now on ("100105" typed, "ND-100105" on the order).
                slots["order_number"] = str(order_facts.get("number") or slots["order_number"])
                slots["verified_order"] = slots["order_number"]
                # What the escalation rules need to know about this order (value, in transit).
                state["order_total"] = order_facts.get("total")
                state["order_currency"] = order_facts.get("currency")
                state["order_in_transit"] = order_facts.get("in_transit", False)
                proven = [c for c in (order_facts.get("email"), order_facts.get("phone")) if c]
                state["proven_contacts"] = sorted(set(state.get("proven_contacts", [])) | set(proven))
                if self.on_order_proven is not None:
                    await self.on_order_proven(conversation, str(slots["order_number"]), order_facts)
        outcome = await self.actions.run(action, dict(slots), language, sender, customer)
        slots.update(outcome.slots)
        said_not_received = state.pop("said_not_received", False) if action == ORDER_ACTIONS["order_status"] else False
        if DELIVERED in outcome.variables and slots.get("verified_order"):
            told = {"order": slots["verified_order"], "carrier": str(outcome.variables[DELIVERED].get("carrier") or "")}
            if (said_not_received and self.handoff is not None and session is not None and message is not None
                    and NOT_RECEIVED in self.responses):
                # "I never received order ND-100142 but the tracking says delivered": the shopper said already what
                # the delivered status asks them to say, so a person checks with the carrier now.
                slots.pop("confirmed", None)
                state["awaiting"] = state["pending_action"] = None
                decided = await self._not_received(session, conversation, message, parse, language, state, customer,
                                                   told)
                decided[0].action = action
                return decided
            state["told_delivered"] = told
        slots.pop("confirmed", None)
        slots.pop("new_address", None)
        asked = next((ASKS[name] for name in outcome.trace.get("responses", []) if name in ASKS), None)
        state["awaiting"] = asked
        state["pending_action"] = action if asked else None
        state["failed_turns"] = 0
        if asked is None:
            state["turns_answered"] = state.get("turns_answered", 0) + 1
            state["last_action"] = state["just_acted"] = action
            if action in OTHER_ACTIONS.values():
                state["acted_text"] = parse.text[:FOLLOW_UP_CONTEXT]
        decision = Decision("ask" if asked else "act", parse.intent, parse.confidence, action=action,
                            language=language, rule="action_asks" if asked else "action_intent", slot=asked,
                            extra={"_trace": {"action": outcome.trace}})
        if outcome.failed:
            decision.extra["store_unavailable"] = True
        queued = state.pop("queued_action", None) if asked is None and not outcome.handoff_reason else None
        if queued and queued != action and action in ORDER_ACTIONS.values():
            # The other order action the shopper asked for with this one, on the same (now proven) order.
            then, more, state = await self._run_action(queued, replace(parse, intent=ACTION_INTENTS[queued]), language,
                                                       state, customer, conversation, session, message)
            if then.kind != "act":
                then.extra["also_acted"] = {"action": action}
                return then, outcome.replies + more, state
            decision.extra["also_acted"] = {"action": queued}
            return decision, outcome.replies + more, state
        if outcome.handoff_reason and self.handoff is not None and session is not None and message is not None:
            # The action could not finish the job alone: its honest message, and a ticket for a person.
            fired = [{"name": f"action:{outcome.handoff_reason}", "priority_hint": "P2" if outcome.failed else "P3",
                      "reason": f"{action} asked for a person ({outcome.handoff_reason})"}]
            escalated, replies, state = await self._escalate(session, conversation, message, parse, language, state,
                                                             customer, fired)
            escalated.action = action
            escalated.extra["_trace"]["action"] = outcome.trace
            action_texts = {r.text for r in outcome.replies}
            return escalated, outcome.replies + [r for r in replies if r.text not in action_texts], state
        return decision, outcome.replies, state

    async def _not_received(self, session: AsyncSession, conversation: Conversation, message: Message,
                            parse: ParseResult, language: str, state: dict[str, Any], customer: CustomerFacts,
                            told: dict[str, str]) -> tuple[Decision, list[Rendered], dict[str, Any]]:
        """A delivered order the shopper has not received: sorry, and a ticket for a person to check with the carrier."""
        fired = [{"name": "action:not_received", "priority_hint": "P2",
                  "reason": f"{told['carrier']} shows {told['order']} delivered; the shopper has not received it"}]
        sorry = self._say(NOT_RECEIVED, language, order_number=told["order"], carrier=told["carrier"])
        return await self._escalate(session, conversation, message, parse, language, state, customer, fired, [sorry])

    async def _many_questions(self, session: AsyncSession, conversation: Conversation, message: Message,
                              parse: ParseResult, language: str, decision: Decision, replies: list[Rendered],
                              state: dict[str, Any], customer: CustomerFacts, asked: int
                              ) -> tuple[Decision, list[Rendered], dict[str, Any]]:
        """More questions than one turn answers (the turn's and MAX_EXTRA_ANSWERS more): the answers the bot has, then
        a person who reads the whole message and answers the rest (a nine-question email lost its last four)."""
        fired = [{"name": "action:many_questions", "priority_hint": "P4",
                  "reason": f"{asked} questions in one message; the bot answered the first ones"}]
        escalated, replies, state = await self._escalate(session, conversation, message, parse, language, state,
                                                         customer, fired, [*replies, self._say(MANY_QUESTIONS, language)])
        escalated.extra["answered_first"] = {k: v for k, v in decision.to_dict().items()
                                             if k in ("kind", "rule", "article_id", "action", "also_answered") and v}
        return escalated, replies, state

    async def _charged_twice(self, session: AsyncSession, conversation: Conversation, message: Message,
                             parse: ParseResult, language: str, state: dict[str, Any], customer: CustomerFacts
                             ) -> tuple[Decision, list[Rendered], dict[str, Any]]:
        """A payment taken twice: sorry, and a ticket for a person to check the payments (once a conversation)."""
        named = parse.entity("order_number")
        slots = state["slots"]
        number = str(named.value) if named else slots.get("verified_order") or slots.get("order_number")
        fired = [{"name": "action:charged_twice", "priority_hint": "P2",
                  "reason": "the shopper says a payment was taken twice" + (f" (order {number})" if number else "")}]
        state["charged_twice"] = True
        return await self._escalate(session, conversation, message, parse, language, state, customer, fired,
                                    [self._say(CHARGED_TWICE, language)])

    async def _escalate(self, session: AsyncSession, conversation: Conversation, message: Message, parse: ParseResult,
                        language: str, state: dict[str, Any], customer: CustomerFacts,
                        fired: list[dict[str, Any]], first: Collection[Rendered] = ()
                        ) -> tuple[Decision, list[Rendered], dict[str, Any]]:
        """A ticket for the `fired` triggers; the replies are `first` (what the bot says before the handoff, a sorry or
        its answers), then the handoff's own ("a person will reply within ...")."""
        assert self.handoff is not None
        escalation = await self.handoff.escalate(session, conversation, message, parse, fired, language, customer,
                                                 state)
        state["failed_turns"] = 0
        kind = "after_hours" if escalation.after_hours else "escalate"
        decision = Decision(kind, parse.intent, parse.confidence, language=language, ticket_id=escalation.ticket_id,
                            rule="escalation:" + ",".join(t["name"] for t in fired),
                            extra={"triggers": fired, "_trace": {"handoff": escalation.trace}})
        return decision, [*first, *escalation.replies], state


# Built once: a statement built per turn costs more CPU (construction, cache key) than running it.
_CUSTOMER = select(Customer).where(Customer.id == bindparam("customer_id"))
_MERGED_IDENTITIES = select(ChannelIdentity).where(
    ChannelIdentity.customer_id.in_(merged_profiles(bindparam("customer_id"))))
_EARLIER_STATES = select(Conversation.state).where(
    Conversation.customer_id.in_(merged_profiles(bindparam("customer_id"))),
    Conversation.id != bindparam("conversation_id"), Conversation.last_message_at >= bindparam("since"))


async def _live_customer(session: AsyncSession, customer_id: int) -> Customer | None:
    """The customer a (possibly merged) profile now lives in, following merges like `current_customer_id`."""
    seen: set[int] = set()
    customer = (await session.execute(_CUSTOMER, {"customer_id": customer_id})).scalar_one_or_none()
    while customer is not None and customer.merged_into_id is not None and customer.id not in seen:
        seen.add(customer.id)
        customer = (await session.execute(_CUSTOMER, {"customer_id": customer.merged_into_id})).scalar_one_or_none()
    return customer


def _asked(message: Message, parse: ParseResult) -> str:
    """The message as the knowledge base is asked it: with its typing slips mended ("whats ur retrun policy")."""
    return parse.corrected or message.text


def _written_in(parse: ParseResult, languages: Collection[str]) -> bool:
    """Whether an answer to the bot's question says enough besides what it was asked for to be in a language of its
    own: "meine Bestellnummer ist ND-100173" in an English conversation is German (the replies stayed English)."""
    if parse.foreign_language is not None or parse.language not in languages:
        return False
    if parse.language_confidence < ANSWER_SWITCH_CONFIDENCE:
        return False
    text = parse.text
    for e in sorted(parse.entities, key=lambda e: e.start, reverse=True):
        text = text[:e.start] + " " + text[e.end:]
    return sum(ch.isalpha() for ch in text) >= ANSWER_SWITCH_LETTERS


def _answers_question(state: dict[str, Any], parse: ParseResult) -> bool:
    """Whether the message is the answer the bot waits for (an address, the email, "yes"), not a new request."""
    awaiting = state.get("awaiting")
    if awaiting == "new_address" or (state.get("just_acted") == CHANGE_ADDRESS and _address_after_change(parse)):
        return True
    if awaiting == "confirm":
        return parse.intent in ("affirm", "deny")
    return any(parse.entity(name) is not None for name in AWAITED_ENTITIES.get(awaiting or "", ()))


def _asked_later(trace: list[dict[str, Any]], request: str, intent: str | None) -> str | None:
    """The part read as `intent` (what the turn does) when it comes after the part `request`, else None."""
    seen = False
    for entry in trace:
        if entry["text"] == request:
            seen = True
        elif entry.get("skipped") == "intent" and entry.get("intent") == intent:
            return str(entry["text"]) if seen else None
    return None


def _placed(text: str, pieces: list[Segment]) -> Iterator[tuple[Segment, int]]:
    """Each part of `text` with where it starts in it (-1 when the part was rewritten and is not found)."""
    start = 0
    for piece in pieces:
        at = text.find(piece.text, start)
        start = max(start, at)
        yield piece, at


def _bare_reference(piece: Segment, start: int, end: int) -> bool:
    """Whether a part of a message only names the order it holds at `start`:`end` ("Commande ND-100157",
    "Order number: ND-100157", "注文番号 ND-100157"), with no question or wish of its own."""
    return not piece.question and _little_else(piece.text, start, end)


def _little_else(text: str, start: int, end: int) -> bool:
    """Whether `text` says little beside what it holds at `start`:`end`: two words at most ("where is", "Commande")."""
    rest = f"{text[:start]} {text[end:]}"
    return len(re.findall(r"\w+", rest)) <= 2 and len(rest.strip()) <= 20


def _destination_alone(text: str, parse: ParseResult) -> bool:
    """Whether the message is only a destination with a joiner or two, a follow-up that means nothing alone."""
    country = parse.entity("country")
    if country is None:
        return False
    return segments.only_joiners(f"{text[:country.start]} {text[country.end:]}")


def _tells_reason(text: str, parse: ParseResult, intent: str | None) -> bool:
    """Whether a message after a return was opened says why the items come back: no question, no order number,
    no new wish, and more than a bare "no" or "no thanks"."""
    if intent not in REASON_READINGS or parse.entity("order_number") is not None or segments.is_question(text):
        return False
    return not segments.is_bare_no(text)


def _address_after_change(parse: ParseResult) -> bool:
    """A message that is only an address: a house number or postcode among words, no question, no order details."""
    text = parse.text.strip()
    return (any(ch.isdigit() for ch in text) and sum(ch.isalpha() for ch in text) >= 4 and len(text) <= 200
            and not _is_question(text) and not any(parse.entity(name) for name in ("order_number", "email", "phone")))


def _quoted(text: str) -> str:
    """A shopper's question as the bot quotes it back: without the question mark the quotes already frame,
    and shortened when long."""
    text = " ".join(text.split()).lstrip("¿").rstrip("?？")
    return text if len(text) <= QUOTED_CHARS else text[:QUOTED_CHARS - 1].rstrip() + "…"


def _is_question(text: str) -> bool:
    return segments.asks(text)


def _phone_like(text: str) -> str | None:
    digits = re.sub(r"[\s().-]", "", text)
    match = re.search(r"\+?\d{7,15}", digits)
    return match.group(0) if match else None


# What a new session keeps: who the shopper is and the order they proved (as Rasa carries slots over).
SESSION_SLOTS = ("order_number", "email", "phone", "verified_order", "country")
SESSION_STATE = ("slots", "proven_contacts", "order_total", "order_currency", "order_in_transit", "csat",
                 "value_checked_order", "ticket_id")


def _new_session(state: dict[str, Any]) -> dict[str, Any]:
    """The state a conversation starts a new session with: no open question, pending action, counters or rating
    question; the proven order and the shopper's contacts stay."""
    kept = {key: state[key] for key in SESSION_STATE if key in state}
    kept["slots"] = {k: v for k, v in (state.get("slots") or {}).items() if k in SESSION_SLOTS}
    return kept


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


_DIGIT_RUN = re.compile(r"(?<![\d+])#?(\d{4,12})(?!\d)")
BARE_NUMBER_MAX_WORDS = 6


def _order_number_like(text: str) -> str | None:
    """The one run of 4 to 12 digits in a short answer to "what is your order number?" ("100105", "it's #100105",
    "Bestellnummer 100105"); None when there is none, several, or the message is long or an email or phone."""
    if "@" in text or text.strip().startswith("+") or len(text.split()) > BARE_NUMBER_MAX_WORDS:
        return None
    runs = _DIGIT_RUN.findall(text)
    return runs[0] if len(runs) == 1 else None


# An order number named as one without the shop's prefix: "my order 100110", "Bestellnummer: 100110", "commande
# n° 100110", "注文番号100110". A bare run of digits elsewhere may be a postcode or a phone number in a signature.
_NAMED_ORDER = re.compile(
    r"(?:order|bestell\w*|auftrag\w*|pedido|commande|ordine|bestelling|encomenda|注文|订单|訂單|주문)"
    r"(?:\s*(?:no\.?|nr\.?|number|nummer|número|numéro|numero|n°|#|:|番号|号|번호|is|ist|lautet|es|est|è|é|は|是))*"
    r"\s*#?(\d{5,12})(?!\d)",
    re.IGNORECASE)


def _order_number_named(text: str, parse: ParseResult) -> str | None:
    """The one number of 5 to 12 digits that the message names as an order's, after the word for order ("my order
    100110 hasn't arrived") and that no entity (tracking or phone number, amount) accounts for."""
    runs = {m.group(1) for m in _NAMED_ORDER.finditer(text)
            if not any(e.start <= m.start(1) < e.end for e in parse.entities)}
    return next(iter(runs)) if len(runs) == 1 else None


_STARS = re.compile(r"^[\s★⭐\ufe0f]+$")
# "5 stars", "4/5", "4 out of 5", "3 Sterne", "5 étoiles", "4 estrellas", "5点", "星5"...
_RATED = re.compile(r"(?<!\d)([1-5])\s*(?:/\s*5|(?:out of|von|sur|de|su|van|em) 5|stars?|sterne?|étoiles?|"
                    r"estrellas?|stelle|sterren|estrelas?|点|つ星|星)(?!\w)|(?:星|★)\s*([1-5])(?!\d)", re.IGNORECASE)


def _rating(text: str) -> int | None:
    """A 1-5 rating: typed ("4", "5 stars, great service", "4/5", "★★★★"), or a button payload
    (`/csat{"score":4}` as Rasa writes it, or `/csat:4`). A number inside a sentence ("I ordered 2 rugs") is none."""
    text = unicodedata.normalize("NFKC", text).strip()
    match = re.fullmatch(r'(?:/csat(?::|\{\s*"score"\s*:\s*))?([1-5])\s*\}?', text)
    if match:
        return int(match.group(1))
    stars = sum(text.count(c) for c in "★⭐")
    if _STARS.match(text) and 1 <= stars <= 5:
        return stars
    rated = _RATED.search(text)
    if rated:
        return int(rated.group(1) or rated.group(2))
    # The number first, a comment after it: "5 - great service", "4, quick answers".
    first = re.match(r"([1-5])(?![\d.,:/]\d)\s*[-–—!.,:;)]", text)
    return int(first.group(1)) if first and not re.search(r"\d", text[1:]) else None
