"""Generates the demo store's orders (examples/demo-store/store/orders.json) from a fixed seed.

Run `python -m actions.demo_data` to regenerate; the output is committed, so the demo and the tests
see the same orders on every machine.
"""

from __future__ import annotations

import argparse
import json
import random
import string
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import phonenumbers

from actions.carriers import s10_check_digit, tracking_url
from actions.seller import SellerProfile

SEED = 20261125
ORDER_COUNT = 240
FIRST_NUMBER = 100101
# Orders are placed relative to this moment so that states and dates fit together.
REFERENCE_NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "examples" / "demo-store" / "store" / "orders.json"
SELLER_YML = ROOT / "examples" / "demo-store" / "store" / "seller.yml"

COUNTRIES: dict[str, dict[str, Any]] = {
    "US": {"currency": "USD", "rate": "1", "locale": "en", "weight": 5,
           "first": ["Emma", "Liam", "Olivia", "Noah", "Ava", "Mason", "Sophia", "Ethan"],
           "last": ["Johnson", "Miller", "Davis", "Garcia", "Wilson", "Moore"],
           "cities": [("New York", "NY", "10001"), ("Austin", "TX", "73301"), ("Seattle", "WA", "98101"),
                      ("Chicago", "IL", "60601")],
           "streets": ["Maple Avenue", "Oak Street", "Pine Road", "5th Avenue"],
           "carriers": ["UPS", "USPS", "FedEx", "Cainiao", "YunExpress"]},
    "CA": {"currency": "CAD", "rate": "1.36", "locale": "en", "weight": 2,
           "first": ["Chloe", "Lucas", "Maya", "Owen"], "last": ["Tremblay", "Roy", "Campbell", "Singh"],
           "cities": [("Toronto", "ON", "M5V 2T6"), ("Montréal", "QC", "H2X 1Y4"), ("Vancouver", "BC", "V6B 1A1")],
           "streets": ["Queen Street West", "Rue Sainte-Catherine", "Granville Street"],
           "carriers": ["UPS", "FedEx", "Cainiao", "4PX"]},
    "GB": {"currency": "GBP", "rate": "0.79", "locale": "en", "weight": 3,
           "first": ["Oliver", "Amelia", "Harry", "Isla", "George"], "last": ["Smith", "Taylor", "Evans", "Hughes"],
           "cities": [("London", "", "SW1A 1AA"), ("Manchester", "", "M1 1AE"), ("Leeds", "", "LS1 4AP")],
           "streets": ["High Street", "Station Road", "Church Lane"],
           "carriers": ["DHL", "YunExpress", "4PX", "Royal Mail"]},
    "DE": {"currency": "EUR", "rate": "0.92", "locale": "de", "weight": 4,
           "first": ["Lena", "Jonas", "Mia", "Felix", "Hannah", "Paul"],
           "last": ["Müller", "Schmidt", "Schneider", "Fischer", "Weber"],
           "cities": [("Berlin", "", "10115"), ("München", "", "80331"), ("Hamburg", "", "20095")],
           "streets": ["Hauptstraße", "Bahnhofstraße", "Gartenweg", "Lindenallee"],
           "carriers": ["DHL", "Cainiao", "4PX", "YunExpress", "China Post"]},
    "FR": {"currency": "EUR", "rate": "0.92", "locale": "fr", "weight": 3,
           "first": ["Camille", "Louis", "Léa", "Hugo", "Chloé"], "last": ["Martin", "Bernard", "Dubois", "Moreau"],
           "cities": [("Paris", "", "75002"), ("Lyon", "", "69001"), ("Marseille", "", "13001")],
           "streets": ["Rue de la Paix", "Avenue Victor Hugo", "Boulevard Voltaire"],
           "carriers": ["DHL", "Cainiao", "YunExpress", "China Post"]},
    "ES": {"currency": "EUR", "rate": "0.92", "locale": "es", "weight": 3,
           "first": ["Lucía", "Hugo", "Martina", "Pablo", "Sofía"], "last": ["García", "Fernández", "López", "Martínez"],
           "cities": [("Madrid", "", "28013"), ("Barcelona", "", "08002"), ("Valencia", "", "46002")],
           "streets": ["Calle Mayor", "Gran Vía", "Calle de Alcalá"],
           "carriers": ["DHL", "Cainiao", "4PX", "YunExpress"]},
    "IT": {"currency": "EUR", "rate": "0.92", "locale": "it", "weight": 2,
           "first": ["Giulia", "Lorenzo", "Sofia", "Matteo"], "last": ["Rossi", "Russo", "Ferrari", "Esposito"],
           "cities": [("Roma", "", "00184"), ("Milano", "", "20121"), ("Torino", "", "10121")],
           "streets": ["Via Roma", "Corso Italia", "Via Garibaldi"],
           "carriers": ["DHL", "Cainiao", "YunExpress"]},
    "NL": {"currency": "EUR", "rate": "0.92", "locale": "nl", "weight": 2,
           "first": ["Emma", "Daan", "Julia", "Sem"], "last": ["de Jong", "Jansen", "de Vries", "Bakker"],
           "cities": [("Amsterdam", "", "1012 AB"), ("Utrecht", "", "3511 AA"), ("Rotterdam", "", "3011 AA")],
           "streets": ["Kerkstraat", "Dorpsstraat", "Prinsengracht"],
           "carriers": ["DHL", "Cainiao", "4PX"]},
    "JP": {"currency": "JPY", "rate": "150", "locale": "ja", "weight": 3,
           "first": ["Yui", "Haruto", "Sakura", "Ren", "Aoi"], "last": ["Sato", "Suzuki", "Takahashi", "Tanaka"],
           "cities": [("Tokyo", "Tokyo", "100-0005"), ("Osaka", "Osaka", "530-0001"), ("Kyoto", "Kyoto", "600-8216")],
           "streets": ["1-2-3 Marunouchi", "4-5-6 Umeda", "2-8 Shijo-dori"],
           "carriers": ["China Post", "Yanwen", "DHL", "Japan Post"]},
    "AU": {"currency": "AUD", "rate": "1.52", "locale": "en", "weight": 2,
           "first": ["Charlotte", "Jack", "Ruby", "William"], "last": ["Smith", "Nguyen", "Williams", "Brown"],
           "cities": [("Sydney", "NSW", "2000"), ("Melbourne", "VIC", "3000"), ("Brisbane", "QLD", "4000")],
           "streets": ["George Street", "Collins Street", "Queen Street"],
           "carriers": ["China Post", "Yanwen", "DHL", "FedEx"]},
    "SG": {"currency": "SGD", "rate": "1.34", "locale": "zh", "weight": 1,
           "first": ["Wei", "Jia Hui", "Jun Jie", "Xin Yi"], "last": ["Tan", "Lim", "Lee", "Ng"],
           "cities": [("Singapore", "", "238859"), ("Singapore", "", "018956")],
           "streets": ["Orchard Road", "Marina Boulevard"],
           "carriers": ["Cainiao", "DHL"]},
    "BR": {"currency": "BRL", "rate": "5.0", "locale": "pt", "weight": 1,
           "first": ["Ana", "Gabriel", "Beatriz", "Rafael"], "last": ["Silva", "Santos", "Oliveira", "Souza"],
           "cities": [("São Paulo", "SP", "01310-100"), ("Rio de Janeiro", "RJ", "20040-020")],
           "streets": ["Avenida Paulista", "Rua das Flores"],
           "carriers": ["China Post", "Cainiao"]},
    "MX": {"currency": "MXN", "rate": "17.0", "locale": "es", "weight": 1,
           "first": ["Valentina", "Santiago", "Regina", "Mateo"], "last": ["Hernández", "González", "Pérez", "Ramírez"],
           "cities": [("Ciudad de México", "CDMX", "06600"), ("Guadalajara", "JAL", "44100")],
           "streets": ["Avenida Reforma", "Calle Juárez"],
           "carriers": ["Cainiao", "FedEx"]},
}

