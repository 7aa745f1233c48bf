"""Each order action's outcomes, run in-process through rasa-sdk's executor on the demo store and
rendered in the shopper's language, the way the engine runs them."""

from __future__ import annotations

import asyncio
import gc
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from actions import registry
from actions.demo_store import DemoStore
from actions.invoices import InvoiceStore, render_invoice_pdf
from actions.order_actions import parse_address
from actions.responses import RenderedResponse, ResponseCatalog
from actions.runner import ActionCall, ActionResult, ActionRunner, load_domain
from actions.seller import SellerProfile
from actions.store import Address, cancel_cause
from tests.actions.conftest import first_order
from tests.actions.pdftext import pdf_text
from tests.conftest import DEMO_PROJECT

DOMAIN = load_domain(DEMO_PROJECT / "domain.yml")
CATALOG = ResponseCatalog.from_dict(DOMAIN["responses"])
GERMAN_MONTHS = ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September",
                 "Oktober", "November", "Dezember"]


class Shopper:
    """Runs actions for one shopper like the engine: slots in, events and rendered replies out."""

    def __init__(self, runner: ActionRunner, locale: str) -> None:
        self.runner = runner
        self.locale = locale
        self.slots: dict[str, Any] = {}

    async def run(self, action: str, **slots: Any) -> tuple[ActionResult, list[RenderedResponse]]:
        self.slots.update(slots)
        result = await self.runner.run(ActionCall(action=action, sender_id="shopper-1", slots=self.slots))
        self.slots.update(result.slots)
        return result, result.render(CATALOG, self.locale)


@pytest.fixture
async def runner(demo_store: DemoStore, seller: SellerProfile, tmp_path: Path,
                 demo_data: dict[str, Any]) -> AsyncIterator[ActionRunner]:
    # A day on which no demo parcel is late yet (the late ones have their own test).
    due = [date.fromisoformat(s["estimated_delivery"]) for o in demo_data["orders"] for s in o["shipments"]]
    registry.configure(registry.ActionContext(store=demo_store, seller=seller,
                                              invoices=InvoiceStore(tmp_path / "invoices"),
                                              public_url="https://help.lumenloom.example",
                                              today=lambda: min(due)))
    yield ActionRunner(DOMAIN)
    registry.reset()


def text(replies: list[RenderedResponse]) -> str:
    return "\n".join(r.text for r in replies)


async def test_order_status_in_german_has_carrier_tracking_link_and_german_date(
    runner: ActionRunner, demo_data: dict[str, Any]
) -> None:
    raw = first_order(demo_data, "in_transit", with_shipment=True)
    shipment = raw["shipments"][0]
    result, replies = await Shopper(runner, "de").run("action_order_status", verified_order=raw["number"])
    assert result.response_names == ["utter_order_status_in_transit"]
    eta = date.fromisoformat(shipment["estimated_delivery"])
    reply = text(replies)
    assert reply.startswith(f"Bestellung {raw['number']} ist mit {shipment['carrier']} unterwegs")
    assert shipment["tracking_number"] in reply and shipment["tracking_url"] in reply
    assert f"{eta.day}. {GERMAN_MONTHS[eta.month - 1]} {eta.year}" in reply
    assert not replies[0].fallback_used


async def test_a_parcel_still_travelling_after_its_estimated_day_is_called_late(
    runner: ActionRunner, demo_data: dict[str, Any]
) -> None:
    raw = first_order(demo_data, "in_transit", with_shipment=True)
    shipment = raw["shipments"][0]
    eta = date.fromisoformat(shipment["estimated_delivery"])
    context = registry.get_context()
    for today, expected in ((eta, "utter_order_status_in_transit"), (eta + timedelta(days=1), "utter_order_status_late")):
        registry.configure(replace(context, today=lambda today=today: today))
        result, replies = await Shopper(runner, "de").run("action_order_status", verified_order=raw["number"])
        assert result.response_names == [expected], today
    reply = text(replies)
    assert "verspätet" in reply and f"{eta.day}. {GERMAN_MONTHS[eta.month - 1]} {eta.year}" in reply
    assert shipment["tracking_number"] in reply and shipment["tracking_url"] in reply
    _, replies = await Shopper(runner, "ja").run("action_order_status", verified_order=raw["number"])
    assert "遅れ" in replies[0].text and not replies[0].fallback_used
    # A project whose domain has no such response keeps the usual status.
    plain = {**DOMAIN, "responses": {k: v for k, v in DOMAIN["responses"].items() if k != "utter_order_status_late"}}
    result = await ActionRunner(plain).run(ActionCall(action="action_order_status", sender_id="s",
                                                      slots={"verified_order": raw["number"]}))
    assert result.response_names == ["utter_order_status_in_transit"]


