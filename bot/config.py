"""Nightdesk's settings: one pydantic-settings class, from NIGHTDESK_* environment variables.

`DATABASE_URL` and `REDIS_URL` are read without the prefix, as operators expect. A wrong
setting stops start-up with a message naming the setting and what is wrong.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SUPPORTED_LANGUAGES = ("en", "de", "es", "fr", "it", "ja", "zh", "pt", "nl", "ko", "ru", "pl", "tr", "ar", "th")


class SettingsError(ValueError):
    """A setting is wrong; the message names the setting and says what to do."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NIGHTDESK_", extra="ignore", populate_by_name=True)

    var_dir: Path = Field(default=Path("var"), description="where the embedded SQLite file and Redis live")
    project: Path = Field(default=Path("examples/demo-store"), description="the bot project folder")
    admin_token: str = Field(default="", description="bearer token for the admin API; empty disables it")
    demo: bool = Field(default=False, description="load the project's demo store, KB and staff at start")
    database_url: str = Field(default="", validation_alias=AliasChoices("DATABASE_URL", "NIGHTDESK_DATABASE_URL"))
    redis_url: str = Field(default="", validation_alias=AliasChoices("REDIS_URL", "NIGHTDESK_REDIS_URL"))
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    public_url: str = Field(default="", description="the URL shoppers reach; defaults to http://host:port")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True

    languages: list[str] = Field(default_factory=lambda: ["en", "de", "es", "fr", "it", "ja", "zh", "pt", "nl"])
    fallback_language: str = "en"

    # Pipeline: embedded mode runs the workers and senders inside the API process.
    embedded_workers: bool = True
    workers: int = Field(default=1, ge=0, le=64)
    claim_idle_ms: int = Field(default=30_000, ge=100, description="take over a dead worker's message after")
    send_max_attempts: int = Field(default=6, ge=1)
    message_max_length: int = Field(default=2000, ge=10)

    # Engine and NLU.
    model_dir: Path | None = Field(default=None, description="trained NLU model; default <project>/models/nlu")
    answer_threshold: float = Field(default=0.5, ge=0, le=1)
    session_expiry_minutes: int = Field(
        default=60, ge=0, description="after this long without a message a conversation starts a new session: the "
        "bot's open question, pending confirmation and counters are dropped (0: never)")
    action_endpoint: str = Field(default="", description="remote Rasa action server webhook URL")
    kb_second_encoder: str | None = Field(
        default=None,
        description="second KB encoder for English questions (`sentence-transformers`: better English matching, "
        "about 19 ms more per English search and 480 MB more memory); none by default")
    kb_classifier: bool = Field(
        default=True, description="fit an article classifier at every KB index build and use its probability in "
        "the answer confidence (up to 500 articles)")
    kb_target_precision: float = Field(
        default=0.95, ge=0.5, lt=1.0, description="precision of confident KB answers the threshold is calibrated "
        "for, on the articles' own example questions searched with and without their article; higher answers "
        "fewer questions and gets fewer wrong")

    # --- channels: WhatsApp Cloud API ---
    whatsapp_app_secret: str = ""
    whatsapp_verify_token: str = ""
    whatsapp_access_token: str = ""
    whatsapp_phone_number_id: str = ""
    whatsapp_graph_url: str = "https://graph.facebook.com"
    whatsapp_api_version: str = "v21.0"
    whatsapp_template_name: str = ""
    whatsapp_template_language: str = "en_US"

    # --- channels: email (IMAP in, SMTP out) and Amazon buyer messages ---
    email_imap_host: str = ""
    email_imap_port: int = Field(default=993, ge=1, le=65535)
    email_imap_ssl: bool = True
    email_username: str = ""
    email_password: str = ""
    email_smtp_host: str = ""
    email_smtp_port: int = Field(default=587, ge=1, le=65535)
    email_smtp_starttls: bool = True
    email_from: str = ""
    email_signature: str = ""
    amazon_relay_domains: list[str] = Field(default_factory=lambda: ["marketplace.amazon.com"])
    # (added with the email channel) Amazon relays only mail from the address registered in Seller Central.
    amazon_seller_email: str = Field(default="", description="registered seller address; default email_from")
    email_shop_name: str = Field(default="", description="display name in the From of email replies")

    # --- store connector the actions use ---
    store: Literal["demo", "shopify"] = "demo"
    shopify_url: str = Field(default="", description="https://your-shop.myshopify.com")
    shopify_token: str = ""
    shopify_api_version: str = "2024-10"

    # --- translation of agent replies ---
    translator: Literal["none", "libretranslate", "deepl"] = "none"
    translator_url: str = ""
    translator_api_key: str = ""
    translator_timeout: float = Field(default=5.0, gt=0)

    @field_validator("kb_second_encoder")
    @classmethod
    def _known_second_encoder(cls, value: str | None) -> str | None:
        if value in (None, "", "none"):
            return None
        if value != "sentence-transformers":
            raise ValueError(f"kb_second_encoder {value!r} is not known; use sentence-transformers or leave it empty")
        return value

    @field_validator("languages")
    @classmethod
    def _known_languages(cls, value: list[str]) -> list[str]:
        unknown = [code for code in value if code not in SUPPORTED_LANGUAGES]
        if unknown:
            raise ValueError(f"unsupported language code(s) {unknown}; use some of {', '.join(SUPPORTED_LANGUAGES)}")
        if not value:
            raise ValueError("configure at least one language")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if value and not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            if value.startswith(("postgres://", "postgresql://")):
                return "postgresql+asyncpg://" + value.split("://", 1)[1]
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix:// (leave empty for embedded Redis)")
        return value

    @model_validator(mode="after")
    def _shopify_complete(self) -> Settings:
        if self.store == "shopify" and not (self.shopify_url and self.shopify_token):
            raise ValueError("store=shopify needs NIGHTDESK_SHOPIFY_URL and NIGHTDESK_SHOPIFY_TOKEN")
        return self

    @model_validator(mode="after")
    def _fallback_in_languages(self) -> Settings:
        if self.fallback_language not in self.languages:
            raise ValueError(f"fallback_language {self.fallback_language!r} is not one of languages {self.languages}")
        return self

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.var_dir / 'nightdesk.db').resolve()}"

    @property
    def effective_model_dir(self) -> Path:
        return self.model_dir or (self.project / "models" / "nlu")

    @property
    def effective_public_url(self) -> str:
        return self.public_url.rstrip("/") or f"http://{self.host}:{self.port}"


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment (and overrides); a wrong value raises SettingsError naming it."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "settings"
            env = f"NIGHTDESK_{name.upper()}" if name not in ("database_url", "redis_url") else name.upper()
            problems.append(f"{env}: {err['msg']} (got {err.get('input')!r})")
        raise SettingsError("invalid setting(s):\n  " + "\n  ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
