"""E-mails (.eml, .msg) to unstructured elements: the bodies, then each attachment that
can be read; one that cannot is skipped and named in a warning, never failing the mail.

unstructured partitions attachments itself, but one unreadable attachment (an image
under the "fast" strategy, audio without whisper, a PDF without unstructured-inference)
fails the whole message, and a message/rfc822 part (a digest, a forwarded mail) trips an
assertion. Here attachments go through the caller's own loader instead.
"""

from __future__ import annotations

import codecs
import email
import email.policy
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from typing import Any, cast

from headwater.ingest.errors import LoadError

ReadAttachment = Callable[[str, bytes], list[Any]]
"""Partition one attachment (its file name and bytes); raises LoadError."""

_PGP_BLOCK = re.compile(r"\A\s*-----BEGIN PGP MESSAGE-----")
_SIGNATURES = {
    "application/pgp-signature",
    "application/pkcs7-signature",
    "application/x-pkcs7-signature",
}
"""Signature parts of a signed message: no text, so left out without a warning."""
_NOT_READ = {
    "image": "an image (attached pictures are not OCRed)",
    "audio": "an audio file (not transcribed)",
    "video": "a video (not transcribed)",
}


@dataclass
class Mail:
    """What a message yielded: elements in order, and what was left out."""

    elements: list[Any] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def partition_eml(path: str, data: bytes, read: ReadAttachment) -> Mail:
    """The message's body, its attachments, and the messages it carries (a digest)."""
    data = _utf16_as_utf8(data)
    msg = cast(EmailMessage, email.message_from_bytes(data, policy=email.policy.default))
    _refuse_encrypted(path, msg)
    mail = Mail()
    _message(path, msg, data, read, mail, depth=0)
    return mail


def _utf16_as_utf8(data: bytes) -> bytes:
    """A message saved as UTF-16 (some Windows tools do), as bytes the parser reads; the
    headers are ASCII, so every other byte of the first line is NUL."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16").encode("utf-8")
    head = data[:200]
    if len(head) >= 8 and head.count(0) * 3 > len(head):
        encoding = "utf-16-le" if head[1::2].count(0) > head[0::2].count(0) else "utf-16-be"
        try:
            return data.decode(encoding).encode("utf-8")
        except UnicodeDecodeError:
            pass
    return data


def _refuse_encrypted(path: str, msg: EmailMessage) -> None:
    kind = msg.get_content_type()
    protocol = str(msg.get_param("protocol", "") or "").lower()
    if kind == "multipart/encrypted":
        which = "PGP" if "pgp" in protocol else protocol or "multipart/encrypted"
        raise LoadError(path, f"encrypted ({which}): the message can only be read with its key")
    smime = str(msg.get_param("smime-type", "") or "").lower()
    if kind in ("application/pkcs7-mime", "application/x-pkcs7-mime") and smime != "signed-data":
        raise LoadError(path, "encrypted (S/MIME): the message can only be read with its key")
    body = msg.get_body(preferencelist=("plain",)) if msg.is_multipart() else msg
    if body is not None and body.get_content_maintype() == "text":
        text = _text(body)
        if text is not None and _PGP_BLOCK.match(text):
            raise LoadError(path, "encrypted (PGP): the message can only be read with its key")


def _text(part: Message) -> str | None:
    try:
        content = cast(EmailMessage, part).get_content()
    except (LookupError, ValueError, AssertionError):
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else None
    return content if isinstance(content, str) else None


def _message(
    path: str, msg: EmailMessage, raw: bytes, read: ReadAttachment, mail: Mail, depth: int
) -> None:
    from unstructured.partition.email import partition_email

    if depth > 0:
        subject = msg.get("Subject")
        if subject:
            from unstructured.documents.elements import Title

            mail.elements.append(Title(text=str(subject)))
    if msg.get_content_type() == "multipart/digest" or _body_is_message(msg):
        body: list[Any] = []
    else:
        try:
            body = partition_email(
                file=io.BytesIO(raw), process_attachments=False, content_source="text/html"
            )
        except Exception as exc:  # the parts below may still hold the text
            mail.warnings.append(f"the body could not be read ({type(exc).__name__}: {exc})")
            body = []
    mail.elements += body
    for part in _attachments(msg):
        _attachment(path, part, read, mail, depth)


def _as_bytes(msg: EmailMessage) -> bytes:
    try:
        return msg.as_bytes()
    except (LookupError, ValueError, UnicodeError):
        return msg.as_bytes(policy=email.policy.compat32)


def _body_is_message(msg: EmailMessage) -> bool:
    return msg.is_multipart() and msg.get_body(preferencelist=("html", "plain")) is None


def _attachments(msg: EmailMessage) -> list[EmailMessage]:
    if msg.get_content_type() == "multipart/digest" or _body_is_message(msg):
        return [cast(EmailMessage, p) for p in msg.iter_parts()]
    try:
        return list(msg.iter_attachments())
    except (AttributeError, KeyError):
        return []


def _attachment(
    path: str, part: EmailMessage, read: ReadAttachment, mail: Mail, depth: int
) -> None:
    kind = part.get_content_type()
    name = part.get_filename() or f"({kind} part)"
    if kind == "message/rfc822" or part.get_content_maintype() == "multipart":
        inner = part.get_payload(0) if kind == "message/rfc822" else part
        if depth < 8 and isinstance(inner, EmailMessage):
            _message(path, inner, _as_bytes(inner), read, mail, depth + 1)
        return
    if kind in _SIGNATURES:
        return
    why = _NOT_READ.get(part.get_content_maintype())
    if why is not None:
        mail.warnings.append(f"attachment {name} skipped: {why}")
        return
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes) or not payload.strip():
        return
    if part.get_filename() is None and part.get_content_maintype() == "text":
        name = "attachment." + ("html" if part.get_content_subtype() == "html" else "txt")
    add_read(name, payload, read, mail)


def add_read(name: str, payload: bytes, read: ReadAttachment, mail: Mail) -> None:
    """Add an attachment's elements, or a warning naming it and why it was skipped."""
    try:
        mail.elements += read(name, payload)
    except LoadError as exc:
        mail.warnings.append(f"attachment {name} skipped: {exc.reason}")


def partition_msg(path: str, data: bytes, read: ReadAttachment) -> Mail:
    """An Outlook message: its body, then its attachments."""
    from oxmsg import Message as OutlookMessage
    from unstructured.partition.msg import partition_msg as unstructured_msg

    try:
        msg = OutlookMessage.load(io.BytesIO(data))
    except Exception as exc:  # oxmsg raises many types on damaged files
        raise LoadError(
            path, f"the Outlook message is corrupt: {type(exc).__name__}: {exc}"
        ) from exc
    mail = Mail(list(unstructured_msg(file=io.BytesIO(data), process_attachments=False)))
    for attachment in msg.attachments:
        name = attachment.file_name or "attachment"
        payload = attachment.file_bytes
        if not payload:
            continue
        maintype = (attachment.mime_type or "").split("/")[0]
        if maintype in _NOT_READ:
            mail.warnings.append(f"attachment {name} skipped: {_NOT_READ[maintype]}")
            continue
        add_read(name, payload, read, mail)
    return mail