async def test_order_status_in_japanese_uses_japanese_date(runner: ActionRunner, demo_data: dict[str, Any]) -> None:
    raw = first_order(demo_data, "shipped", with_shipment=True)
    shipment = raw["shipments"][0]
    _, replies = await Shopper(runner, "ja").run("action_order_status", verified_order=raw["number"])
    eta = date.fromisoformat(shipment["estimated_delivery"])
    assert f"{eta.year}年{eta.month}月{eta.day}日" in replies[0].text
    assert "配送中" in replies[0].text and shipment["tracking_url"] in replies[0].text


async def test_tracking_links_match_the_carrier(runner: ActionRunner, demo_data: dict[str, Any]) -> None:
    expected_hosts = {"UPS": "ups.com", "USPS": "usps.com", "FedEx": "fedex.com", "DHL": "dhl.com",
                      "Cainiao": "cainiao.com", "4PX": "4px.com", "Yanwen": "yw56.com.cn",
                      "YunExpress": "yuntrack.com", "China Post": "chinapost.com.cn"}
    seen = set()
    for raw in demo_data["orders"]:
        if raw["status"] != "in_transit" or not raw["shipments"]:
            continue
        carrier = raw["shipments"][0]["carrier"]
        if carrier in seen or carrier not in expected_hosts:
            continue
        seen.add(carrier)
        _, replies = await Shopper(runner, "en").run("action_order_status", verified_order=raw["number"])
        link = re.search(r"https://\S+?(?=\. )", replies[0].text)
        assert link is not None and expected_hosts[carrier] in link.group(0)
        assert raw["shipments"][0]["tracking_number"] in link.group(0)
    assert len(seen) >= 5


async def test_status_of_every_state_is_answered_without_missing_values(
    runner: ActionRunner, demo_data: dict[str, Any]
) -> None:
    for status in ("pending", "paid", "processing", "delivered", "cancelled", "returned", "refunded"):
        raw = first_order(demo_data, status)
        _, replies = await Shopper(runner, "fr").run("action_order_status", verified_order=raw["number"])
        assert len(replies) == 1 and raw["number"] in replies[0].text, status
        assert replies[0].missing_variables == (), status


@pytest.mark.parametrize(("reason", "locale", "response", "says"), [
    ("payment declined", "en", "utter_order_status_cancelled_declined", "no money was taken"),
    ("out of stock", "de", "utter_order_status_cancelled_inventory", "nicht mehr vorrätig"),
    ("customer request", "ja", "utter_order_status_cancelled_customer", "ご依頼"),
])
async def test_a_cancelled_order_says_why(runner: ActionRunner, demo_data: dict[str, Any], reason: str,
                                          locale: str, response: str, says: str) -> None:
    # "Why was my order cancelled?" was told "Any payment is refunded" even when the payment had been declined.
    raw = next(o for o in demo_data["orders"] if o["status"] == "cancelled" and o["cancel_reason"] == reason)
    result, replies = await Shopper(runner, locale).run("action_order_status", verified_order=raw["number"])
    assert result.response_names == [response]
    assert says in replies[0].text and raw["number"] in replies[0].text
    # A project that words no reasons keeps the plain reply.
    plain = {**DOMAIN, "responses": {k: v for k, v in DOMAIN["responses"].items() if k != response}}
    result = await ActionRunner(plain).run(ActionCall(action="action_order_status", sender_id="s",
                                                      slots={"verified_order": raw["number"]}))
    assert result.response_names == ["utter_order_status_cancelled"]


