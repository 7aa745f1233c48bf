"""Running actions the way Rasa does: in-process through rasa-sdk's executor, or on a remote action
server (Rasa's action-server protocol: POST the action call JSON to e.g. http://host:5055/webhook and
get back {"events": [...], "responses": [...]}).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import yaml
from rasa_sdk import Action
from rasa_sdk import __version__ as rasa_sdk_version
from rasa_sdk.executor import ActionExecutor
from rasa_sdk.interfaces import ActionExecutionRejection, ActionNotFoundException

from actions.responses import RenderedResponse, ResponseCatalog

# Keys of a dispatcher message that are not template variables.
_MESSAGE_KEYS = frozenset({"text", "buttons", "elements", "custom", "template", "response", "image",
                           "attachment", "recipient_id", "quick_replies"})


class ActionFailed(Exception):
    """The action could not run (unknown action, rejected, crashed, or the action server failed)."""


class ActionServerUnavailable(ActionFailed):
    """The remote action server could not be reached or answered with a server error."""


@dataclass(frozen=True)
class ActionCall:
    """What the engine knows when it runs an action: the tracker state Rasa would send."""

    action: str
    sender_id: str
    slots: Mapping[str, Any] = field(default_factory=dict)
    latest_message: Mapping[str, Any] = field(default_factory=dict)  # {"text", "intent", "entities", ...}
    events: tuple[Mapping[str, Any], ...] = ()
    input_channel: str | None = None

    def to_json(self, domain: Mapping[str, Any]) -> dict[str, Any]:
        """The request body of Rasa's action server protocol."""
        return {
            "next_action": self.action,
            "sender_id": self.sender_id,
            "version": rasa_sdk_version,
            "tracker": {
                "sender_id": self.sender_id,
                "slots": dict(self.slots),
                "latest_message": dict(self.latest_message),
                "latest_event_time": time.time(),
                "followup_action": None,
                "paused": False,
                "events": [dict(e) for e in self.events],
                "latest_input_channel": self.input_channel,
                "active_loop": {},
                "latest_action": {"action_name": self.action},
                "latest_action_name": self.action,
            },
            "domain": dict(domain),
        }


@dataclass(frozen=True)
class ActionResult:
    events: list[dict[str, Any]]
    responses: list[dict[str, Any]]

    @property
    def slots(self) -> dict[str, Any]:
        """Slot values the action set, in order (later SlotSet events win)."""
        return {e["name"]: e.get("value") for e in self.events if e.get("event") == "slot"}

    @property
    def handoff_reason(self) -> str | None:
        """Why the action asks for a person ("store_unavailable", "shopper_asked", ...), if it does."""
        slots = self.slots
        return str(slots.get("handoff_reason") or "requested") if slots.get("handoff_requested") else None

    @property
    def response_names(self) -> list[str]:
        return [_response_name(r) for r in self.responses]

    @property
    def variables(self) -> dict[str, dict[str, Any]]:
        """Each named response's variables (the last message of a name wins)."""
        return {name: _variables(message) for message in self.responses if (name := _response_name(message))}

    def render(self, catalog: ResponseCatalog, locale: str) -> list[RenderedResponse]:
        """The action's messages in the shopper's language; plain-text messages are passed through."""
        rendered: list[RenderedResponse] = []
        for message in self.responses:
            name = _response_name(message)
            if name:
                rendered.append(catalog.render(name, locale, _variables(message), extra_buttons=message.get("buttons")))
            elif message.get("text"):
                rendered.append(RenderedResponse(name="", text=str(message["text"]), locale=locale,
                                                 requested_locale=locale, fallback_used=False,
                                                 buttons=tuple(message.get("buttons") or ())))
        return rendered


def _response_name(message: dict[str, Any]) -> str:
    """The domain response a dispatched message names (rasa-sdk's `response`, or the older `template`), or ""."""
    return str(message.get("response") or message.get("template") or "")


def _variables(message: dict[str, Any]) -> dict[str, Any]:
    """A dispatched message's template variables: every key that is not part of the message itself."""
    return {k: v for k, v in message.items() if k not in _MESSAGE_KEYS}


def load_domain(path: str | Path) -> dict[str, Any]:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a domain file must be a mapping")
    return data


class Runner(Protocol):
    async def run(self, call: ActionCall) -> ActionResult: ...


class ActionRunner:
    """Runs registered rasa-sdk actions in this process through rasa_sdk.executor.ActionExecutor."""

    def __init__(
        self,
        domain: Mapping[str, Any],
        actions: Iterable[type[Action] | Action] = (),
        packages: Iterable[str] = ("actions.order_actions",),
    ) -> None:
        self.domain = dict(domain)
        self.executor = ActionExecutor()
        for package in packages:
            self.executor.register_package(package)
        for action in actions:
            self.executor.register_action(action)

    @property
    def action_names(self) -> list[str]:
        return sorted(self.executor.actions)

    async def run(self, call: ActionCall) -> ActionResult:
        try:
            result = await self.executor.run(call.to_json(self.domain))
        except ActionNotFoundException as exc:
            raise ActionFailed(f"no action named {call.action!r}; known: {', '.join(self.action_names)}") from exc
        except ActionExecutionRejection as exc:
            raise ActionFailed(f"{call.action} rejected the call: {exc}") from exc
        if result is None:
            raise ActionFailed("action call without an action name")
        return ActionResult(events=list(result.events), responses=list(result.responses))


class RemoteActionRunner:
    """Runs actions on a Rasa action server (`action_endpoint`, e.g. http://localhost:5055/webhook)."""

    def __init__(
        self,
        url: str,
        domain: Mapping[str, Any],
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"action_endpoint must be an http(s) URL, got {url!r}")
        self.url = url
        self.domain = dict(domain)
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._owns_client = client is None

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def run(self, call: ActionCall) -> ActionResult:
        try:
            response = await self._client.post(self.url, json=call.to_json(self.domain))
        except httpx.HTTPError as exc:
            raise ActionServerUnavailable(f"action server {self.url} unreachable: {exc}") from exc
        if response.status_code >= 500:
            raise ActionServerUnavailable(f"action server {self.url} failed with HTTP {response.status_code}")
        if response.status_code != 200:
            # 404: unknown action; 400: the action rejected the call; 449: domain needed.
            detail = response.text[:300]
            raise ActionFailed(f"action server refused {call.action} (HTTP {response.status_code}): {detail}")
        body = response.json()
        return ActionResult(events=list(body.get("events") or []), responses=list(body.get("responses") or []))
