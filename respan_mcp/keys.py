"""Whose Respan key a call is made with: the key policy, in one place.

On stdio the server's key is the host's own. Over HTTP, `Authorization: Bearer <key>`
is the caller's key for that call only. A caller without one gets the server's key
only where the server may lend it: a caller signed in through the team's identity
provider, a loopback bind that no proxy forwards to, or `--allow-server-key`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# Headers a proxy adds: their presence means loopback no longer says who the caller is.
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")
SEND_YOUR_KEY = "add the header 'Authorization: Bearer <your Respan API key>' to your MCP client's configuration"


class KeyRefused(Exception):
    """This caller may not use the server's key and sent none of its own; `str()` says what to do."""


@dataclass
class KeyPolicy:
    """What decides whether the server's key is lent; `loopback_bind` is set by the HTTP transport."""

    server_has_key: bool
    allow_server_key: bool = False
    loopback_bind: bool = False

    def refusal(self, headers: Mapping[str, str]) -> str | None:
        """Why an HTTP caller without a key of their own may not use the server's; None when they may.

        A loopback bind says the caller is on this machine only while nothing forwards
        to it: behind a proxy every request comes from loopback, so a forwarding header
        withdraws the loan. `--allow-server-key` lends it to whoever can reach the port.
        """
        if not self.server_has_key:
            return "This server has no Respan API key of its own"
        if self.allow_server_key:
            return None
        if not self.loopback_bind:
            return "This server lends its Respan API key only to callers on its own machine"
        if any(name in headers for name in FORWARDING_HEADERS):
            return "This server does not lend its Respan API key to requests that came through a proxy"
        return None

    def caller_key(self, headers: Mapping[str, str] | None, *, signed_in: bool = False) -> str | None:
        """The key this call is made with: the caller's own, or None for the server's.

        `headers` is None on stdio and in-process. A caller signed in through the identity
        provider writes with the server's key: its bearer token is for us, never for Respan.
        Raises KeyRefused before anything is sent when the server's key may not be lent.
        """
        if headers is None or signed_in:
            if signed_in and not self.server_has_key:
                raise KeyRefused(
                    "You are signed in, but this server has no Respan API key to write with: ask its operator to "
                    "set RESPAN_API_KEY. Nothing was sent to Respan."
                )
            return None
        scheme, _, token = (headers.get("authorization") or "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        refusal = self.refusal(headers)
        if refusal:
            raise KeyRefused(f"{refusal}: {SEND_YOUR_KEY}. Nothing was sent to Respan.")
        return None