def test_store_reasons_map_to_what_a_shopper_is_told() -> None:
    assert [cancel_cause(r) for r in ("DECLINED", "payment declined", "INVENTORY", "out of stock", "CUSTOMER",
                                      "requested by the shopper in chat", "FRAUD", "STAFF", "OTHER", None)] == [
        "declined", "declined", "inventory", "inventory", "customer", "customer", None, None, None, None]


async def test_asking_to_cancel_an_order_the_shop_cancelled_says_why(
    runner: ActionRunner, demo_data: dict[str, Any]
) -> None:
    raw = next(o for o in demo_data["orders"] if o["status"] == "cancelled" and o["cancel_reason"] == "payment declined")
    result, replies = await Shopper(runner, "es").run("action_cancel_order", verified_order=raw["number"])
    assert result.response_names == ["utter_order_status_cancelled_declined"]
    assert "rechazado" in replies[0].text
    mine = next(o for o in demo_data["orders"] if o["status"] == "cancelled" and o["cancel_reason"] == "customer request")
    result, _ = await Shopper(runner, "es").run("action_cancel_order", verified_order=mine["number"])
    assert result.response_names == ["utter_cancel_already_cancelled"]


async def test_without_proof_the_action_asks_and_reveals_nothing(
    runner: ActionRunner, demo_data: dict[str, Any]
) -> None:
    raw = first_order(demo_data, "in_transit", with_shipment=True)
    shopper = Shopper(runner, "en")
    result, replies = await shopper.run("action_order_status")
    assert result.response_names == ["utter_ask_order_number"]
    result, replies = await shopper.run("action_order_status", order_number=raw["number"])
    assert result.response_names == ["utter_ask_email_or_phone"]
    assert raw["shipments"][0]["tracking_number"] not in text(replies)


async def test_cancel_before_shipping_asks_then_cancels(
    runner: ActionRunner, demo_store: DemoStore, demo_data: dict[str, Any]
) -> None:
    raw = first_order(demo_data, "paid")
    shopper = Shopper(runner, "es")
    result, replies = await shopper.run("action_cancel_order", verified_order=raw["number"])
    assert result.response_names == ["utter_confirm_cancel"]
    assert [b["payload"] for b in replies[0].buttons] == ["/affirm", "/deny"]
    assert (await demo_store.get_order(raw["number"])).status == "paid"
    result, replies = await shopper.run("action_cancel_order", confirmed=True)
    assert result.response_names == ["utter_cancel_done"]
    assert replies[0].text.startswith(f"Hecho: el pedido {raw['number']} está cancelado")
    assert result.slots["confirmed"] is None
    assert (await demo_store.get_order(raw["number"])).status == "cancelled"


async def test_cancel_declined_keeps_the_order(
    runner: ActionRunner, demo_store: DemoStore, demo_data: dict[str, Any]
) -> None:
    raw = first_order(demo_data, "processing")
    result, _ = await Shopper(runner, "en").run("action_cancel_order", verified_order=raw["number"],
                                                 confirmed=False)
    assert result.response_names == ["utter_cancel_kept"]
    assert (await demo_store.get_order(raw["number"])).status == "processing"


async def test_cancel_after_shipping_explains_returns(
    runner: ActionRunner, demo_store: DemoStore, demo_data: dict[str, Any]
) -> None:
    raw = first_order(demo_data, "in_transit")
    result, replies = await Shopper(runner, "en").run("action_cancel_order", verified_order=raw["number"],
                                                       confirmed=True)
    assert result.response_names == ["utter_cancel_not_possible_shipped"]
    assert "return it within 30 days" in replies[0].text
    assert (await demo_store.get_order(raw["number"])).status == "in_transit"