PRODUCTS = [
    ("LL-LAMP-ARC-BLK", "Arc desk lamp, black", "39.90"),
    ("LL-LAMP-ARC-WHT", "Arc desk lamp, white", "39.90"),
    ("LL-LED-STRIP-5M", "LED light strip 5 m, RGB", "24.50"),
    ("LL-BULB-E27-4PK", "Smart bulb E27, 4-pack", "32.00"),
    ("LL-THROW-WOOL-GRY", "Wool throw blanket, grey", "59.00"),
    ("LL-CUSH-LINEN-SND", "Linen cushion cover, sand", "18.90"),
    ("LL-RUG-JUTE-120", "Jute rug 120 x 180 cm", "89.00"),
    ("LL-CANDLE-CEDAR", "Cedar scented candle", "14.50"),
    ("LL-VASE-CERAMIC-S", "Ceramic vase, small", "22.00"),
    ("LL-CLOCK-WALL-OAK", "Oak wall clock", "45.00"),
    ("LL-MIRROR-ROUND-60", "Round mirror 60 cm", "79.00"),
    ("LL-PLANTER-HANG", "Hanging planter, macramé", "16.90"),
    ("LL-NIGHTLIGHT-MOON", "Moon night light", "27.90"),
    ("LL-CURTAIN-BLK-140", "Blackout curtain 140 x 245 cm", "49.00"),
    ("LL-SHELF-FLOAT-60", "Floating shelf 60 cm, walnut", "34.90"),
]

