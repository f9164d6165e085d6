"""The e-mail channel: builds a MIME message (text + HTML) and sends it over SMTP.

SMTP with STARTTLS, TLS from the start, or neither (local relays only); authentication when a
username is set. Every message carries the notification's idempotency key (also in a stable
Message-ID), and reply and new-post e-mails a signed one-click unsubscribe link in the body
and in `List-Unsubscribe` / `List-Unsubscribe-Post` (RFC 8058).
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
import threading
from collections.abc import Callable
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime, parseaddr
from urllib.parse import quote, urlsplit

from appliance.notify.links import make_token
from appliance.notify.outcomes import DeliveryFailed, NothingToDeliver
from appliance.notify.queue import Delivery
from appliance.notify.subscriptions import valid_address
from appliance.notify.templates import EmailContent, Section, one_line, render_email

SUBSCRIBED_LISTS = ("replies", "posts")  # lists that need a confirmed opt-in at send time
StillSubscribed = Callable[[str, str, str], bool]  # (site, address, list) -> confirmed?
URL_HEADERS = ("list-unsubscribe",)  # RFC 2369: URLs in angle brackets, no encoded-words
MAX_HEADER_LINE = 998  # RFC 5322: no line may be longer, folded or not


class _MailPolicy(EmailPolicy):
    """Python's default e-mail policy, except that URL headers are written as they are.

    The default policy folds a header holding a word longer than a line (a URL with its
    token) into RFC 2047 encoded-words: `List-Unsubscribe: =?utf-8?q?=3Chttp…?=`, in which no
    mail client finds a link. A URL has no place to fold anyway, so it goes on one line."""

    def header_store_parse(self, name, value):
        if name.lower() in URL_HEADERS and isinstance(value, str):
            if len(value.splitlines()) > 1 or not value.isascii():
                raise ValueError(f"{name} must be one line of ASCII")
            return (name, value)  # kept a str: written unfolded (refold_source="none")
        return super().header_store_parse(name, value)


MAIL_POLICY = _MailPolicy(refold_source="none")


class EmailChannel:
    def __init__(self, settings, secret: bytes, still_subscribed: StillSubscribed) -> None:
        self.settings = settings
        self.secret = secret
        self.still_subscribed = still_subscribed
        self.public_url = settings.effective_public_url
        host = urlsplit(self.public_url).hostname or "localhost"
        self.sender = settings.smtp_from or f"Ovation <ovation@{host}>"
        self.envelope_from = parseaddr(self.sender)[1] or f"ovation@{host}"
        self.message_domain = self.envelope_from.rpartition("@")[2] or host
        self._tls: ssl.SSLContext | None = None
        self._tls_lock = threading.Lock()

    # -- building ------------------------------------------------------------------------------

    def link(self, action: str, site: str, address: str, list_name: str) -> str:
        token = make_token(self.secret, action, site, address, list_name)
        return f"{self.public_url}/notifications/{action}?token={quote(token)}"

    def build(self, delivery: Delivery) -> EmailMessage:
        """The message for a delivery; NothingToDeliver if its recipient left every list."""
        address = delivery.target
        if not valid_address(address):
            raise DeliveryFailed(f"{one_line(address, 80)!r} is not a deliverable address",
                                 permanent=True)
        content, unsubscribe = self._content(delivery)
        message = EmailMessage(policy=MAIL_POLICY)
        message["Subject"] = content.subject
        message["From"] = self.sender
        message["To"] = Address(addr_spec=address)
        message["Date"] = format_datetime(_utc_now())
        key_hash = hashlib.sha256(f"{delivery.key}\0{address}".encode()).hexdigest()[:32]
        message["Message-ID"] = f"<{key_hash}@{self.message_domain}>"
        message["Auto-Submitted"] = "auto-generated"
        message["X-Auto-Response-Suppress"] = "All"
        message["X-Ovation-Event"] = one_line(delivery.kind, 40)
        message["X-Ovation-Idempotency-Key"] = one_line(delivery.key, 200)
        if unsubscribe and _fits_a_header(unsubscribe):
            message["List-Unsubscribe"] = f"<{unsubscribe}>"
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message.set_content(content.text)
        message.add_alternative(content.html, subtype="html")
        return message

    def _content(self, delivery: Delivery) -> tuple[EmailContent, str]:
        site, address = delivery.site, delivery.target
        if delivery.kind == "confirm":
            confirm = self.link("confirm", site, address, delivery.payload.get("list_name", ""))
            return render_email("confirm", [Section("confirm", delivery.payload)],
                                confirm_link=confirm), ""
        items = delivery.items if delivery.kind == "digest" else [delivery]
        sections = []
        lists = set()
        for item in items:
            if item.list_name in SUBSCRIBED_LISTS:
                if not self.still_subscribed(site, address, item.list_name):
                    continue
                lists.add(item.list_name)
                unsubscribe = self.link("unsubscribe", site, address, item.list_name)
            else:
                unsubscribe = ""
            sections.append(Section(item.kind, item.payload, unsubscribe))
        if not sections:
            raise NothingToDeliver(f"{address} is no longer subscribed")
        # One header link: the single list, or every list of the site for a mixed digest.
        unsubscribe = ""
        if lists:
            unsubscribe = self.link("unsubscribe", site, address,
                                    lists.pop() if len(lists) == 1 else "all")
        if len(sections) == 1:
            sections = [Section(sections[0].kind, sections[0].payload, "")]
        return render_email("notification", sections, unsubscribe_link=unsubscribe), unsubscribe

    # -- sending -------------------------------------------------------------------------------

    def send(self, delivery: Delivery) -> None:
        message = self.build(delivery)
        try:
            with self._connect() as smtp:
                if self.settings.smtp_username:
                    smtp.login(self.settings.smtp_username, self.settings.smtp_password)
                smtp.send_message(message, from_addr=self.envelope_from,
                                  to_addrs=[delivery.target])
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise DeliveryFailed(f"recipient refused: {exc.recipients}",
                                 permanent=all(code >= 500 for code in codes)) from None
        except (smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as exc:
            raise DeliveryFailed(f"SMTP {exc.smtp_code}: {_reply(exc.smtp_error)}",
                                 permanent=exc.smtp_code >= 500) from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryFailed(f"SMTP {exc.smtp_code}: {_reply(exc.smtp_error)}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryFailed(f"SMTP server {self.settings.smtp_host}:"
                                 f"{self.settings.smtp_port}: {type(exc).__name__}: {exc}") \
                from None

    def _tls_context(self) -> ssl.SSLContext:
        """One TLS context for every connection. Made for each e-mail, it cost more than the
        rest of the sending: loading the system's CA certificates takes tens of milliseconds
        of CPU, holding the GIL, so the notifier's delivery threads queued behind it."""
        with self._tls_lock:
            if self._tls is None:  # made when first needed: a bad CA file fails a delivery
                self._tls = ssl.create_default_context(cafile=self.settings.smtp_ca_file or None)
            return self._tls

    def _connect(self) -> smtplib.SMTP:
        settings = self.settings
        context = self._tls_context() if settings.smtp_security != "none" else None
        timeout = settings.notify_timeout_s
        if settings.smtp_security == "tls":
            return smtplib.SMTP_SSL(settings.smtp_host, settings.smtp_port, timeout=timeout,
                                    context=context)
        smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
        try:
            smtp.ehlo()
            if settings.smtp_security == "starttls":
                smtp.starttls(context=context)
                smtp.ehlo()
        except BaseException:
            smtp.close()
            raise
        return smtp


def _fits_a_header(url: str) -> bool:
    """A link that can go into `List-Unsubscribe` as it is; one that cannot (an odd
    OVATION_PUBLIC_URL) stays in the body only, which carries it in any case."""
    return (url.isascii() and not any(char.isspace() or not char.isprintable() for char in url)
            and len(f"List-Unsubscribe: <{url}>") <= MAX_HEADER_LINE)


def _reply(error: bytes | str) -> str:
    text = error.decode(errors="replace") if isinstance(error, bytes) else str(error)
    return one_line(text, 300)


def _utc_now():
    import datetime as dt

    return dt.datetime.now(dt.UTC)