@pytest.mark.parametrize(
    ("action", "status", "locale", "response", "handoff", "says"),
    [
        # "Can I change the size of my order?" read as an address change and asked for the new address.
        ("change_items", "processing", "en", "utter_change_items_passed", True, "hasn't shipped yet"),
        ("change_items", "paid", "de", "utter_change_items_passed", True, "noch nicht versendet"),
        ("change_items", "in_transit", "fr", "utter_change_items_shipped", False, "sous 30 jours"),
        ("change_items", "delivered", "ja", "utter_change_items_shipped", False, "30 日以内"),
        ("change_items", "cancelled", "es", "utter_change_items_closed", False, "cancelado"),
        # "Ich habe zwei Lampen bestellt, aber nur eine bekommen" got the fallback.
        ("missing_items", "processing", "en", "utter_missing_items_not_shipped", False, "hasn't shipped yet"),
        ("missing_items", "delivered", "ja", "utter_missing_items_passed", True, "担当チームに引き継ぎました"),
        ("missing_items", "cancelled", "fr", "utter_missing_items_cancelled", False, "aucun colis"),
        ("missing_items", "returned", "es", "utter_missing_items_passed", True, "falte algo"),
    ],
)
async def test_changed_or_missing_items_go_to_a_person_when_the_order_state_needs_one(
    runner: ActionRunner, demo_store: DemoStore, demo_data: dict[str, Any], action: str, status: str, locale: str,
    response: str, handoff: bool, says: str,
) -> None:
    raw = first_order(demo_data, status)
    result, replies = await Shopper(runner, locale).run(f"action_{action}", verified_order=raw["number"])
    assert result.response_names == [response]
    assert raw["number"] in replies[0].text and says in replies[0].text
    assert (result.slots.get("handoff_reason") == action) is handoff
    assert (await demo_store.get_order(raw["number"])).status == status  # the bot itself changes nothing


async def test_missing_items_of_an_order_still_on_its_way_say_where_it_is_first(
    runner: ActionRunner, demo_data: dict[str, Any]
) -> None:
    # "my parcel is stuck in customs" reads as missing items, and was told "I'm sorry something is missing".
    raw = first_order(demo_data, "in_transit", with_shipment=True)
    result, replies = await Shopper(runner, "de").run("action_missing_items", verified_order=raw["number"])
    assert result.response_names[0] in ("utter_order_status_in_transit", "utter_order_status_late")
    assert result.response_names[1:] == ["utter_missing_items_in_transit"]
    assert raw["shipments"][0]["tracking_url"] in replies[0].text
    assert "bereits" not in replies[1].text and "etwas fehlt" in replies[1].text
    assert result.slots.get("handoff_reason") == "missing_items"  # part of it may have come: a person still looks


async def test_a_change_of_items_without_proof_asks_and_reveals_nothing(runner: ActionRunner) -> None:
    result, replies = await Shopper(runner, "en").run("action_change_items", order_number="ND-100104")
    assert result.response_names == ["utter_ask_email_or_phone"] and "handoff_reason" not in result.slots


async def test_address_change_before_shipping(
    runner: ActionRunner, demo_store: DemoStore, demo_data: dict[str, Any]
) -> None:
    raw = first_order(demo_data, "pending", country="DE")
    shopper = Shopper(runner, "de")
    result, _ = await shopper.run("action_change_address", verified_order=raw["number"], new_address="bitte ändern")
    assert result.response_names == ["utter_ask_new_address"]
    result, replies = await shopper.run("action_change_address",
                                        new_address="Lena Weber, Schillerstraße 12, 2. OG, 04109 Leipzig")
    assert result.response_names == ["utter_address_changed"]
    address = (await demo_store.get_order(raw["number"])).shipping_address
    assert (address.name, address.line1, address.line2, address.postal_code, address.city, address.country) == (
        "Lena Weber", "Schillerstraße 12", "2. OG", "04109", "Leipzig", "DE")
    assert "Schillerstraße 12" in replies[0].text


async def test_address_change_after_shipping_points_to_the_carrier(
    runner: ActionRunner, demo_data: dict[str, Any]
) -> None:
    raw = first_order(demo_data, "in_transit", with_shipment=True)
    result, replies = await Shopper(runner, "en").run("action_change_address", verified_order=raw["number"],
                                                       new_address="1 Main St, Springfield, 62701")
    assert result.response_names == ["utter_address_change_not_possible"]
    assert raw["shipments"][0]["tracking_url"] in replies[0].text


