"""The seller's own data (seller.yml): legal details and VAT numbers for invoices, returns, shipping table."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from actions.store import ActionNotAllowed, ShippingEstimate, ShippingOption

EU_COUNTRIES = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE".split()
)


@dataclass(frozen=True)
class SellerProfile:
    name: str
    legal_name: str
    address: tuple[str, ...]
    email: str
    vat_registrations: dict[str, str]
    tax_rates: dict[str, Decimal]
    return_address: str  # where returns go from destinations without a hub of their own
    return_window_days: int = 30
    invoice_prefix: str = "INV-"
    company_registration: str = ""
    website: str = ""
    shipping: dict[str, tuple[ShippingOption, ...]] = field(default_factory=dict)
    # Local return hubs by destination: a country code, or EU for the 27 member states.
    return_addresses: dict[str, str] = field(default_factory=dict)

    def return_address_for(self, country: str | None) -> str:
        """The hub a parcel from `country` goes back to: its own, the EU's, or `return_address`."""
        code = (country or "").upper()
        if code in self.return_addresses:
            return self.return_addresses[code]
        if code in EU_COUNTRIES and "EU" in self.return_addresses:
            return self.return_addresses["EU"]
        return self.return_address

    @classmethod
    def load(cls, path: str | Path) -> SellerProfile:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SellerProfile:
        for key in ("name", "legal_name", "address", "vat_registrations", "return_address"):
            if key not in data:
                raise ValueError(f"seller.yml: missing required key {key!r}")
        shipping = {
            country.upper(): tuple(
                ShippingOption(
                    method=str(o["method"]),
                    carrier=str(o["carrier"]),
                    min_days=int(o["min_days"]),
                    max_days=int(o["max_days"]),
                    price=Decimal(str(o.get("price", "0"))),
                    currency=str(o["currency"]),
                )
                for o in options
            )
            for country, options in (data.get("shipping") or {}).items()
        }
        return cls(
            name=str(data["name"]),
            legal_name=str(data["legal_name"]),
            address=tuple(str(line) for line in data["address"]),
            email=str(data.get("email", "")),
            vat_registrations={str(k): str(v) for k, v in data["vat_registrations"].items()},
            tax_rates={str(k): Decimal(str(v)) for k, v in (data.get("tax_rates") or {}).items()},
            return_address=str(data["return_address"]),
            return_window_days=int(data.get("return_window_days", 30)),
            invoice_prefix=str(data.get("invoice_prefix", "INV-")),
            company_registration=str(data.get("company_registration", "")),
            website=str(data.get("website", "")),
            shipping=shipping,
            return_addresses={str(k).upper(): str(v) for k, v in (data.get("return_addresses") or {}).items()},
        )

    def vat_number_for(self, country: str) -> str:
        """The registration that applies to a sale shipped to `country`."""
        country = country.upper()
        if country in self.vat_registrations:
            return self.vat_registrations[country]
        if country in EU_COUNTRIES and "EU" in self.vat_registrations:
            return self.vat_registrations["EU"]
        return self.vat_registrations.get("default", "")

    def tax_rate_for(self, country: str) -> Decimal:
        return self.tax_rates.get(country.upper(), self.tax_rates.get("default", Decimal("0")))

    def shipping_estimate(self, country: str) -> ShippingEstimate:
        options = self.shipping.get(country.upper())
        if not options:
            raise ActionNotAllowed("not_shipped_to", f"we do not ship to {country}")
        return ShippingEstimate(
            country=country.upper(),
            min_days=min(o.min_days for o in options),
            max_days=max(o.max_days for o in options),
            options=options,
        )