# Weighted so that every state is well represented (tests and conversations need each of them).
STATUS_WEIGHTS = {
    "pending": 2, "paid": 3, "processing": 3, "shipped": 3, "in_transit": 5,
    "delivered": 7, "cancelled": 2, "returned": 2, "refunded": 2,
}
# How long ago an order in each state was placed (days, inclusive range).
STATUS_AGE = {
    "pending": (0, 1), "paid": (0, 2), "processing": (1, 3), "shipped": (2, 5), "in_transit": (4, 14),
    "delivered": (15, 75), "cancelled": (2, 40), "returned": (25, 80), "refunded": (25, 80),
}


def _tracking_number(rng: random.Random, carrier: str, country: str) -> str:
    digits = string.digits
    if carrier == "UPS":
        shipper = "".join(rng.choice(string.ascii_uppercase + digits) for _ in range(6))
        return f"1Z{shipper}{rng.choice(['01', '02', '03', '12'])}{''.join(rng.choices(digits, k=8))}"
    if carrier == "USPS":
        return rng.choice(["9400", "9205", "9361"]) + "".join(rng.choices(digits, k=18))
    if carrier == "FedEx":
        return "".join(rng.choices(digits, k=12))
    if carrier == "DHL":
        return "".join(rng.choices(digits, k=10))
    if carrier in ("China Post", "Japan Post", "Royal Mail"):
        serial = "".join(rng.choices(digits, k=8))
        prefix = {"China Post": rng.choice(["LZ", "LY", "RB", "UA"]), "Japan Post": "EJ",
                  "Royal Mail": "RM"}[carrier]
        suffix = {"China Post": "CN", "Japan Post": "JP", "Royal Mail": "GB"}[carrier]
        return f"{prefix}{serial}{s10_check_digit(serial)}{suffix}"
    if carrier == "Cainiao":
        return "LP00" + "".join(rng.choices(digits, k=12))
    if carrier == "4PX":
        return "4PX" + "".join(rng.choices(digits, k=13)) + "CN"
    if carrier == "Yanwen":
        return "UG" + "".join(rng.choices(digits, k=9)) + "YP"
    if carrier == "YunExpress":
        return "YT" + "".join(rng.choices(digits, k=16))
    raise ValueError(f"unknown carrier {carrier}")


