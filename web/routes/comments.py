"""The public comment API: post, read a thread, and the author's edit and delete."""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import TypeAdapter, ValidationError
from quart import Blueprint, Response, request
from quart_schema import (
    RequestSchemaValidationError,
    document_querystring,
    document_request,
    document_response,
    tag,
    validate_request,
    validate_response,
)
from quart_schema.validation import QuerystringValidationError

from appliance.services.comments import CommentInput, SubmittedComment
from web.routes import runtime
from web.routes.site_access import add_cors_headers, client_ip, rate_limit, site_for_request
from web.schemas import (
    CommentAccepted,
    CommentChanged,
    CommentDeleteRequest,
    CommentEditRequest,
    CommentRequest,
    ErrorResponse,
    ThreadQuery,
    ThreadResponse,
    VoteRequest,
    VoteResponse,
)

T = TypeVar("T")

comments = Blueprint("comments", __name__, url_prefix="/api/v1/sites/<site>/comments")
comments.after_request(add_cors_headers)


# quart-schema's validate_request and validate_querystring build a new pydantic TypeAdapter
# for every request; on the two hot routes, one adapter each does the same validation.
comment_request = TypeAdapter(CommentRequest)
_thread_query = TypeAdapter(ThreadQuery)


async def json_body(adapter: TypeAdapter[T]) -> T:
    """The JSON body validated as quart-schema's `validate_request` does (its 400 included)."""
    data = await request.get_json()
    try:
        return adapter.validate_python(data)
    except (TypeError, ValueError, ValidationError) as error:
        raise RequestSchemaValidationError(error) from None


def thread_query() -> ThreadQuery:
    """The query string as quart-schema's `validate_querystring` reads it (a repeated key is a
    list; `key[]` always is), validated as it does (its 400 included)."""
    args = {}
    for key in request.args:
        values = request.args.getlist(key)
        if key.endswith("[]"):
            args[key.removesuffix("[]")] = values
        else:
            args[key] = values if len(values) > 1 else values[0]
    try:
        return _thread_query.validate_python(args)
    except (TypeError, ValueError, ValidationError) as error:  # as quart-schema: a 400
        raise QuerystringValidationError(error) from None


def comment_input(data: CommentRequest) -> CommentInput:
    return CommentInput(path=data.path, body=data.body, visitor=data.visitor,
                        author_name=data.author_name, author_email=data.author_email,
                        author_website=data.author_website, parent_id=data.parent_id,
                        notify_replies=data.notify_replies, honeypot=data.hp)


def accepted_model(submitted: SubmittedComment) -> CommentAccepted:
    return CommentAccepted(id=submitted.id, path=submitted.path, status=submitted.status,
                           edit_token=submitted.edit_token, html=submitted.html,
                           created_at=submitted.created_at,
                           editable_until=submitted.editable_until)


def accepted_json(submitted: SubmittedComment) -> str:
    """`accepted_model` as Quart would encode it (keys sorted, compact), without building and
    validating a pydantic model per comment: every field is a string the service made, and
    tests/web/test_comments_api.py checks the answer against CommentAccepted."""
    return json.dumps({"created_at": submitted.created_at, "edit_token": submitted.edit_token,
                       "editable_until": submitted.editable_until, "html": submitted.html,
                       "id": submitted.id, "path": submitted.path,
                       "status": submitted.status}, separators=(",", ":"))


# A well-formed post is answered in front of Quart by web/routes/fast_comments.py, with the
# same services and answers; a change here needs the same there (tests/web/test_fast_comments.py
# compares the two).
@comments.post("")
@tag(["public"])
@document_request(CommentRequest)
@document_response(CommentAccepted, 202)
@validate_response(ErrorResponse, 400)
@validate_response(ErrorResponse, 403)
@validate_response(ErrorResponse, 404)
@validate_response(ErrorResponse, 409)
@validate_response(ErrorResponse, 429)
@validate_response(ErrorResponse, 503)
async def post_comment(site: str):
    """Post a comment or a reply. Answers 202 once the comment is safely queued: the listener
    stores it moments later. Keep `edit_token` to edit or delete it within the window."""
    data = await json_body(comment_request)
    record = await site_for_request(site)
    submitted = await runtime().comments.submit(record, comment_input(data), client_ip())
    return Response(accepted_json(submitted), status=202, content_type="application/json")


