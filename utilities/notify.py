"""Notifications: a plain-text run report by SMTP (STARTTLS, SSL or plain), secrets masked."""

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
    """``ETL_SMTP_HOST``, ``_PORT``, ``_USER``, ``_PASSWORD``, ``_FROM`` and ``_SECURITY`` (starttls|ssl|none)."""

    host: str
    port: int
    sender: str
    user: str | None = None
    password: Secret | None = None
    security: str = "starttls"
    timeout: float = 30.0


def send_email(smtp: SmtpSettings, to: Sequence[str], subject: str, body: str, mask: Callable[[str], str]) -> None:
    """Send one message; raises OSError or smtplib.SMTPException on failure (the caller logs it)."""
    message = EmailMessage()
    message["From"] = smtp.sender
    message["To"] = ", ".join(to)
    message["Subject"] = mask(subject)
    message.set_content(mask(body))
    context = ssl.create_default_context()
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
    logger.info("sent the run report to %s", ", ".join(to))
