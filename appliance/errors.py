"""One error vocabulary with stable codes, raised in the domain and translated at each edge.

`web` turns an `OvationError` into `{"error": {"code", "message"}}` with `status`; `cli` prints
the message on one line and exits with `exit_code`.
"""

from __future__ import annotations


class OvationError(Exception):
    """A failure a caller can act on. `code` is stable and documented; `message` is for humans."""

    code = "error"
    status = 400
    exit_code = 1

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 details: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details = details or {}


class InvalidInput(OvationError):
    """A field is missing, malformed or out of range."""

    code = "invalid_input"
    status = 400


class UnknownSite(OvationError):
    code = "unknown_site"
    status = 404


class UnknownPage(OvationError):
    code = "unknown_page"
    status = 404


class UnknownReaction(OvationError):
    code = "unknown_reaction"
    status = 400


class ReactionRejected(OvationError):
    """A reaction plugin's own validation refused the interaction."""

    code = "reaction_rejected"
    status = 400


class ReactionUnavailable(OvationError):
    """A reaction plugin failed while handling the interaction; other types still work."""

    code = "reaction_unavailable"
    status = 503


class InvalidPath(OvationError):
    code = "invalid_path"
    status = 400


class OriginNotAllowed(OvationError):
    code = "origin_not_allowed"
    status = 403


class Conflict(OvationError):
    code = "conflict"
    status = 409


class RateLimited(OvationError):
    """Too many requests; `retry_after_s` becomes the Retry-After header."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message, details={"retry_after_s": retry_after_s})
        self.retry_after_s = retry_after_s


class UnknownComment(OvationError):
    code = "unknown_comment"
    status = 404


class UnknownBan(OvationError):
    code = "unknown_ban"
    status = 404


class EmailDisabled(OvationError):
    """Asked for something that needs e-mail, and this appliance has no SMTP server set."""

    code = "email_disabled"
    status = 409


class Forbidden(OvationError):
    """Refused for this caller: a ban, a wrong edit token, a closed edit window."""

    code = "forbidden"
    status = 403


class Unauthorized(OvationError):
    """No admin token, or one that is unknown or revoked (the answer does not say which)."""

    code = "unauthorized"
    status = 401


class UnknownToken(OvationError):
    code = "unknown_token"
    status = 404


class ServiceUnavailable(OvationError):
    """Redis or the database cannot be reached right now."""

    code = "service_unavailable"
    status = 503
    exit_code = 3


class ConfigError(OvationError):
    """A setting has a bad value; start-up stops with one clear line."""

    code = "bad_config"
    status = 500
    exit_code = 2


class PluginError(OvationError):
    """A plugin cannot be loaded (duplicate name, bad declaration)."""

    code = "plugin_error"
    status = 500
    exit_code = 2


# -- operations on a host (issue 7: install, systemd, backups, imports) -------------------------

class SystemdUnavailable(OvationError):
    """systemd is not the init system here, so units cannot be installed or driven."""

    code = "systemd_unavailable"
    status = 500
    exit_code = 2


class OperationFailed(OvationError):
    """A host operation failed: systemctl, pg_dump, a file that cannot be written."""

    code = "operation_failed"
    status = 500
    exit_code = 1


class InvalidImport(OvationError):
    """An import or backup file is malformed or of the wrong kind; nothing was written."""

    code = "invalid_import"
    status = 400
    exit_code = 1


ERROR_CODES: dict[str, str] = {
    "invalid_input": "A field is missing, malformed or out of range (details name the field).",
    "invalid_json": "The body is not valid UTF-8 JSON.",
    "invalid_path": "The page path cannot be normalised or is too long.",
    "unknown_site": "No site has that name.",
    "unknown_page": "The site accepts only published pages and this one is not published.",
    "unknown_reaction": "No enabled reaction type has that name, or it lacks the action.",
    "reaction_rejected": "The reaction type's plugin refused this interaction (the message "
    "says why).",
    "reaction_unavailable": "The reaction type's plugin failed; other types keep working. The "
    "log and `platformctl plugins list` say more.",
    "origin_not_allowed": "The request's Origin is not one of the site's allowed origins.",
    "not_found": "No route matches the URL.",
    "method_not_allowed": "The route does not accept that HTTP method.",
    "payload_too_large": "The request body is larger than allowed.",
    "conflict": "The thing to create exists already.",
    "rate_limited": "Too many requests; the Retry-After header says when to try again.",
    "duplicate_comment": "The same visitor posted the same comment on this page moments ago.",
    "unknown_comment": "No comment of this site has that id.",
    "unknown_parent": "The comment replied to does not exist on this page.",
    "banned": "This visitor or network may not comment on this site.",
    "invalid_edit_token": "The edit token does not match the comment.",
    "edit_window_closed": "The comment can no longer be edited or deleted by its author.",
    "comment_deleted": "The comment was deleted: it can no longer be edited.",
    "unknown_ban": "No ban of this site has that id, or matches that comment's author.",
    "unauthorized": "The admin API needs a valid bearer token (Authorization: Bearer ovt_...).",
    "forbidden": "The caller may not do this: a token lacking the scope or bound to another "
    "site, or a rule that refuses this visitor.",
    "unknown_token": "No admin token has that id (CLI only).",
    "too_many_subscriptions": "A live connection asked to follow more pages than allowed.",
    "http_error": "Another HTTP error (the status says which).",
    "bad_config": "A setting has a bad value (CLI and start-up only).",
    "plugin_error": "A reaction plugin cannot be loaded (CLI and start-up only).",
    "service_unavailable": "Redis or the database cannot be reached; try again shortly.",
    "internal_error": "A bug in Ovation; the log has the details.",
    # operations on a host (issue 7)
    "systemd_unavailable": "systemd is not running on this host; use `platformctl up` "
    "(CLI only).",
    "operation_failed": "A host operation (systemctl, pg_dump, writing a file) failed "
    "(CLI only).",
    "invalid_import": "An import or backup file is malformed or of the wrong kind; nothing "
    "was written (CLI only).",
    # notifications (issue 4)
    "invalid_token": "A confirmation or unsubscribe link is malformed, altered or expired.",
    "unsafe_url": "A webhook URL is not http(s), or points at a loopback, private, link-local "
    "or metadata address (CLI only).",
    "unknown_notification": "No notification or dead letter has that id (CLI only).",
    "unknown_webhook": "No webhook has that id (CLI only).",
}
