"""Publishers: file drop, webhook against a real local HTTP server, e-mail against a real local SMTP server."""

from __future__ import annotations

import email
import socket
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.header import decode_header, make_header
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from rescity.io.cap import CONTENT_TYPE, read_cap, write_cap
from rescity.model.publication import PublicWarning, WarningText, warning_cancel
from rescity.respond.publish import (
    FilePublisher,
    Publisher,
    SmtpPublisher,
    WebhookPublisher,
    file_name,
)

BJ = timezone(timedelta(hours=8))
T0 = datetime(2024, 7, 1, 8, 30, tzinfo=BJ)


def _warning() -> PublicWarning:
    return PublicWarning(
        identifier="32060008400000_20240701083000_0",
        sender="warning@nantong.example.cn",
        sent=T0,
        level=1,
        hazard="waterlogging",
        en=WarningText("Waterlogging at the Gongnong Road underpass", "Water 0.6 m deep and rising.",
                       "Do not drive into the underpass."),
        zh=WarningText("工农路下穿隧道积水", "积水深0.6米并持续上涨。", "请勿驾车驶入下穿隧道。"),
        observed=True,
        sender_code="32060008400000",
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- file ------------------------------------------------------------------------------------------
def test_file_publisher_drops_the_message_atomically(tmp_path: Path) -> None:
    w = _warning()
    pub = FilePublisher(tmp_path / "out")
    assert isinstance(pub, Publisher)
    r = pub.publish(w, write_cap(w), CONTENT_TYPE)
    assert r.ok and r.channel == "file"
    target = tmp_path / "out" / "32060008400000_20240701083000_0.cap.xml"
    assert r.location == str(target)
    assert read_cap(target.read_bytes()) == w
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [target.name]  # no temp file left
    # republishing replaces the file
    assert pub.publish(w, b"<x/>", CONTENT_TYPE).ok and target.read_bytes() == b"<x/>"


def test_file_name_is_safe() -> None:
    assert file_name("../../etc/passwd", "application/xml") == "etc_passwd.xml"
    assert file_name("a:b", "application/cap+xml; charset=utf-8") == "a_b.cap.xml"


def test_file_publisher_reports_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    r = FilePublisher(blocker / "sub").publish(_warning(), b"x", CONTENT_TYPE)
    assert not r.ok and r.detail


# -- webhook ---------------------------------------------------------------------------------------
class _Hook:
    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.requests: list[dict[str, Any]] = []


@pytest.fixture
def hook() -> Iterator[tuple[str, _Hook]]:
    state = _Hook([])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            code = state.statuses.pop(0) if state.statuses else 202
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"accepted" if code < 300 else b"nope")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/warnings", state
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_posts_the_payload_with_token(hook: tuple[str, _Hook]) -> None:
    url, state = hook
    w = _warning()
    payload = write_cap(w)
    r = WebhookPublisher(url, token="s3cret", timeout_s=5).publish(w, payload, CONTENT_TYPE)
    assert r.ok and r.status == 202 and r.attempts == 1 and r.detail == "accepted"
    (req,) = state.requests
    assert req["path"] == "/warnings" and req["body"] == payload
    assert req["headers"]["Content-Type"] == CONTENT_TYPE
    assert req["headers"]["Authorization"] == "Bearer s3cret"
    assert req["headers"]["X-Warning-Identifier"] == w.identifier


def test_webhook_retries_server_errors_with_backoff(hook: tuple[str, _Hook]) -> None:
    url, state = hook
    state.statuses[:] = [503, 500]
    waits: list[float] = []
    r = WebhookPublisher(url, retries=3, backoff_s=0.5, sleep=waits.append).publish(_warning(), b"<a/>", CONTENT_TYPE)
    assert r.ok and r.attempts == 3 and r.status == 202
    assert waits == [0.5, 1.0]


def test_webhook_gives_up_and_says_why(hook: tuple[str, _Hook]) -> None:
    url, state = hook
    state.statuses[:] = [500, 500, 500]
    r = WebhookPublisher(url, retries=2, sleep=lambda s: None).publish(_warning(), b"<a/>", CONTENT_TYPE)
    assert not r.ok and r.attempts == 3 and r.status == 500 and "500" in r.detail
    state.statuses[:] = [400]
    r = WebhookPublisher(url, retries=5, sleep=lambda s: None).publish(_warning(), b"<a/>", CONTENT_TYPE)
    assert not r.ok and r.attempts == 1 and r.status == 400  # client errors are not retried


