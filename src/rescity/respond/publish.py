"""Publishing channels for public warnings (预警发布渠道): file drop, webhook, e-mail.

Every channel implements one :class:`Publisher` protocol::

    receipt = publisher.publish(warning, payload, content_type)

``payload`` is the already-encoded message (``rescity.io.cap.write_cap(w)`` with
``application/cap+xml``, or ``rescity.io.gbwarning.write_gb(w)`` with
``application/xml``); ``warning`` gives the channel what it needs besides the bytes
(identifier for names, headlines for an e-mail body). A publisher never raises for a
delivery failure: the :class:`PublishReceipt` says ``ok=False`` with the error, so a
service can record every attempt in the audit trail and retry or escalate. Bad
arguments (an empty recipient list, a non-http URL) raise ``ValueError`` at construction.

Time: a publisher takes no "now" from the clock for its logic; ``sleep`` (webhook
backoff) is injectable so tests run without waiting.
"""

from __future__ import annotations

import os
import re
import smtplib
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol, runtime_checkable

from rescity.model.publication import PublicWarning, level_label_en, level_label_zh


@dataclass(frozen=True, slots=True)
class PublishReceipt:
    """The outcome of one publication on one channel.

    ``channel`` is ``"file"``, ``"webhook"`` or ``"smtp"``; ``target`` the path, URL or
    recipients; ``status`` the HTTP status or SMTP reply code when there is one;
    ``attempts`` how many tries were made; ``detail`` the error or the server's reply.
    """

    channel: str
    target: str
    ok: bool
    identifier: str
    attempts: int = 1
    status: int | None = None
    detail: str = ""
    location: str | None = None
    refused: tuple[str, ...] = field(default=())


@runtime_checkable
class Publisher(Protocol):
    """A channel that delivers an encoded warning."""

    def publish(self, warning: PublicWarning, payload: bytes, content_type: str) -> PublishReceipt: ...


_EXT = {"application/cap+xml": ".cap.xml", "application/xml": ".xml", "text/xml": ".xml",
        "application/json": ".json"}
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def file_name(identifier: str, content_type: str) -> str:
    """A safe file name for a warning: the identifier (unsafe characters -> ``_``) + extension."""
    base = _SAFE.sub("_", identifier).strip("._") or "warning"
    return base + _EXT.get(content_type.split(";")[0].strip().lower(), ".bin")