def _phone(rng: random.Random, country: str) -> str:
    example = phonenumbers.example_number_for_type(country, phonenumbers.PhoneNumberType.MOBILE)
    assert example is not None
    national = str(example.national_number)
    # Keep the mobile prefix, vary the subscriber digits.
    keep = max(3, len(national) - 5)
    varied = national[:keep] + "".join(rng.choices(string.digits, k=len(national) - keep))
    number = phonenumbers.parse(f"+{example.country_code}{varied}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _money(value: Decimal, currency: str) -> Decimal:
    if currency == "JPY":
        return value.quantize(Decimal("1"), rounding=ROUND_HALF_UP)
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


def _refund(rng: random.Random, order_no: str, index: int, amount: Decimal, currency: str, state: str,
            when: datetime) -> dict[str, Any]:
    return {
        "id": f"RF-{order_no}-{index + 1}",
        "amount": str(_money(amount, currency)),
        "currency": currency,
        "status": state,
        "created_at": _iso(when),
        "processed_at": _iso(when + timedelta(days=rng.randint(2, 5))) if state == "processed" else None,
    }


def generate(seed: int = SEED, count: int = ORDER_COUNT) -> dict[str, Any]:
    rng = random.Random(seed)
    seller = SellerProfile.load(SELLER_YML)
    country_codes = list(COUNTRIES)
    weights = [COUNTRIES[c]["weight"] for c in country_codes]

    customers: list[dict[str, Any]] = []
    used_emails: set[str] = set()
    for i in range(150):
        # The first customers cover every country once, then the weights take over.
        country = country_codes[i] if i < len(country_codes) else rng.choices(country_codes, weights)[0]
        spec = COUNTRIES[country]
        first, last = rng.choice(spec["first"]), rng.choice(spec["last"])
        base = f"{first}.{last}".lower()
        for a, b in (("ü", "ue"), ("é", "e"), ("á", "a"), ("í", "i"), ("ã", "a"), (" ", ""), ("'", "")):
            base = base.replace(a, b)
        email = f"{base}{rng.randint(1, 999)}@{rng.choice(['example.com', 'example.org', 'example.net'])}"
        while email in used_emails:
            email = f"{base}{rng.randint(1000, 9999)}@example.com"
        used_emails.add(email)
        city, region, postal = rng.choice(spec["cities"])
        customers.append({
            "id": f"C{10001 + i}",
            "name": f"{first} {last}",
            "email": email,
            "phone": _phone(rng, country),
            "locale": spec["locale"],
            "country": country,
            "address": {
                "name": f"{first} {last}",
                "line1": f"{rng.randint(1, 200)} {rng.choice(spec['streets'])}"
                if country not in ("DE", "NL", "IT", "ES", "FR", "BR", "MX", "JP")
                else f"{rng.choice(spec['streets'])} {rng.randint(1, 200)}"
                if country != "JP" else rng.choice(spec["streets"]),
                "line2": "",
                "city": city,
                "region": region,
                "postal_code": postal,
                "country": country,
            },
        })

    statuses = list(STATUS_WEIGHTS)
    orders: list[dict[str, Any]] = []
    for i in range(count):
        # Repeat customers: a third of the orders go to the first 40 customers.
        customer = customers[i] if i < len(customers) and rng.random() > 0.33 else rng.choice(customers[:40])
        country = customer["country"]
        spec = COUNTRIES[country]
        currency = spec["currency"]
        rate = Decimal(spec["rate"])
        status = statuses[i] if i < len(statuses) else rng.choices(statuses, list(STATUS_WEIGHTS.values()))[0]
        lo, hi = STATUS_AGE[status]
        created = REFERENCE_NOW - timedelta(days=rng.randint(lo, hi), hours=rng.randint(0, 23),
                                             minutes=rng.randint(0, 59))
        items: list[dict[str, Any]] = []
        for sku, name, price in rng.sample(PRODUCTS, rng.choice([1, 1, 1, 2, 2, 3])):
            items.append({"sku": sku, "name": name, "quantity": rng.choice([1, 1, 1, 2]),
                          "unit_price": str(_money(Decimal(price) * rate, currency))})
        total = _money(sum((Decimal(it["unit_price"]) * it["quantity"] for it in items), Decimal(0)), currency)

        shipments: list[dict[str, Any]] = []
        shipped_states = ("shipped", "in_transit", "delivered", "returned", "refunded")
        if status in shipped_states and not (status == "refunded" and rng.random() < 0.3):
            carrier = rng.choice(spec["carriers"])
            number = _tracking_number(rng, carrier, country)
            shipped_at = created + timedelta(days=rng.randint(1, 2), hours=rng.randint(0, 8))
            options = seller.shipping.get(country, ())
            max_days = max((o.max_days for o in options), default=14)
            min_days = min((o.min_days for o in options), default=5)
            eta = (shipped_at + timedelta(days=rng.randint(min_days, max_days))).date()
            delivered_at = None
            if status in ("delivered", "returned", "refunded"):
                delivered_at = datetime.combine(eta, datetime.min.time(), UTC) + timedelta(hours=rng.randint(9, 18))
            shipments.append({
                "carrier": carrier,
                "tracking_number": number,
                "tracking_url": tracking_url(carrier, number),
                "shipped_at": _iso(shipped_at),
                "estimated_delivery": eta.isoformat(),
                "delivered_at": _iso(delivered_at),
            })

        refunds: list[dict[str, Any]] = []
        returns: list[dict[str, Any]] = []
        number_str = f"{FIRST_NUMBER + i}"

        cancel_reason = None
        if status == "cancelled":
            cancel_reason = rng.choice(["customer request", "payment declined", "out of stock"])
            if cancel_reason != "payment declined":
                refunds.append(_refund(rng, number_str, 0, total, currency, "processed",
                                       created + timedelta(days=1)))
        elif status in ("returned", "refunded"):
            if shipments:
                returns.append({
                    "id": f"RMA-{FIRST_NUMBER + i}",
                    "items": [{"sku": it["sku"], "quantity": it["quantity"]} for it in items],
                    "reason": rng.choice(["wrong size", "damaged in transit", "not as described",
                                          "changed my mind"]),
                    "status": "received" if status == "returned" else "refunded",
                    "created_at": _iso(created + timedelta(days=rng.randint(16, 22))),
                })
            when = created + timedelta(days=rng.randint(18, 24))
            refunds.append(_refund(rng, number_str, len(refunds), total, currency,
                                   "pending" if status == "returned" else "processed", when))
        elif status == "delivered" and rng.random() < 0.12:
            refunds.append(_refund(rng, number_str, len(refunds), total * Decimal("0.2"), currency, "processed",
                                   created + timedelta(days=20)))

        orders.append({
            "number": f"ND-{FIRST_NUMBER + i}",
            "customer_id": customer["id"],
            "email": customer["email"],
            "phone": customer["phone"],
            "items": items,
            "currency": currency,
            "total": str(total),
            "status": status,
            "created_at": _iso(created),
            "shipping_address": customer["address"],
            "shipments": shipments,
            "refunds": refunds,
            "returns": returns,
            "cancel_reason": cancel_reason,
        })
    return {"seed": seed, "generated_by": "python -m actions.demo_data", "reference_now": _iso(REFERENCE_NOW),
            "customers": customers, "orders": orders}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    data = generate(args.seed)
    args.out.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    by_status: dict[str, int] = {}
    for order in data["orders"]:
        by_status[order["status"]] = by_status.get(order["status"], 0) + 1
    print(f"wrote {len(data['orders'])} orders, {len(data['customers'])} customers to {args.out}: {by_status}")


if __name__ == "__main__":
    main()