@comments.get("")
@tag(["public"])
@document_querystring(ThreadQuery)
@document_response(ThreadResponse, 200)
@validate_response(ErrorResponse, 400)
@validate_response(ErrorResponse, 403)
@validate_response(ErrorResponse, 404)
@validate_response(ErrorResponse, 503)
async def read_thread(site: str) -> Response:
    """A page's comments: `limit` top-level comments from `offset`, in `sort` order, each
    followed by its replies. Pending comments are included only for their own author."""
    query = thread_query()
    record = await site_for_request(site)
    await rate_limit("reads", record.name)
    body = await runtime().comments.thread_json(record, query.path, query.sort, query.limit,
                                                query.offset, query.visitor)
    # Cut from a prepared thread whose shape tests/web/test_thread_reads.py checks against
    # ThreadResponse: validating 200 comments per read would cost more than the read.
    return Response(body, status=200, content_type="application/json")


@comments.patch("/<comment_id>")
@tag(["public"])
@validate_request(CommentEditRequest)
@validate_response(CommentChanged, 202)
@validate_response(ErrorResponse, 400)
@validate_response(ErrorResponse, 403)
@validate_response(ErrorResponse, 404)
@validate_response(ErrorResponse, 409)
@validate_response(ErrorResponse, 429)
@validate_response(ErrorResponse, 503)
async def edit_comment(site: str, comment_id: str, data: CommentEditRequest):
    """The author edits their comment (with its edit token, within the edit window). A
    deleted comment cannot be edited: 409 `comment_deleted`."""
    record = await site_for_request(site)
    # Each edit is pushed to every open copy of the page: limited like interactions.
    await rate_limit("interactions", record.name)
    html = await runtime().comments.edit(record, comment_id, data.edit_token, data.body)
    return CommentChanged(id=comment_id, status="edited", html=html), 202


@comments.delete("/<comment_id>")
@tag(["public"])
@validate_request(CommentDeleteRequest)
@validate_response(CommentChanged, 202)
@validate_response(ErrorResponse, 400)
@validate_response(ErrorResponse, 403)
@validate_response(ErrorResponse, 404)
@validate_response(ErrorResponse, 429)
@validate_response(ErrorResponse, 503)
async def delete_comment(site: str, comment_id: str, data: CommentDeleteRequest):
    """The author deletes their comment; its replies keep their place under "[deleted]"."""
    record = await site_for_request(site)
    await rate_limit("interactions", record.name)
    await runtime().comments.delete(record, comment_id, data.edit_token)
    return CommentChanged(id=comment_id, status="deleted"), 202


@comments.post("/<comment_id>/vote")
@tag(["public"])
@validate_request(VoteRequest)
@validate_response(VoteResponse, 200)
@validate_response(ErrorResponse, 400)
@validate_response(ErrorResponse, 403)
@validate_response(ErrorResponse, 404)
@validate_response(ErrorResponse, 429)
@validate_response(ErrorResponse, 503)
async def vote(site: str, comment_id: str, data: VoteRequest) -> VoteResponse:
    """Vote a comment up or down (one vote per visitor, changeable; `none` withdraws it).
    Counted like page interactions: in Redis at once, in SQL at the next flush."""
    record = await site_for_request(site)
    await rate_limit("interactions", record.name, data.visitor)
    result = await runtime().comments.vote(record, comment_id, data.vote, data.visitor)
    return VoteResponse(**result)