@pytest.mark.parametrize(("status", "shipped", "locale", "response", "words"), [
    ("cancelled", False, "fr", "utter_address_change_cancelled", "a été annulée"),
    ("delivered", True, "de", "utter_address_change_delivered", "bereits zugestellt"),
    ("refunded", True, "en", "utter_address_change_delivered", "already been delivered"),
    ("refunded", False, "es", "utter_address_change_closed", "ya no se puede cambiar"),
])
async def test_an_address_that_can_no_longer_change_is_explained_in_the_shoppers_words(
    runner: ActionRunner, demo_data: dict[str, Any], status: str, shipped: bool, locale: str, response: str,
    words: str,
) -> None:
    # The store's status word ("cancelled", "already_shipped") was shown as is, in English, in any language.
    raw = next(o for o in demo_data["orders"] if o["status"] == status and bool(o["shipments"]) is shipped)
    result, replies = await Shopper(runner, locale).run("action_change_address", verified_order=raw["number"],
                                                         new_address="1 Main St, Springfield, 62701")
    assert result.response_names == [response]
    assert words in replies[0].text and raw["number"] in replies[0].text
    assert status not in replies[0].text


async def test_refund_status_pending_processed_and_none(runner: ActionRunner, demo_data: dict[str, Any]) -> None:
    shopper = Shopper(runner, "en")
    returned = first_order(demo_data, "returned")
    result, replies = await shopper.run("action_refund_status", verified_order=returned["number"])
    assert result.response_names == ["utter_refund_status_pending"]
    refunded = first_order(demo_data, "refunded")
    result, replies = await shopper.run("action_refund_status", verified_order=refunded["number"])
    assert result.response_names == ["utter_refund_status_processed"]
    processed = date.fromisoformat(refunded["refunds"][-1]["processed_at"][:10])
    assert processed.strftime("%B") in replies[0].text and str(processed.year) in replies[0].text
    paid = first_order(demo_data, "paid")
    result, _ = await shopper.run("action_refund_status", verified_order=paid["number"])
    assert result.response_names == ["utter_refund_status_none"]


async def test_refund_amount_formatted_in_the_shoppers_currency_style(
    runner: ActionRunner, demo_data: dict[str, Any]
) -> None:
    raw = first_order(demo_data, "refunded", country="JP")
    _, replies = await Shopper(runner, "ja").run("action_refund_status", verified_order=raw["number"])
    amount = int(raw["refunds"][-1]["amount"])
    assert f"￥{amount:,}" in replies[0].text


async def test_invoice_is_a_pdf_link_with_the_sellers_vat_number(
    runner: ActionRunner, demo_data: dict[str, Any], seller: SellerProfile
) -> None:
    raw = first_order(demo_data, "delivered", country="DE")
    result, replies = await Shopper(runner, "de").run("action_send_invoice", verified_order=raw["number"])
    url = result.slots["invoice_url"]
    match = re.fullmatch(r"https://help\.lumenloom\.example/files/invoices/([A-Za-z0-9_-]+)\.pdf", url)
    assert match is not None and url in replies[0].text
    pdf = registry.get_context().invoices.read(match.group(1))
    assert pdf is not None and pdf.startswith(b"%PDF-")
    content = pdf_text(pdf)
    assert "IM2760001234" in content  # the EU IOSS registration for a German shopper
    assert seller.legal_name in content and raw["number"] in content
    assert "VAT 19%" in content
    assert registry.get_context().invoices.read("../../etc/passwd") is None


async def test_no_invoice_for_unpaid_orders(runner: ActionRunner, demo_data: dict[str, Any]) -> None:
    raw = first_order(demo_data, "pending")
    result, _ = await Shopper(runner, "en").run("action_send_invoice", verified_order=raw["number"])
    assert result.response_names == ["utter_invoice_not_available"] and "invoice_url" not in result.slots


async def test_return_request_creates_a_return_with_instructions(
    runner: ActionRunner, demo_store: DemoStore, demo_data: dict[str, Any], seller: SellerProfile
) -> None:
    raw = first_order(demo_data, "delivered")
    result, replies = await Shopper(runner, "fr").run("action_return_request", verified_order=raw["number"],
                                                       return_reason="trop petit")
    return_id = result.slots["return_id"]
    assert re.fullmatch(r"RMA-[A-Z0-9]{6}", return_id)
    hub = seller.return_address_for(raw["shipping_address"]["country"])
    assert return_id in replies[0].text and hub in replies[0].text
    stored = await demo_store.returns(raw["number"])
    assert [(r.id, r.reason, r.status) for r in stored] == [(return_id, "trop petit", "requested")]
    assert {r.return_address for r in stored} == {hub}


