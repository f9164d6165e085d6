"""Every payload the web edge accepts or returns, typed, so /openapi.json is the true contract.

Strict types where pydantic's lax mode would accept surprises (`false` as an integer, `"3"` as a
number): a reader's client must send what the contract says.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

RawPath = Annotated[StrictStr, Field(min_length=1, max_length=4096,
                                     description="Page path or URL; normalised by the server.",
                                     examples=["/2026/11/hello-world/"])]
VisitorId = Annotated[StrictStr, Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$",
                                       description="Anonymous visitor id the widget keeps in "
                                       "localStorage; stored only as a keyed hash.",
                                       examples=["v-3f9a1c2e7d4b"])]
ReactionName = Annotated[StrictStr, Field(min_length=1, max_length=32,
                                          examples=["applause"])]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InteractionRequest(Strict):
    """Record one interaction: a view, a like or unlike, applause, or a plugin reaction."""

    path: RawPath
    reaction: ReactionName
    action: Literal["add", "remove"] = Field("add", description="`remove` withdraws a toggle.")
    amount: StrictInt = Field(1, ge=1, le=100000,
                              description="Counter types only, e.g. claps in one request.")
    visitor: VisitorId


class PageTotalsModel(BaseModel):
    path: str = Field(description="The normalised path.")
    totals: dict[str, int] = Field(description="Live total per reaction type.")
    visitor: dict[str, StrictBool | int] | None = Field(
        None, description="This visitor's state: toggles as booleans, capped counters as "
        "the amount given. Absent when no visitor was named.")
    stale: bool = Field(False, description="True when the database could not be read: the "
                        "totals then hold only what is not yet flushed. The interaction itself "
                        "was recorded; do not retry it.")


class InteractionResponse(PageTotalsModel):
    applied: int = Field(description="What this interaction changed the total by "
                         "(0 when deduplicated, capped or already liked).")


class TotalsQuery(Strict):
    path: RawPath
    visitor: VisitorId | None = None


class BatchTotalsRequest(Strict):
    paths: list[RawPath] = Field(min_length=1, max_length=1000,
                                 description="Up to the configured maximum (100 by default).")
    visitor: VisitorId | None = None


class BatchTotalsResponse(BaseModel):
    pages: list[PageTotalsModel]


class ReactionTypeModel(BaseModel):
    name: str
    label: str
    icon: str
    kind: str
    per_visitor_cap: int | None
    max_amount: int


class SiteConfigResponse(BaseModel):
    site: str
    title: str
    reactions: list[ReactionTypeModel]


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code, see docs/api.md.")
    message: str = Field(description="What went wrong, for humans.")
    details: dict | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class HealthResponse(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict)


# --- WebSocket messages (validated with pydantic; documented in docs/api.md) ---------------

class SubscribeMessage(Strict):
    type: Literal["subscribe"]
    paths: list[RawPath] = Field(min_length=1, max_length=100)
    visitor: VisitorId | None = None


class UnsubscribeMessage(Strict):
    type: Literal["unsubscribe"]
    paths: list[RawPath] = Field(min_length=1, max_length=100)


class InteractMessage(InteractionRequest):
    type: Literal["interact"]
    id: StrictStr | None = Field(None, max_length=64, description="Echoed in the result.")


class PingMessage(Strict):
    type: Literal["ping"]


ClientMessage = Annotated[
    SubscribeMessage | UnsubscribeMessage | InteractMessage | PingMessage,
    Field(discriminator="type"),
]