class FilePublisher:
    """Drops each message into ``directory`` atomically (write a temp file, fsync, rename).

    The name comes from the identifier (:func:`file_name`), so republishing the same
    message replaces its file and a reader never sees a half-written one.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def publish(self, warning: PublicWarning, payload: bytes, content_type: str) -> PublishReceipt:
        target = self.directory / file_name(warning.identifier, content_type)
        tmp: str | None = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.directory)
            with os.fdopen(fd, "wb") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
            tmp = None
        except OSError as exc:
            return PublishReceipt("file", str(target), False, warning.identifier, detail=str(exc))
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
        return PublishReceipt("file", str(target), True, warning.identifier, location=str(target),
                              detail=f"{len(payload)} bytes")


class WebhookPublisher:
    """HTTP POST of the message to ``url``, retried with exponential backoff.

    Headers: ``Content-Type`` as given, ``Authorization: Bearer <token>`` when a token is
    set, ``X-Warning-Identifier``. Any 2xx is success. A connection error, a timeout, a
    429 or a 5xx is retried up to ``retries`` more times, waiting
    ``backoff_s * 2**k`` seconds before retry ``k+1`` (k = 0, 1, ...); other 4xx are
    final. ``timeout_s`` bounds each attempt (seconds).
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout_s: float = 10.0,
        *,
        retries: int = 3,
        backoff_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not re.match(r"https?://", url):
            raise ValueError(f"webhook URL must start with http:// or https://, found {url!r}")
        if retries < 0 or backoff_s < 0 or timeout_s <= 0:
            raise ValueError("retries and backoff_s must be >= 0 and timeout_s > 0")
        self.url = url
        self.token = token
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.sleep = sleep

    def publish(self, warning: PublicWarning, payload: bytes, content_type: str) -> PublishReceipt:
        headers = {"Content-Type": content_type, "X-Warning-Identifier": warning.identifier,
                   "User-Agent": "rescity-publisher"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        status: int | None = None
        detail = ""
        attempt = 0
        for attempt in range(1, self.retries + 2):
            if attempt > 1:
                self.sleep(self.backoff_s * 2 ** (attempt - 2))
            req = urllib.request.Request(self.url, data=payload, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310 (scheme checked)
                    status = resp.status
                    body = resp.read(2048).decode("utf-8", "replace")
                    return PublishReceipt("webhook", self.url, True, warning.identifier, attempts=attempt,
                                          status=status, detail=body, location=resp.headers.get("Location"))
            except urllib.error.HTTPError as exc:
                status = exc.code
                detail = f"HTTP {exc.code} {exc.reason}"
                if not (exc.code == 429 or exc.code >= 500):
                    break
            except (urllib.error.URLError, OSError) as exc:
                status = None
                detail = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        return PublishReceipt("webhook", self.url, False, warning.identifier, attempts=attempt,
                              status=status, detail=detail)


def email_body(warning: PublicWarning) -> str:
    """The plain-text body: the Chinese text first, then the English, then the identity."""
    zh, en = warning.zh, warning.en
    lines = [
        f"【{level_label_zh(warning.level)}】{zh.headline}",
        "",
        zh.description,
    ]
    if zh.instruction:
        lines += ["", f"防御指南：{zh.instruction}"]
    if zh.area_desc:
        lines += [f"影响区域：{zh.area_desc}"]
    lines += ["", "-" * 40, "", f"[{level_label_en(warning.level)}] {en.headline}", "", en.description]
    if en.instruction:
        lines += ["", f"What to do: {en.instruction}"]
    if en.area_desc:
        lines += [f"Area: {en.area_desc}"]
    lines += ["", "-" * 40,
              f"{warning.msg_type.value} {warning.identifier} ({warning.status.value}), "
              f"sent {warning.sent.isoformat()} by {warning.sender}"]
    if warning.references:
        lines.append("References: " + " ".join(r.identifier for r in warning.references))
    if warning.contact:
        lines.append(f"Contact / 联系: {warning.contact}")
    if warning.web:
        lines.append(warning.web)
    return "\n".join(lines) + "\n"


def email_subject(warning: PublicWarning) -> str:
    prefix = {"Alert": "", "Update": "[更新 Update] ", "Cancel": "[解除 Cancel] "}[warning.msg_type.value]
    test = "" if warning.status.value == "Actual" else f"[{warning.status.value}] "
    return f"{test}{prefix}{level_label_zh(warning.level)} {warning.zh.headline} / {warning.en.headline}"


class SmtpPublisher:
    """Sends the message by e-mail: a multipart message, text body in zh-CN and English,
    the encoded warning attached (``<file name>`` from the identifier).

    ``starttls`` upgrades the connection before sending; ``username``/``password`` log in
    when given. ``timeout_s`` bounds the connection (seconds).
    """

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        starttls: bool = False,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        if not recipients:
            raise ValueError("an SMTP publisher needs at least one recipient")
        self.host = host
        self.port = port
        self.sender = sender
        self.recipients = tuple(recipients)
        self.starttls = starttls
        self.username = username
        self.password = password
        self.timeout_s = timeout_s

    def message(self, warning: PublicWarning, payload: bytes, content_type: str) -> EmailMessage:
        """The e-mail as it is sent (exposed for previews and tests)."""
        msg = EmailMessage()
        msg["Subject"] = email_subject(warning)
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg["X-Warning-Identifier"] = warning.identifier
        msg.set_content(email_body(warning))
        maintype, _, subtype = content_type.split(";")[0].strip().partition("/")
        msg.add_attachment(payload, maintype=maintype or "application", subtype=subtype or "octet-stream",
                           filename=file_name(warning.identifier, content_type))
        return msg

    def publish(self, warning: PublicWarning, payload: bytes, content_type: str) -> PublishReceipt:
        target = ", ".join(self.recipients)
        msg = self.message(warning, payload, content_type)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.username:
                    smtp.login(self.username, self.password or "")
                refused = smtp.send_message(msg, from_addr=self.sender, to_addrs=list(self.recipients))
                code, reply = smtp.noop()
        except (smtplib.SMTPException, OSError) as exc:
            code_attr = getattr(exc, "smtp_code", None)
            return PublishReceipt("smtp", target, False, warning.identifier,
                                  status=code_attr if isinstance(code_attr, int) else None,
                                  detail=f"{type(exc).__name__}: {exc}")
        return PublishReceipt("smtp", target, True, warning.identifier, status=code,
                              detail=reply.decode("utf-8", "replace"), refused=tuple(sorted(refused)))


__all__ = [
    "FilePublisher",
    "PublishReceipt",
    "Publisher",
    "SmtpPublisher",
    "WebhookPublisher",
    "email_body",
    "email_subject",
    "file_name",
]