def test_webhook_connection_refused_is_a_failed_receipt() -> None:
    url = f"http://127.0.0.1:{_free_port()}/"
    r = WebhookPublisher(url, retries=1, timeout_s=2, sleep=lambda s: None).publish(_warning(), b"x", CONTENT_TYPE)
    assert not r.ok and r.status is None and r.attempts == 2 and "refused" in r.detail.lower()


def test_webhook_refuses_non_http_urls() -> None:
    with pytest.raises(ValueError, match="http"):
        WebhookPublisher("file:///etc/passwd")


# -- smtp ------------------------------------------------------------------------------------------
class _Sink:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, _Sink]]:
    sink = _Sink()
    port = _free_port()
    ctl = Controller(sink, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        yield port, sink
    finally:
        ctl.stop()


def _parts(msg: Message) -> tuple[str, Message]:
    body = next(p for p in msg.walk() if p.get_content_type() == "text/plain")
    att = next(p for p in msg.walk() if p.get_filename())
    payload = body.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode(body.get_content_charset() or "utf-8"), att


def test_smtp_sends_bilingual_body_and_attached_cap(smtp_server: tuple[int, _Sink]) -> None:
    port, sink = smtp_server
    w = _warning()
    payload = write_cap(w)
    pub = SmtpPublisher("127.0.0.1", port, "rescity@city.example.cn", ["duty@city.example.cn", "ops@city.example.cn"])
    assert isinstance(pub, Publisher)
    r = pub.publish(w, payload, CONTENT_TYPE)
    assert r.ok and r.status == 250 and r.refused == ()
    ((mail_from, rcpts, raw),) = sink.messages
    assert mail_from == "rescity@city.example.cn" and rcpts == ["duty@city.example.cn", "ops@city.example.cn"]
    msg = email.message_from_bytes(raw)
    assert msg.is_multipart()
    subject = str(make_header(decode_header(msg["Subject"])))
    assert "红色预警" in subject and "工农路下穿隧道积水" in subject and "Waterlogging" in subject
    body, att = _parts(msg)
    assert "【红色预警】工农路下穿隧道积水" in body and "积水深0.6米并持续上涨。" in body
    assert "[Red warning] Waterlogging at the Gongnong Road underpass" in body
    assert "Do not drive into the underpass." in body
    assert att.get_filename() == "32060008400000_20240701083000_0.cap.xml"
    assert att.get_content_type() == CONTENT_TYPE
    attached = att.get_payload(decode=True)
    assert isinstance(attached, bytes) and read_cap(attached) == w


def test_smtp_cancel_mentions_the_original(smtp_server: tuple[int, _Sink]) -> None:
    port, sink = smtp_server
    w = _warning()
    c = warning_cancel(w, identifier="32060008400000_20240701103000_0", sent=T0 + timedelta(hours=2),
                       reason_en="Water has receded.", reason_zh="积水已退。")
    r = SmtpPublisher("127.0.0.1", port, "rescity@city.example.cn", ["duty@city.example.cn"]).publish(
        c, write_cap(c), CONTENT_TYPE)
    assert r.ok
    msg = email.message_from_bytes(sink.messages[0][2])
    body, _ = _parts(msg)
    assert "解除：工农路下穿隧道积水" in body and "Water has receded." in body
    assert f"References: {w.identifier}" in body


def test_smtp_unreachable_is_a_failed_receipt() -> None:
    pub = SmtpPublisher("127.0.0.1", _free_port(), "a@example.cn", ["b@example.cn"], timeout_s=2)
    r = pub.publish(_warning(), b"<a/>", CONTENT_TYPE)
    assert not r.ok and r.channel == "smtp" and r.detail


def test_smtp_needs_recipients() -> None:
    with pytest.raises(ValueError, match="recipient"):
        SmtpPublisher("127.0.0.1", 25, "a@example.cn", [])
