"""The bot project's handoff settings (handoff.yml): escalation rules, priority rules, SLA targets per
tier and the regions tickets are routed by. Read once when the runtime starts; a wrong setting stops
start-up with the file, the key and what is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import phonenumbers
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from handoff.priority import PriorityRules
from handoff.sla import SlaPolicy
from handoff.triggers import EscalationRules

FILE_NAME = "handoff.yml"


class HandoffConfigError(ValueError):
    """handoff.yml is wrong; the message names the file and the key and says what to write."""


class HandoffConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    escalation: EscalationRules = Field(default_factory=EscalationRules)
    priority: PriorityRules = Field(default_factory=PriorityRules)
    sla: SlaPolicy = Field(default_factory=SlaPolicy)
    # Region name -> ISO 3166-1 alpha-2 countries, e.g. {"EU": ["DE", "FR"]}. A shopper's country outside
    # every region is the ticket's region itself, so agents may also list plain country codes.
    regions: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("regions", mode="before")
    @classmethod
    def _no_booleans(cls, value: Any) -> Any:
        if isinstance(value, dict) and any(isinstance(c, bool) for cs in value.values() if isinstance(cs, list)
                                           for c in cs):
            raise ValueError('a country code was read as true/false: write "NO" (Norway) and "ON" in quotes')
        return value

    @field_validator("regions")
    @classmethod
    def _country_codes(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, countries in value.items():
            if not 1 <= len(name) <= 16:
                raise ValueError(f"region name {name!r} must be 1 to 16 characters")
            codes = [str(c).strip().upper() for c in countries]
            bad = [c for c in codes if len(c) != 2 or not c.isalpha()]
            if bad:
                raise ValueError(f"region {name!r}: {bad} are not two-letter country codes (ISO 3166-1, e.g. DE)")
            out[name] = codes
        return out

    @model_validator(mode="after")
    def _tiers_have_targets(self) -> HandoffConfig:
        tiers = {self.priority.default_tier, *(r.tier for r in self.priority.rules)}
        missing = sorted(t for t in tiers if t not in self.sla.targets)
        if missing:
            raise ValueError(f"priority tier(s) {missing} have no SLA target: add them under sla.targets")
        return self

    def region_of(self, country: str | None) -> str | None:
        """The region a shopper's country belongs to (the country itself when no region lists it)."""
        if not country:
            return None
        code = country.strip().upper()
        return next((name for name, codes in self.regions.items() if code in codes), code)


def phone_country(phone: str | None) -> str | None:
    """The country of an international phone number (+49… -> DE), None when it cannot tell."""
    if not phone:
        return None
    text = phone.strip()
    try:
        number = phonenumbers.parse(text if text.startswith("+") else f"+{text}", None)
    except phonenumbers.NumberParseException:
        return None
    region = phonenumbers.region_code_for_number(number)
    return region if region and region != "ZZ" else None


def load_handoff_config(path: Path) -> HandoffConfig:
    """The project's handoff.yml, or the defaults when the project has none."""
    if not path.exists():
        return HandoffConfig()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise HandoffConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return HandoffConfig()
    if not isinstance(data, dict):
        raise HandoffConfigError(f"{path}: expected a mapping with escalation, priority, sla and regions at the "
                                 f"top, got {type(data).__name__}")
    try:
        return HandoffConfig.model_validate(data)
    except ValidationError as exc:
        raise HandoffConfigError(f"{path}: invalid setting(s):\n  " + "\n  ".join(_problems(exc))) from None


def _problems(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key (a typo?); see docs/handoff.md for the keys"
        got: Any = err.get("input")
        shown = "" if err["type"] in ("extra_forbidden", "missing") or isinstance(got, dict) else f" (got {got!r})"
        problems.append(f"{key}: {message}{shown}")
    return problems
