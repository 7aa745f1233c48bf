"""rasa-sdk actions on the shopper's orders: status, cancel, address change, refund, invoice, return, a change of
items and items missing from a parcel (handed to a person), shipping estimate and human handoff.

Slots read (see examples/demo-store/domain.yml):
  verified_order  order number the engine verified ownership of (actions/ownership.py); the ONLY order
                  an action reads or changes. Without it the action asks for what is missing.
  order_number    the order number the shopper gave (used only to phrase the question for proof)
  confirmed       True / False after the shopper answered utter_confirm_cancel; None = not asked yet
  new_address     the new delivery address: a mapping (name, line1, line2, city, postal_code, region,
                  country) or free text "name, street 1, 10115 Berlin"
  country         destination for action_shipping_estimate (ISO code or a name in any language)
  return_reason   why the shopper sends items back (free text)
  return_note     more words on why, told after the return was opened: added to that return
Slots set: confirmed (reset), invoice_url, return_id + return_order (the return opened and its order),
return_note (cleared), verified_order (cleared if the order vanished),
handoff_requested + handoff_reason ("shopper_asked" | "store_unavailable" | "country_change" | "refund_overdue" |
"change_items" | "missing_items").

Messages are `dispatcher.utter_message(response="utter_...", **variables)`: the engine renders them in
the shopper's language (actions/responses.py). Dates are ISO strings and amounts "12.50 EUR", so the
same call works over the remote action-server protocol.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import registry
from actions.countries import resolve_country
from actions.store import (
    BEFORE_SHIPPING,
    RETURNABLE,
    ActionNotAllowed,
    Address,
    Order,
    OrderNotFound,
    Refund,
    StoreUnavailable,
)

logger = logging.getLogger(__name__)

Events = list[EventType]
# A parcel still travelling after its estimated day (optional in a project's domain: without it the usual status).
LATE = "utter_order_status_late"


def money(amount: Any, currency: str) -> str:
    return f"{amount} {currency}"


def _latest_refund(order: Order, status: str | None = None) -> Refund | None:
    refunds = [r for r in order.refunds if status is None or r.status == status]
    return max(refunds, key=lambda r: r.created_at) if refunds else None


def _has_response(domain: dict[str, Any], name: str) -> bool:
    """Whether the bot's domain has this response: the sentences added later (late parcels, overdue refunds,
    a passed return window) are said only where a project wrote them; others keep the older reply."""
    return name in (domain.get("responses") or {})


def _why_cancelled(order: Order, domain: dict[str, Any]) -> str | None:
    """The response that tells why the order was cancelled, when the store says and the project words it ("Why was
    my order cancelled?": the payment was declined; it was told "Any payment is refunded", though none was taken)."""
    why = f"utter_order_status_cancelled_{order.cancel_cause}"
    return why if order.cancel_cause and _has_response(domain, why) else None


def _handoff(reason: str) -> Events:
    return [SlotSet("handoff_requested", True), SlotSet("handoff_reason", reason)]


class OrderAction(Action, ABC):
    """Common flow: find the verified order, run `act`, turn store failures into honest messages."""

    @abstractmethod
    def name(self) -> str: ...

    @abstractmethod
    async def act(self, order: Order, dispatcher: CollectingDispatcher, tracker: Tracker,
                  ctx: registry.ActionContext, domain: dict[str, Any]) -> Events: ...

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> Events:
        number = tracker.get_slot("verified_order")
        if not number:
            given = tracker.get_slot("order_number")
            if given:
                dispatcher.utter_message(response="utter_ask_email_or_phone", order_number=given)
            else:
                dispatcher.utter_message(response="utter_ask_order_number")
            return []
        ctx = registry.get_context()
        try:
            order = await ctx.store.get_order(number)
            return await self.act(order, dispatcher, tracker, ctx, domain)
        except OrderNotFound:
            dispatcher.utter_message(response="utter_ownership_failed")
            return [SlotSet("verified_order", None)]
        except StoreUnavailable as exc:
            logger.error("%s: store unavailable: %s", self.name(), exc)
            dispatcher.utter_message(response="utter_store_unavailable")
            return _handoff("store_unavailable")


class ActionOrderStatus(OrderAction):
    def name(self) -> str:
        return "action_order_status"

    async def act(self, order: Order, dispatcher: CollectingDispatcher, tracker: Tracker,
                  ctx: registry.ActionContext, domain: dict[str, Any]) -> Events:
        n = order.number
        shipment = order.latest_shipment
        if order.status == "pending":
            dispatcher.utter_message(response="utter_order_status_pending", order_number=n)
        elif order.status in ("paid", "processing") or (order.status == "shipped" and shipment is None):
            dispatcher.utter_message(response="utter_order_status_preparing", order_number=n)
        elif order.status in ("shipped", "in_transit") and shipment is not None:
            eta = shipment.estimated_delivery
            # Past the estimated day and still travelling: say it is late instead of quoting a date gone by.
            late = eta is not None and eta < ctx.today() and _has_response(domain, LATE)
            dispatcher.utter_message(
                response=LATE if late else "utter_order_status_in_transit", order_number=n, carrier=shipment.carrier,
                tracking_number=shipment.tracking_number, tracking_url=shipment.tracking_url,
                eta=eta.isoformat() if eta else None,
            )
        elif order.status == "delivered" and shipment is not None:
            delivered = shipment.delivered_at.date() if shipment.delivered_at else shipment.estimated_delivery
            dispatcher.utter_message(
                response="utter_order_status_delivered", order_number=n, carrier=shipment.carrier,
                tracking_number=shipment.tracking_number, tracking_url=shipment.tracking_url,
                delivered_on=delivered.isoformat() if delivered else None,
            )
        elif order.status == "cancelled":
            dispatcher.utter_message(response=_why_cancelled(order, domain) or "utter_order_status_cancelled",
                                     order_number=n)
        elif order.status == "returned":
            refund = _latest_refund(order)
            amount = refund.amount if refund else order.total
            dispatcher.utter_message(response="utter_order_status_returned", order_number=n,
                                     amount=money(amount, order.currency))
        else:  # refunded (or a delivered order without shipment data)
            refund = _latest_refund(order, "processed") or _latest_refund(order)
            if refund is None:
                dispatcher.utter_message(response="utter_order_status_preparing", order_number=n)
            else:
                when = refund.processed_at or refund.created_at
                dispatcher.utter_message(response="utter_order_status_refunded", order_number=n,
                                         amount=money(refund.amount, refund.currency),
                                         refund_date=when.date().isoformat())
        return []


class ActionCancelOrder(OrderAction):
    def name(self) -> str:
        return "action_cancel_order"

    async def act(self, order: Order, dispatcher: CollectingDispatcher, tracker: Tracker,
                  ctx: registry.ActionContext, domain: dict[str, Any]) -> Events:
        n = order.number
        if order.status == "cancelled":
            # Cancelled by the shop, not the shopper: say why ("por qué se canceló mi pedido" reads as a cancellation
            # and was told "there's nothing more to do").
            why = _why_cancelled(order, domain) if order.cancel_cause != "customer" else None
            dispatcher.utter_message(response=why or "utter_cancel_already_cancelled", order_number=n)
            return [SlotSet("confirmed", None)]
        if order.status not in BEFORE_SHIPPING:
            dispatcher.utter_message(response="utter_cancel_not_possible_shipped", order_number=n,
                                     return_days=ctx.seller.return_window_days)
            return [SlotSet("confirmed", None)]
        confirmed = tracker.get_slot("confirmed")
        if confirmed is None:
            # Cancelling cannot be undone: ask first, the engine re-runs us with `confirmed` set.
            dispatcher.utter_message(response="utter_confirm_cancel", order_number=n,
                                     total=money(order.total, order.currency))
            return []
        if not confirmed:
            dispatcher.utter_message(response="utter_cancel_kept", order_number=n)
            return [SlotSet("confirmed", None)]
        try:
            cancelled = await ctx.store.cancel_order(n, "requested by the shopper in chat")
        except ActionNotAllowed as exc:
            # The warehouse shipped it between the question and the answer.
            if exc.reason == "already_cancelled":
                dispatcher.utter_message(response="utter_cancel_already_cancelled", order_number=n)
            else:
                dispatcher.utter_message(response="utter_cancel_not_possible_shipped", order_number=n,
                                         return_days=ctx.seller.return_window_days)
            return [SlotSet("confirmed", None)]
        refund = _latest_refund(cancelled)
        if order.status == "pending" or refund is None:
            dispatcher.utter_message(response="utter_cancel_done_unpaid", order_number=n)
        else:
            dispatcher.utter_message(response="utter_cancel_done", order_number=n,
                                     amount=money(refund.amount, refund.currency))
        return [SlotSet("confirmed", None)]


_POSTAL_CITY = re.compile(
    r"^\s*(?P<postal>\d{3}-\d{4}|\d{5}-\d{3}|\d{4,6}|\d{4} ?[A-Z]{2}|[A-Z]\d[A-Z] ?\d[A-Z]\d"
    r"|[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2})\s+(?P<city>.+?)\s*$"
)
_CITY_POSTAL = re.compile(
    r"^\s*(?P<city>[^\d]+?),?\s+(?:(?P<region>[A-Z]{2})\s+)?(?P<postal>\d{5}(?:-\d{4})?|[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}"
    r"|[A-Z]\d[A-Z] ?\d[A-Z]\d)\s*$"
)
# A label before the address ("Neue Adresse: Hauptstraße 5, …", "my new address is …"): no part of the street.
_ADDRESS_LABEL = re.compile(
    r"^\s*(?:(?:my|the|meine|die|mi|la|ma|il|o|mijn|het)\s+)?(?:(?:new|neue|nueva|nouvelle|nuovo|novo|nova|nieuwe)\s+)?"
    r"(?:(?:delivery|shipping)\s+)?(?:address|adresse|lieferadresse|anschrift|direcci[óo]n(?:\s+de\s+env[íi]o)?"
    r"|indirizzo|endere[çc]o|adres|住所|新しい住所|新地址|地址)"
    r"(?:\s+(?:de\s+livraison|di\s+consegna|de\s+entrega))?(?:\s*[:：-]\s*|\s+(?:is|ist|es|est|è|é|is)\s+|は|是)",
    re.IGNORECASE,
)
# A US state or Canadian province code standing where the city would ("San Francisco, CA 94105").
_REGION_CODE = re.compile(r"[A-Z]{2}")


# A Japanese address as Japanese shoppers write it, with no commas: "〒150-0041 東京都渋谷区神南1-2-3 山田ビル4F".
_JP_POSTAL = re.compile(r"〒?\s*(?P<postal>\d{3})[-－ー‐]?(?P<rest>\d{4})(?!\d)")
_JP_PLACE = re.compile(r"(?P<region>東京都|北海道|京都府|大阪府|[^\s\d、，,]{2,3}県)?(?P<city>[^\s\d、，,]+?[市区町村郡])"
                       r"(?P<street>[^\s、，,]*\d[^\s、，,]*)")
_JP_NAME_TITLE = re.compile(r"\s*(様|さま|殿)$")
# A part of the address that is a building, not a name: a floor or room number, or ビル/マンション/号.
_JP_BUILDING = re.compile(r"\d|ビル|マンション|ハイツ|アパート|コーポ|レジデンス|タワー|号")


def _japanese_address(value: str, current: Address) -> Address | None:
    """A Japanese address written the Japanese way (postcode, prefecture, city, block numbers, building; the
    name before or after), or None. 「東京都渋谷区神南1-2-3 山田ビル4F 150-0041」 was asked for again and again."""
    text = re.sub(r"\s*(です|でございます)?\s*[。.]?\s*$", "", unicodedata.normalize("NFKC", value))
    postal = _JP_POSTAL.search(text)
    if postal is None:
        return None
    text = (text[:postal.start()] + " " + text[postal.end():]).strip()
    place = _JP_PLACE.search(text)
    if place is None:
        return None
    before = [p for p in re.split(r"[\s、，,]+", text[:place.start()]) if p]
    after = [p for p in re.split(r"[\s、，,]+", text[place.end():]) if p]
    # The name: the parts before the address, or the last parts after it, that are no building: "田中 太郎様" after
    # the block numbers is one name.
    tail = len(after)
    while tail > 0 and not _JP_BUILDING.search(after[tail - 1]):
        tail -= 1
    named_first = [p for p in before if not _JP_BUILDING.search(p)]
    name_parts, line2_parts = (named_first, after) if named_first else (after[tail:], after[:tail])
    name = _JP_NAME_TITLE.sub("", " ".join(name_parts)) if name_parts else current.name
    line2 = " ".join(line2_parts)
    return Address(name=name, line1=place.group("street"), line2=line2, city=place.group("city"),
                   postal_code=f"{postal.group('postal')}-{postal.group('rest')}", region=place.group("region") or "",
                   country="JP")


def parse_address(value: Any, order: Order) -> Address | None:
    """An Address from the `new_address` slot, or None when it lacks a street, postcode or city."""
    current = order.shipping_address
    if isinstance(value, Mapping):
        try:
            return Address(name=str(value.get("name") or current.name), line1=str(value["line1"]),
                           line2=str(value.get("line2") or ""), city=str(value["city"]),
                           postal_code=str(value["postal_code"]), region=str(value.get("region") or ""),
                           country=str(value.get("country") or current.country).upper())
        except KeyError:
            return None
    if not isinstance(value, str):
        return None
    value = _ADDRESS_LABEL.sub("", value, count=1)
    parts = [p.strip() for p in re.split(r"[,\n;]+", value) if p.strip()]
    postal = city = None
    region = ""
    rest: list[str] = []
    for part in parts:
        m = _POSTAL_CITY.match(part) or _CITY_POSTAL.match(part)
        if m and postal is None:
            postal, city = m.group("postal"), m.group("city")
            region = (m.groupdict().get("region") or "").strip()
            if _REGION_CODE.fullmatch(city.strip()) and rest and not re.search(r"\d", rest[-1]):
                # "…, San Francisco, CA 94105": the state code, with the city in the part before it.
                region, city = city.strip(), rest.pop()
        else:
            rest.append(part)
    street = next((p for p in rest if re.search(r"\d", p)), None)
    if not (postal and city and street):
        return _japanese_address(value, current)  # None unless it has a Japanese postcode and a 市/区/町/村/郡
    before = rest[: rest.index(street)]
    name = before[0] if before else current.name
    after = rest[rest.index(street) + 1:]
    country_part = next((p for p in after if resolve_country(p)), None)
    country = resolve_country(country_part) if country_part else current.country
    line2 = ", ".join(p for p in after if p != country_part)
    return Address(name=name, line1=street, line2=line2, city=city, postal_code=postal, region=region,
                   country=(country or current.country).upper())


def _address_closed(why: str, order: Order, domain: dict[str, Any]) -> str:
    """Why an order's address cannot change, as a sentence of the domain: a store's status word ("cancelled",
    "already_shipped") is no word to show a shopper in any language."""
    state = None
    if why in ("cancelled", "already_cancelled"):
        state = "cancelled"
    elif why in ("delivered", "returned") or (why == "refunded" and order.latest_shipment is not None):
        state = "delivered"  # a refund before shipping gets the general sentence
    specific = f"utter_address_change_{state}"
    return specific if state and _has_response(domain, specific) else "utter_address_change_closed"


class ActionChangeAddress(OrderAction):
    def name(self) -> str:
        return "action_change_address"

    async def act(self, order: Order, dispatcher: CollectingDispatcher, tracker: Tracker,
                  ctx: registry.ActionContext, domain: dict[str, Any]) -> Events:
        n = order.number
        shipment = order.latest_shipment
        if order.status not in BEFORE_SHIPPING:
            if shipment is not None and order.status in ("shipped", "in_transit"):
                dispatcher.utter_message(response="utter_address_change_not_possible", order_number=n,
                                         carrier=shipment.carrier, tracking_number=shipment.tracking_number,
                                         tracking_url=shipment.tracking_url)
            else:
                dispatcher.utter_message(response=_address_closed(order.status, order, domain), order_number=n)
            return [SlotSet("new_address", None)]
        address = parse_address(tracker.get_slot("new_address"), order)
        if address is None:
            dispatcher.utter_message(response="utter_ask_new_address", order_number=n)
            return [SlotSet("new_address", None)]
        try:
            updated = await ctx.store.change_address(n, address)
        except ActionNotAllowed as exc:
            if exc.reason == "country_change":
                dispatcher.utter_message(response="utter_address_country_change",
                                         country=order.shipping_address.country)
                return [SlotSet("new_address", None), *_handoff("country_change")]
            dispatcher.utter_message(response=_address_closed(exc.reason, order, domain), order_number=n)
            return [SlotSet("new_address", None)]
        dispatcher.utter_message(response="utter_address_changed", order_number=n,
                                 address=updated.shipping_address.one_line())
        return [SlotSet("new_address", None)]


REFUND_OVERDUE = "utter_refund_status_overdue"
REFUND_OVERDUE_DAYS = 14  # a pending refund is overdue after this many days (banks take 5-10 business days)


class ActionRefundStatus(OrderAction):
    def name(self) -> str:
        return "action_refund_status"

    async def act(self, order: Order, dispatcher: CollectingDispatcher, tracker: Tracker,
                  ctx: registry.ActionContext, domain: dict[str, Any]) -> Events:
        refunds = await ctx.store.refunds(order.number)
        if not refunds:
            dispatcher.utter_message(response="utter_refund_status_none", order_number=order.number)
            return []
        pending = [r for r in refunds if r.status == "pending"]
        refund = max(pending or refunds, key=lambda r: r.created_at)
        overdue = (refund.status == "pending" and _has_response(domain, REFUND_OVERDUE)
                   and ctx.today() > refund.created_at.date() + timedelta(days=REFUND_OVERDUE_DAYS))
        if overdue:
            # "It usually reaches your account within 5-10 days" said seven weeks on is no answer: a person
            # checks with the payment provider.
            dispatcher.utter_message(response=REFUND_OVERDUE, order_number=order.number,
                                     amount=money(refund.amount, refund.currency),
                                     refund_date=refund.created_at.date().isoformat())
            return _handoff("refund_overdue")
        if refund.status == "pending":
            dispatcher.utter_message(response="utter_refund_status_pending", order_number=order.number,
                                     amount=money(refund.amount, refund.currency),
                                     refund_date=refund.created_at.date().isoformat())
        else:
            when = refund.processed_at or refund.created_at
            dispatcher.utter_message(response="utter_refund_status_processed", order_number=order.number,
                                     amount=money(refund.amount, refund.currency),
                                     refund_date=when.date().isoformat())
        return []


class ActionSendInvoice(OrderAction):
    def name(self) -> str:
        return "action_send_invoice"

    async def act(self, order: Order, dispatcher: CollectingDispatcher, tracker: Tracker,
                  ctx: registry.ActionContext, domain: dict[str, Any]) -> Events:
        if order.status == "pending" or (order.status == "cancelled" and not order.refunds):
            dispatcher.utter_message(response="utter_invoice_not_available", order_number=order.number)
            return []
        pdf = await ctx.store.invoice_pdf(order.number)
        issued = ctx.invoices.save(pdf)
        url = ctx.link(issued.url_path)
        # `attachment` lets channels that can send files (email, WhatsApp documents) attach it.
        dispatcher.utter_message(response="utter_invoice_ready", order_number=order.number, invoice_url=url,
                                 attachment=url)
        return [SlotSet("invoice_url", url)]


WINDOW_PASSED = "utter_return_window_passed"
NOTE_ADDED = "utter_return_note_added"


class ActionReturnRequest(OrderAction):
    def name(self) -> str:
        return "action_return_request"

    async def act(self, order: Order, dispatcher: CollectingDispatcher, tracker: Tracker,
                  ctx: registry.ActionContext, domain: dict[str, Any]) -> Events:
        reason = tracker.get_slot("return_reason") or "not given"
        opened = tracker.get_slot("return_id") if tracker.get_slot("return_order") == order.number else None
        note = tracker.get_slot("return_note")
        if opened and note and _has_response(domain, NOTE_ADDED):
            # Why the items come back, told after the return was opened ("it's too small"): it goes with the
            # return this conversation opened, not into a second return.
            await ctx.store.add_return_note(order.number, str(opened), str(note))
            dispatcher.utter_message(response=NOTE_ADDED, order_number=order.number, return_id=opened)
            return [SlotSet("return_note", None)]
        delivered = order.latest_shipment.delivered_at if order.latest_shipment else None
        window = ctx.seller.return_window_days
        if (delivered is not None and window > 0 and ctx.today() > delivered.date() + timedelta(days=window)
                and _has_response(domain, WINDOW_PASSED)):
            # The seller's return window is over: no return label and no refund promised; a faulty item may
            # still be a warranty case, which a person decides.
            dispatcher.utter_message(response=WINDOW_PASSED, order_number=order.number,
                                     delivered=delivered.date().isoformat(), return_days=window)
            return []
        if opened:
            # Asked again in the same conversation: the return already open, not a second request to the store.
            dispatcher.utter_message(response="utter_return_created", order_number=order.number, return_id=opened,
                                     return_address=ctx.seller.return_address_for(order.shipping_address.country),
                                     return_days=window)
            return []
        try:
            created = await ctx.store.create_return(order.number, None, str(reason))
        except ActionNotAllowed as exc:
            if exc.reason in ("not_shipped_yet",):
                dispatcher.utter_message(response="utter_return_not_possible_not_shipped",
                                         order_number=order.number)
            else:
                dispatcher.utter_message(response="utter_return_not_possible_closed", order_number=order.number)
            return []
        dispatcher.utter_message(response="utter_return_created", order_number=order.number,
                                 return_id=created.id, return_address=created.return_address,
                                 return_days=ctx.seller.return_window_days)
        return [SlotSet("return_id", created.id), SlotSet("return_order", order.number)]


class ActionChangeItems(OrderAction):
    """A size, colour, quantity or item changed in an order: the store's APIs have no safe way to swap an item and
    settle the price difference, so before shipping a person does it; after shipping it is a return."""

    def name(self) -> str:
        return "action_change_items"

    async def act(self, order: Order, dispatcher: CollectingDispatcher, tracker: Tracker,
                  ctx: registry.ActionContext, domain: dict[str, Any]) -> Events:
        n = order.number
        if order.status in BEFORE_SHIPPING:
            dispatcher.utter_message(response="utter_change_items_passed", order_number=n)
            return _handoff("change_items")
        if order.status in RETURNABLE:
            dispatcher.utter_message(response="utter_change_items_shipped", order_number=n,
                                     return_days=ctx.seller.return_window_days)
        else:  # cancelled, returned, refunded
            dispatcher.utter_message(response="utter_change_items_closed", order_number=n)
        return []


MISSING_IN_TRANSIT = "utter_missing_items_in_transit"


class ActionMissingItems(OrderAction):
    """Items missing from a parcel: whether anything was sent is the store's to say; what was packed, a person
    checks with the warehouse."""

    def name(self) -> str:
        return "action_missing_items"

    async def act(self, order: Order, dispatcher: CollectingDispatcher, tracker: Tracker,
                  ctx: registry.ActionContext, domain: dict[str, Any]) -> Events:
        if order.status in BEFORE_SHIPPING:
            dispatcher.utter_message(response="utter_missing_items_not_shipped", order_number=order.number)
            return []
        if order.status == "cancelled" and order.latest_shipment is None:
            dispatcher.utter_message(response="utter_missing_items_cancelled", order_number=order.number)
            return []
        if order.status in ("shipped", "in_transit") and _has_response(domain, MISSING_IN_TRANSIT):
            # Not delivered yet: where the parcel is comes first ("my parcel is stuck in customs", read as missing
            # items, was told "I'm sorry something is missing"); a person still looks, as part of it may have come.
            await ActionOrderStatus().act(order, dispatcher, tracker, ctx, domain)
            dispatcher.utter_message(response=MISSING_IN_TRANSIT, order_number=order.number)
            return _handoff("missing_items")
        dispatcher.utter_message(response="utter_missing_items_passed", order_number=order.number)
        return _handoff("missing_items")


class ActionShippingEstimate(Action):
    def name(self) -> str:
        return "action_shipping_estimate"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> Events:
        raw = tracker.get_slot("country")
        country = resolve_country(raw)
        if country is None:
            dispatcher.utter_message(response="utter_ask_country")
            return [SlotSet("country", None)]
        ctx = registry.get_context()
        try:
            estimate = await ctx.store.shipping_estimate(country)
        except ActionNotAllowed:
            dispatcher.utter_message(response="utter_shipping_not_available", country=country)
            return [SlotSet("country", country)]
        except StoreUnavailable:
            dispatcher.utter_message(response="utter_store_unavailable")
            return _handoff("store_unavailable")
        standard = min(estimate.options, key=lambda o: (o.price, o.max_days))
        express = [o for o in estimate.options if o is not standard and o.max_days < standard.max_days]
        common = {"country": country, "standard_carrier": standard.carrier, "standard_min": standard.min_days,
                  "standard_max": standard.max_days}
        if express:
            fast = min(express, key=lambda o: o.max_days)
            dispatcher.utter_message(response="utter_shipping_estimate", **common, express_carrier=fast.carrier,
                                     express_min=fast.min_days, express_max=fast.max_days,
                                     express_price=money(fast.price, fast.currency))
        else:
            dispatcher.utter_message(response="utter_shipping_estimate_standard_only", **common)
        return [SlotSet("country", country)]


class ActionHumanHandoff(Action):
    def name(self) -> str:
        return "action_human_handoff"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> Events:
        dispatcher.utter_message(response="utter_handoff")
        return _handoff("shopper_asked")


ALL_ACTIONS: tuple[type[Action], ...] = (
    ActionOrderStatus, ActionCancelOrder, ActionChangeAddress, ActionRefundStatus, ActionSendInvoice,
    ActionReturnRequest, ActionChangeItems, ActionMissingItems, ActionShippingEstimate, ActionHumanHandoff,
)
