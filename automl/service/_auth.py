"""Bearer tokens and bounded request bodies: one ASGI guard in front of every route.

The guard runs before routing, so an unknown path and an unknown experiment look the same to a
caller without a valid token (401), and no route can be added that skips it. Reads (GET, HEAD,
OPTIONS) need any valid token; everything else needs a read-write one (403 otherwise). A token
is read-only unless marked ``rw``: submitted specs run commands on the workers' machines, so
write access means code execution there.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from automl.errors import SpecError

__all__ = ["OPEN_PATHS", "Guard", "Tokens", "is_loopback", "load_tokens"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Liveness probes carry no token; /healthz says only "ok" and reveals nothing stored.
OPEN_PATHS = frozenset({"/healthz"})
_READ = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Tokens:
    """Accepted bearer tokens, each read-only (``ro``) or read-write (``rw``)."""

    modes: tuple[tuple[str, str], ...]

    def mode(self, token: str) -> str | None:
        """``ro``, ``rw``, or None for a token that is not accepted (constant-time compare)."""
        found = None
        for known, mode in self.modes:
            if secrets.compare_digest(known.encode(), token.encode()):
                found = mode
        return found


def _parse(lines: list[tuple[str, str]]) -> Tokens:
    modes: list[tuple[str, str]] = []
    for where, line in lines:
        parts = line.replace(":", " ").split()
        if not parts:
            continue
        token, mode = parts[0], (parts[1] if len(parts) > 1 else "ro")
        if mode not in ("ro", "rw") or len(parts) > 2:
            raise SpecError(f"must be 'TOKEN [ro|rw]'; got {line.strip()!r}", path=where)
        if len(token) < 16:
            raise SpecError("a token must have at least 16 characters", path=where)
        modes.append((token, mode))
    if not modes:
        raise SpecError("holds no token", path=lines[0][0] if lines else "tokens")
    return Tokens(tuple(modes))


def load_tokens(path: str | Path | None = None, env: str = "AUTOML_TOKENS") -> Tokens | None:
    """Tokens from a file (``TOKEN [ro|rw]`` per line, ``#`` comments) or ``$AUTOML_TOKENS``.

    The variable holds the same pairs separated by commas (``tok1:rw,tok2``). None when neither
    is given.

    Raises:
        SpecError: An unreadable file or a malformed line, named by file and line.
    """
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise SpecError(
                f"cannot read {str(p)!r}: {exc.strerror or exc}", path="--tokens"
            ) from None
        lines = [
            (f"{p}:{n}", line.split("#", 1)[0])
            for n, line in enumerate(text.splitlines(), 1)
            if line.split("#", 1)[0].strip()
        ]
        return _parse(lines or [(str(p), "")])
    value = os.environ.get(env, "").strip()
    if not value:
        return None
    return _parse([(f"${env}", item) for item in value.split(",") if item.strip()])


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Guard:
    """ASGI middleware: authentication, authorization and the body limit, before routing."""

    def __init__(
        self,
        app: ASGIApp,
        tokens: Tokens | None,
        max_body: int,
        observe: Callable[[str, str, float], None] | None = None,
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.max_body = max_body
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        try:
            await self._guarded(scope, receive, send)
        finally:
            if self.observe is not None:  # request latency by route (the router set it)
                route = getattr(scope.get("route"), "path", "other")
                self.observe(scope["method"], route, time.perf_counter() - start)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if self.tokens is not None and scope["path"] not in OPEN_PATHS:
            header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            scheme, _, token = header.partition(" ")
            mode = self.tokens.mode(token.strip()) if scheme.lower() == "bearer" else None
            if mode is None:
                await _reply(
                    send,
                    401,
                    "unauthorized",
                    "a valid bearer token is required (Authorization: Bearer TOKEN)",
                    [(b"www-authenticate", b'Bearer realm="automl"')],
                )
                return
            if method not in _READ and mode != "rw":
                await _reply(send, 403, "forbidden", "this token is read-only")
                return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await _reply(send, 413, "too_large", f"the body is over {self.max_body} bytes")
            return
        if method in _READ:
            await self.app(scope, receive, send)
            return
        # Read the (chunked or declared) body up to the limit, then hand it on.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _reply(send, 413, "too_large", f"the body is over {self.max_body} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _reply(
    send: Send,
    status: int,
    kind: str,
    message: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = json.dumps({"error": kind, "message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
