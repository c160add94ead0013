"""Notifications: a run report by SMTP (STARTTLS, SSL or plain): a text part, an optional HTML part and
attachments, secrets masked by the caller's masker."""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage

from utilities.secrets import Secret

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SmtpSettings:
    """``ETL_SMTP_HOST``, ``_PORT``, ``_USER``, ``_PASSWORD``, ``_FROM``, ``_SECURITY`` (starttls|ssl|none),
    ``_TIMEOUT`` (seconds per network step) and ``_CA_FILE`` (a CA bundle to trust besides the system's)."""

    host: str
    port: int
    sender: str
    user: str | None = None
    password: Secret | None = None
    security: str = "starttls"
    timeout: float = 15.0
    ca_file: str | None = None


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: str
    subtype: str = "html"


def compose(
    sender: str,
    to: Sequence[str],
    subject: str,
    text: str,
    mask: Callable[[str], str],
    html: str | None = None,
    attachments: Sequence[Attachment] = (),
) -> EmailMessage:
    """A text message, ``multipart/alternative`` with ``html``, inside ``multipart/mixed`` with attachments;
    every part passes through ``mask``."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Subject"] = mask(subject)
    message.set_content(mask(text))
    if html is not None:
        message.add_alternative(mask(html), subtype="html")
    for item in attachments:
        message.add_attachment(mask(item.content), subtype=item.subtype, filename=item.filename)
    return message


def send_message(smtp: SmtpSettings, message: EmailMessage) -> None:
    """Send one message; raises OSError or smtplib.SMTPException on failure (the caller logs it). Each
    network step waits at most ``smtp.timeout`` seconds; the password is sent only, never logged."""
    context = ssl.create_default_context()
    if smtp.ca_file:
        context.load_verify_locations(cafile=smtp.ca_file)
    client: smtplib.SMTP
    if smtp.security == "ssl":
        client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout, context=context)
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
    with client:
        if smtp.security == "starttls":
            client.starttls(context=context)
        if smtp.user and smtp.password:
            client.login(smtp.user, smtp.password.reveal())
        client.send_message(message)
    logger.info("sent the run report to %s", message["To"])


def send_email(smtp: SmtpSettings, to: Sequence[str], subject: str, body: str, mask: Callable[[str], str]) -> None:
    """Send one plain-text message (see :func:`send_message`)."""
    send_message(smtp, compose(smtp.sender, to, subject, body, mask))