async def test_a_reason_told_after_the_return_goes_with_it_and_opens_no_second_one(
    runner: ActionRunner, demo_store: DemoStore, demo_data: dict[str, Any]
) -> None:
    raw = first_order(demo_data, "delivered")
    shopper = Shopper(runner, "de")
    first, _ = await shopper.run("action_return_request", verified_order=raw["number"],
                                 return_reason="Ich möchte das zurückschicken")
    return_id = first.slots["return_id"]
    assert first.slots["return_order"] == raw["number"]
    result, replies = await shopper.run("action_return_request", return_note="die Farbe gefällt mir nicht")
    assert [r.name for r in replies] == ["utter_return_note_added"] and return_id in replies[0].text
    assert result.slots["return_note"] is None
    stored = await demo_store.returns(raw["number"])
    assert [(r.id, r.reason) for r in stored] == [
        (return_id, "Ich möchte das zurückschicken\ndie Farbe gefällt mir nicht")]
    # Asked for again in the same conversation: the same return and where to send it, not a second request.
    _, again = await shopper.run("action_return_request", return_reason="wie war das noch mit der Rücksendung?")
    assert [r.name for r in again] == ["utter_return_created"] and return_id in again[0].text
    assert len(await demo_store.returns(raw["number"])) == 1


@pytest.mark.parametrize(("days_pending", "response"), [(14, "utter_refund_status_pending"),
                                                       (15, "utter_refund_status_overdue")])
async def test_a_refund_pending_for_over_two_weeks_goes_to_a_person(
    runner: ActionRunner, demo_data: dict[str, Any], days_pending: int, response: str,
) -> None:
    # "It usually reaches your account within 5-10 days" was said of refunds pending for seven weeks.
    raw = next(o for o in demo_data["orders"] if any(r["status"] == "pending" for r in o["refunds"]))
    started = datetime.fromisoformat(next(r for r in raw["refunds"] if r["status"] == "pending")["created_at"]).date()
    registry.configure(replace(registry.get_context(), today=lambda: started + timedelta(days=days_pending)))
    result, _ = await Shopper(runner, "en").run("action_refund_status", verified_order=raw["number"])
    assert result.response_names == [response]
    assert (result.slots.get("handoff_reason") == "refund_overdue") is (response == "utter_refund_status_overdue")


@pytest.mark.parametrize(("days_after_delivery", "opens"), [(30, True), (31, False)])
async def test_a_return_is_opened_only_within_the_return_window(
    runner: ActionRunner, demo_store: DemoStore, demo_data: dict[str, Any], seller: SellerProfile,
    days_after_delivery: int, opens: bool,
) -> None:
    # Returns were opened, with a refund promised, months after delivery; the window is 30 days.
    raw = first_order(demo_data, "delivered")
    delivered = datetime.fromisoformat(raw["shipments"][-1]["delivered_at"]).date()
    context = registry.get_context()
    registry.configure(replace(context, today=lambda: delivered + timedelta(days=days_after_delivery)))
    result, replies = await Shopper(runner, "de").run("action_return_request", verified_order=raw["number"])
    assert seller.return_window_days == 30
    if opens:
        assert result.response_names == ["utter_return_created"] and result.slots["return_id"]
    else:
        assert result.response_names == ["utter_return_window_passed"] and "return_id" not in result.slots
        assert "Garantie" in replies[0].text and "RMA-" not in replies[0].text
        assert await demo_store.returns(raw["number"]) == []


