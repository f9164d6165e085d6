"""Every payload the web edge accepts or returns, typed, so /openapi.json is the true contract.

Strict types where pydantic's lax mode would accept surprises (`false` as an integer, `"3"` as a
number): a reader's client must send what the contract says.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

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
    choice: StrictStr | None = Field(None, max_length=24, examples=["heart"],
                                     description="Choice types: the option chosen (`add`).")
    score: StrictInt | None = Field(None, ge=-1000, le=1000, examples=[4],
                                    description="Score types: the score given (`add`).")
    visitor: VisitorId


class PageState(BaseModel):
    path: str = Field(description="The normalised path.")
    totals: dict[str, int] = Field(description="Live totals: one per counter and toggle type "
                                   "(`like`), one per option of a choice type (`emoji.heart`), "
                                   "and a sum and a count per score type (`stars.sum`, "
                                   "`stars.count`; the average is sum / count).")
    visitor: dict[str, StrictBool | int | str | None] | None = Field(
        None, description="This visitor's state: toggles as booleans, capped counters as "
        "the amount given, a choice as the option key, a score as the number (null: none "
        "yet). Absent when no visitor was named.")
    stale: bool = Field(False, description="True when the database could not be read: the "
                        "totals then hold only what is not yet flushed. The interaction itself "
                        "was recorded; do not retry it.")


class PageTotalsModel(PageState):
    comments: int = Field(0, description="Approved comments on the page.")


class InteractionResponse(PageState):
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


class ChoiceModel(BaseModel):
    key: str = Field(description="Sent as `choice`; totals key `TYPE.KEY`.")
    label: str
    icon: str


class ReactionTypeModel(BaseModel):
    name: str
    label: str
    icon: str = Field(description="An emoji, or an inline SVG document.")
    kind: Literal["counter", "toggle", "choice", "score"]
    per_visitor_cap: int | None
    max_amount: int
    choices: list[ChoiceModel] = Field(default_factory=list,
                                       description="Choice types: the options this site shows.")
    score_min: int | None = Field(None, description="Score types: the lowest score.")
    score_max: int | None = Field(None, description="Score types: the highest score.")
    options: dict[str, Any] = Field(default_factory=dict,
                                    description="Free-form settings the plugin passes to the "
                                    "widget.")


class SiteConfigResponse(BaseModel):
    site: str
    title: str
    reactions: list[ReactionTypeModel]
    email: bool = Field(description="Whether this Ovation sends e-mail (SMTP is "
                        "configured): the widget offers to subscribe to new posts only then.")


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


# --- comments -------------------------------------------------------------------------------

CommentId = Annotated[StrictStr, Field(min_length=32, max_length=32, pattern=r"^[0-9a-f]{32}$")]


class CommentRequest(Strict):
    """A new comment (Markdown) or reply; the server renders and sanitises it."""

    path: RawPath
    body: StrictStr = Field(min_length=1, max_length=100000, description="CommonMark Markdown.")
    visitor: VisitorId
    author_name: StrictStr = Field("", max_length=200)
    author_email: StrictStr = Field("", max_length=254, description="Never shown publicly; "
                                    "used for reply notifications and the avatar seed.")
    author_website: StrictStr = Field("", max_length=500, description="An http(s) URL.")
    parent_id: CommentId | None = Field(None, description="The comment replied to.")
    notify_replies: StrictBool = Field(False, description="E-mail me replies (needs an e-mail).")
    hp: StrictStr = Field("", max_length=1000, description="Honeypot: leave empty. The "
                          "widget hides it; bots fill it and their comment is dropped.")


class CommentAccepted(BaseModel):
    id: str
    path: str
    status: Literal["approved", "pending"] = Field(description="`pending` waits for a "
                                                   "moderator; only its author sees it.")
    edit_token: str = Field(description="Secret: lets the author edit or delete the comment "
                            "until `editable_until`. Shown once.")
    html: str = Field(description="The body as it will be shown (sanitised HTML).")
    created_at: str
    editable_until: str


class CommentEditRequest(Strict):
    edit_token: StrictStr = Field(min_length=1, max_length=100)
    body: StrictStr = Field(min_length=1, max_length=100000)


class CommentDeleteRequest(Strict):
    edit_token: StrictStr = Field(min_length=1, max_length=100)


class CommentChanged(BaseModel):
    id: str
    status: str
    html: str = ""


class ThreadQuery(Strict):
    path: RawPath
    sort: Literal["oldest", "newest", "top"] = "oldest"
    limit: int | None = Field(None, ge=1, le=500, description="Top-level comments per page; "
                              "default: the `comment_page_size` setting (50).")
    offset: int = Field(0, ge=0, le=1_000_000)
    visitor: VisitorId | None = None


class CommentModel(BaseModel):
    id: str
    parent_id: str | None
    depth: int
    author_name: str = Field(description="Plain text: insert it as text, never as HTML.")
    author_website: str
    avatar_seed: str = Field(description="Seed for an identicon (a keyed hash, not the e-mail).")
    html: str = Field(description="Sanitised HTML of the body; empty when deleted.")
    status: Literal["approved", "pending", "deleted"]
    votes_up: int
    votes_down: int
    created_at: str
    edited_at: str | None
    mine: bool = Field(description="Posted by the visitor named in the request.")
    my_vote: Literal["up", "down"] | None = Field(None, description="The requesting "
                                                  "visitor's vote on this comment.")


class ThreadResponse(BaseModel):
    path: str
    total: int = Field(description="Approved comments on the page.")
    comments: list[CommentModel] = Field(description="Top-level comments of this page of the "
                                         "thread, each followed by its replies (depth-first).")
    next_offset: int | None


class CommentMessage(CommentRequest):
    type: Literal["comment"]
    id: StrictStr | None = Field(None, max_length=64, description="Echoed in the answer.")


ClientMessage = Annotated[
    SubscribeMessage | UnsubscribeMessage | InteractMessage | PingMessage | CommentMessage,
    Field(discriminator="type"),
]


# --- admin API (bearer token) ----------------------------------------------------------------

class PublishRequest(Strict):
    """A post to publish: the listener stores the page and announces it."""

    path: RawPath
    title: StrictStr = Field(min_length=1, max_length=500, examples=["Hello, world"])
    published_at: StrictStr | None = Field(
        None, min_length=1, max_length=64,
        description="ISO 8601 date or date and time; without an offset it is UTC. "
        "Absent: now.", examples=["2026-11-25T09:30:00+01:00"])


class PublishAccepted(BaseModel):
    event_id: str = Field(description="The publish event's id; the listener applies it once.")
    site: str
    path: str = Field(description="The normalised path.")
    title: str
    published_at: str = Field(description="ISO 8601, UTC.")


class AdminSiteModel(BaseModel):
    name: str
    title: str
    origins: list[str]
    accept_unpublished_pages: bool
    pages: int = Field(description="Pages SQL knows (published, or with flushed counts).")
    feed_url: str | None = Field(description="The RSS or Atom feed polled for new posts.")
    reactions: list[str] = Field(description="The reaction types the site shows, in order "
                                 "(`platformctl site set --reactions`).")


class AdminSitesResponse(BaseModel):
    sites: list[AdminSiteModel]


# --- admin: moderation ------------------------------------------------------------------------

class AdminCommentsQuery(Strict):
    status: Literal["pending", "approved", "rejected", "spam", "deleted"] | None = None
    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0, le=1_000_000)


class AdminCommentModel(BaseModel):
    id: str
    path: str
    parent_id: str | None
    status: str
    author_name: str
    author_email: str
    author_website: str
    body_markdown: str
    html: str
    created_at: str
    edited_at: str | None


class AdminCommentsResponse(BaseModel):
    comments: list[AdminCommentModel]
    counts: dict[str, int] = Field(description="Comments of the site by status.")


class ModerateRequest(Strict):
    ids: list[CommentId] = Field(min_length=1, max_length=500)
    status: Literal["approved", "rejected", "spam", "deleted", "pending"]


class ModerateResponse(BaseModel):
    changed: list[str]
    status: str


class BanRequest(Strict):
    comment_id: CommentId
    network: StrictBool = Field(True, description="Also ban the comment's network (IP, /64).")
    reason: StrictStr = Field("", max_length=200)
    remove: StrictBool = Field(True, description="Also mark the comment as spam.")


class BanAccepted(BaseModel):
    comment_id: str
    banned: list[str] = Field(description="What was banned: visitor, network.")


class BansQuery(Strict):
    comment_id: CommentId | None = Field(None, description="Only the bans that match this "
                                         "comment's author: by visitor, or by the comment's "
                                         "network.")
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=1_000_000)


class BanModel(BaseModel):
    id: int = Field(description="What `DELETE …/bans/{id}` lifts.")
    site: str
    kind: Literal["visitor", "network"]
    value_hash: str = Field(description="The keyed hash banned, never an address or a "
                            "visitor id.")
    reason: str
    created_at: str


class BansResponse(BaseModel):
    bans: list[BanModel] = Field(description="Newest first.")


class VoteRequest(Strict):
    visitor: VisitorId
    vote: Literal["up", "down", "none"] = Field(description="`none` withdraws the vote.")


class VoteResponse(BaseModel):
    id: str
    up: int
    down: int
    mine: Literal["up", "down", "none"]


# --- admin: readers' data requests ------------------------------------------------------------

class VisitorRequest(Strict):
    visitor: VisitorId


class VisitorExport(BaseModel):
    site: str
    visitor_hash: str
    reactions: list[dict[str, str]] = Field(description="target (page path or ~c/COMMENT), "
                                            "reaction, value")
    comments: list[dict[str, Any]]


class VisitorErased(BaseModel):
    reaction_states: int
    comments: int