@pytest.mark.parametrize(("country", "hub"), [
    ("US", "US Returns Hub"), ("DE", "EU Returns Hub"), ("FR", "EU Returns Hub"), ("GB", "UK Returns Hub"),
    ("JP", "JP Returns Hub"), ("AU", "AU Returns Hub"),
    ("CA", "US Returns Hub"),  # no hub of its own: the seller's return_address
])
async def test_a_return_goes_to_the_hub_of_the_orders_destination(
    runner: ActionRunner, demo_store: DemoStore, demo_data: dict[str, Any], country: str, hub: str
) -> None:
    """The returns article promises a local hub (USA, Germany, UK, Japan, Australia), never China or the far
    side of the world: a US shopper was told to send a rug to the Netherlands."""
    raw = first_order(demo_data, "delivered", country=country)
    _, replies = await Shopper(runner, "en").run("action_return_request", verified_order=raw["number"],
                                                 return_reason="too small")
    assert hub in replies[0].text
    others = {"US Returns Hub", "EU Returns Hub", "UK Returns Hub", "JP Returns Hub", "AU Returns Hub"} - {hub}
    assert not any(other in replies[0].text for other in others)
    pending = first_order(demo_data, "pending")
    result, _ = await Shopper(runner, "fr").run("action_return_request", verified_order=pending["number"])
    assert result.response_names == ["utter_return_not_possible_not_shipped"]


async def test_shipping_estimate_by_country_name_in_any_language(runner: ActionRunner) -> None:
    result, replies = await Shopper(runner, "de").run("action_shipping_estimate", country="Japon")
    assert result.slots["country"] == "JP"
    assert replies[0].text.startswith("Lieferziel Japan: Standardversand mit Yanwen dauert 5–9 Werktage")
    assert "1.900" in replies[0].text  # express price in yen, German number format
    result, replies = await Shopper(runner, "zh").run("action_shipping_estimate", country="Brasil")
    assert result.response_names == ["utter_shipping_estimate_standard_only"] and "巴西" in replies[0].text
    result, _ = await Shopper(runner, "en").run("action_shipping_estimate", country="Narnia")
    assert result.response_names == ["utter_ask_country"]
    result, replies = await Shopper(runner, "en").run("action_shipping_estimate", country="South Korea")
    assert result.response_names == ["utter_shipping_not_available"] and "South Korea" in replies[0].text


@pytest.mark.parametrize(("language", "country", "expected"), [
    ("en", "US", "Delivery to the United States: standard shipping"),
    ("en", "NL", "Delivery to the Netherlands: standard shipping"),
    ("en", "Germany", "Delivery to Germany: standard shipping"),
    # No preposition that would have to agree with the name ("nach Vereinigte Staaten", "em Estados Unidos").
    ("de", "US", "Lieferziel Vereinigte Staaten: Standardversand"),
    ("it", "GB", "Destinazione Regno Unito: la spedizione standard"),
    ("pt", "US", "Destino Estados Unidos: o envio normal"),
    ("nl", "US", "Bestemming Verenigde Staten: standaard"),
])
async def test_shipping_estimate_names_the_country_the_way_the_language_needs(
        runner: ActionRunner, language: str, country: str, expected: str) -> None:
    _, replies = await Shopper(runner, language).run("action_shipping_estimate", country=country)
    assert replies[0].text.startswith(expected), replies[0].text


async def test_human_handoff_asks_the_engine_for_a_person(runner: ActionRunner) -> None:
    result, replies = await Shopper(runner, "zh").run("action_human_handoff")
    assert result.handoff_reason == "shopper_asked" and "人工" in replies[0].text


async def test_store_down_gives_an_honest_message_and_a_handoff(
    seller: SellerProfile, tmp_path: Path, demo_data: dict[str, Any]
) -> None:
    # A database that cannot be opened: the directory does not exist.
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'store.db'}")
    registry.configure(registry.ActionContext(store=DemoStore(async_sessionmaker(engine), seller), seller=seller,
                                              invoices=InvoiceStore(tmp_path / "inv")))
    try:
        raw = first_order(demo_data, "paid")
        result, replies = await Shopper(ActionRunner(DOMAIN), "de").run("action_order_status",
                                                                          verified_order=raw["number"])
    finally:
        registry.reset()
        await engine.dispose()
        # aiosqlite's half-opened connection stops its worker thread when collected: let that happen
        # while this test's event loop still runs.
        gc.collect()
        await asyncio.sleep(0.05)
    assert result.response_names == ["utter_store_unavailable"]
    assert result.handoff_reason == "store_unavailable"
    assert "Bestellsystem ist gerade nicht erreichbar" in replies[0].text


async def test_invoice_for_a_japanese_address_is_a_valid_pdf(
    demo_store: DemoStore, demo_data: dict[str, Any], seller: SellerProfile
) -> None:
    raw = first_order(demo_data, "delivered", country="JP")
    order = await demo_store.get_order(raw["number"])
    japanese = replace(order, shipping_address=Address(name="佐藤 結衣", line1="丸の内1-2-3", city="千代田区",
                                                       postal_code="100-0005", region="東京都", country="JP"))
    pdf = render_invoice_pdf(japanese, seller)
    assert pdf.startswith(b"%PDF-") and b"HeiseiKakuGo-W5" in pdf
    text = pdf_text(pdf)
    assert seller.vat_number_for("JP") in text and "丸の内1-2-3" in text


@pytest.mark.parametrize(("typed", "line"), [
    # Written the Japanese way, with no commas: it was asked for again and again.
    ("東京都渋谷区神南1-2-3 山田ビル4F 150-0041", "佐藤 結衣, 〒150-0041 東京都渋谷区神南1-2-3 山田ビル4F, JP"),
    ("〒150-0041 東京都渋谷区神南1-2-3 山田ビル4F", "佐藤 結衣, 〒150-0041 東京都渋谷区神南1-2-3 山田ビル4F, JP"),
    ("山田花子 〒150-0041 東京都渋谷区神南1-2-3", "山田花子, 〒150-0041 東京都渋谷区神南1-2-3, JP"),
    ("〒530-0001 大阪府大阪市北区梅田３－１－１ 田中 太郎様", "田中 太郎, 〒530-0001 大阪府大阪市北区梅田3-1-1, JP"),
    ("新しい住所は〒060-0001 北海道札幌市中央区北1条西2丁目1番地です。",
     "佐藤 結衣, 〒060-0001 北海道札幌市中央区北1条西2丁目1番地, JP"),
])
def test_a_japanese_address_written_the_japanese_way_is_read(typed: str, line: str) -> None:
    order = SimpleNamespace(shipping_address=Address("佐藤 結衣", "丸の内1-2-3", "千代田区", "100-0005", "JP",
                                                     region="東京都"))
    address = parse_address(typed, order)  # type: ignore[arg-type]
    assert address is not None and address.country == "JP"
    assert address.one_line() == line
    assert parse_address("東京都渋谷区神南", order) is None  # no postcode, no block number: asked again  # type: ignore[arg-type]


@pytest.mark.parametrize(("typed", "country", "line", "region"), [
    # The state code stood where the town would: city "CA", the town itself taken as a second address line.
    ("500 Market St, San Francisco, CA 94105", "US", "500 Market St, San Francisco, CA 94105, US", "CA"),
    ("12 Oak Street, Springfield IL 62701", "US", "12 Oak Street, Springfield, IL 62701, US", "IL"),
    ("250 Yonge St, Toronto, ON M5B 2L7", "CA", "250 Yonge St, Toronto, ON M5B 2L7, CA", "ON"),
    ("10 Downing Street, London SW1A 2AA", "GB", "10 Downing Street, London, SW1A 2AA, GB", ""),
    ("Schillerstraße 12, 2. OG, 04109 Leipzig", "DE", "Schillerstraße 12, 2. OG, 04109 Leipzig, DE", ""),
    # A label before the address is no part of the street ("Neue Adresse: Hauptstraße 5" was the new line1).
    ("Neue Adresse: Hauptstraße 5, 10115 Berlin", "DE", "Hauptstraße 5, 10115 Berlin, DE", ""),
    ("my new address is 12 Oak Street, Springfield IL 62701", "US", "12 Oak Street, Springfield, IL 62701, US", "IL"),
    ("Nouvelle adresse de livraison : 3 rue de la Paix, 75002 Paris", "FR", "3 rue de la Paix, 75002 Paris, FR", ""),
    ("il nuovo indirizzo è Via Roma 12, 00184 Roma", "IT", "Via Roma 12, 00184 Roma, IT", ""),
])
def test_a_typed_address_is_read_and_written_the_way_its_country_writes_it(
        typed: str, country: str, line: str, region: str) -> None:
    order = SimpleNamespace(shipping_address=Address("Kim Lee", "1 Old Road", "Old Town", "11111", country))
    address = parse_address(typed, order)  # type: ignore[arg-type]
    assert address is not None
    assert address.region == region
    assert address.one_line() == f"Kim Lee, {line}"
