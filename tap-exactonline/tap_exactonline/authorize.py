"""`tap-exactonline-authorize`: the OAuth authorization-code flow, tokens stored encrypted.

Opens (or prints) Exact's sign-in URL, catches the redirect on a local listener, trades the code
for tokens and writes them to the token store. Prints no secret. `--fetch` requests the sign-in
URL itself, which only works where consent needs no person (the sandbox auto-approves), so the
demo can run it headless.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import sys
import threading
import time
import webbrowser
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import requests

from tap_exactonline.tap import TapExactOnline, resolve_base_url
from tap_exactonline.token_store import TokenRecord, TokenStore, fingerprint

DEFAULT_REDIRECT_URI = "http://localhost:8765/callback"
REQUIRED = ("client_id", "client_secret", "token_store_key")


class AuthorizeError(Exception):
    """The flow could not finish; the message says why (and never holds a secret)."""


class _CallbackServer(HTTPServer):
    def __init__(self, address: tuple[str, int], path: str) -> None:
        super().__init__(address, _CallbackHandler)
        self.expected_path = path
        self.result: dict[str, str] = {}
        self.done = threading.Event()


class _CallbackHandler(BaseHTTPRequestHandler):
    server: _CallbackServer

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != self.server.expected_path:
            self.send_error(404)
            return
        self.server.result = {k: v[0] for k, v in parse_qs(parts.query).items()}
        ok = "code" in self.server.result
        self.send_response(200 if ok else 400)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.end_headers()
        message = "Exact Online access granted; you can close this window." if ok else (
            "Exact Online did not grant access.")
        self.wfile.write(message.encode())
        self.server.done.set()

    def log_message(self, format: str, *args: object) -> None:
        pass  # the query holds the authorization code: keep it out of the terminal


def load_config(paths: list[str], required: tuple[str, ...] = REQUIRED) -> dict:
    """The same config the tap reads: files and/or `ENV` (TAP_EXACTONLINE_* variables)."""
    files = [p for p in paths if p != "ENV"]
    for path in files:
        if not Path(path).is_file():
            raise AuthorizeError(f"Config file not found: {path}")
    tap = TapExactOnline(
        config=files or None, parse_env_config="ENV" in paths or not files,
        validate_config=False, setup_mapper=False,
    )
    config = dict(tap.config)
    missing = [name for name in required if not config.get(name)]
    if missing:
        raise AuthorizeError(f"Missing setting(s): {', '.join(missing)}.")
    return config


def _listener(redirect_uri: str) -> tuple[_CallbackServer, str]:
    """Start the local redirect listener; port 0 picks a free port (and fixes the URI)."""
    parts = urlsplit(redirect_uri)
    if parts.scheme != "http" or parts.hostname not in ("localhost", "127.0.0.1"):
        raise AuthorizeError(
            "redirect_uri must be http://localhost:<port>/<path> for the local listener."
        )
    port = parts.port if parts.port is not None else 80
    server = _CallbackServer(("127.0.0.1", port), parts.path or "/")
    if port == 0:
        netloc = f"{parts.hostname}:{server.server_address[1]}"
        redirect_uri = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, redirect_uri


def authorize(
    config: dict, *, fetch: bool = False, open_browser: bool = True, timeout: float = 300,
    out: object = sys.stdout,
) -> TokenRecord:
    base_url = resolve_base_url(config)
    server, redirect_uri = _listener(config.get("redirect_uri") or DEFAULT_REDIRECT_URI)
    state = secrets.token_urlsafe(16)
    auth_url = f"{base_url}/api/oauth2/auth?" + urlencode({
        "client_id": config["client_id"], "redirect_uri": redirect_uri,
        "response_type": "code", "force_login": "0", "state": state,
    })
    try:
        print(f"Sign in to Exact Online and grant access:\n  {auth_url}", file=out, flush=True)
        if fetch:
            # Follows the redirect to our own listener (works where consent is automatic).
            requests.get(auth_url, timeout=30, allow_redirects=True)
        elif open_browser:
            webbrowser.open(auth_url)
        if not server.done.wait(timeout):
            raise AuthorizeError(f"No redirect arrived within {timeout:.0f} s.")
    finally:
        server.shutdown()
        server.server_close()

    result = server.result
    if result.get("state") != state:
        raise AuthorizeError("The redirect's state does not match: possible forgery, aborted.")
    if "code" not in result:
        raise AuthorizeError(f"Exact refused: {result.get('error_description') or result}.")

    response = requests.post(
        f"{base_url}/api/oauth2/token",
        data={
            "grant_type": "authorization_code", "code": result["code"],
            "redirect_uri": redirect_uri, "client_id": config["client_id"],
            "client_secret": config["client_secret"],
        },
        headers={"Accept": "application/json"},
        timeout=60,
    )
    if not response.ok:
        try:
            body = response.json()
            reason = f"{body.get('error')}: {body.get('error_description')}"
        except ValueError:
            reason = response.reason
        raise AuthorizeError(f"The code exchange failed ({response.status_code} {reason}).")
    tokens = response.json()
    bootstrap = config.get("refresh_token")
    record = TokenRecord(
        refresh_token=tokens["refresh_token"],
        access_token=tokens["access_token"],
        issued_at=time.time(),
        lifetime=float(tokens.get("expires_in") or 600),  # a string in Exact's answer
        base_url=base_url,
        # The config's bootstrap token (if any) predates this grant: never fall back to it.
        bootstrap_fingerprint=fingerprint(bootstrap) if bootstrap else None,
    )
    store = TokenStore(config.get("token_store_path"), config["token_store_key"],
                       config["client_id"], name=config.get("token_store_name"))
    with store.locked():
        store.write(record)
    print(
        f"Authorized. Tokens stored encrypted in {store.label} "
        f"(as {store.name}).",
        file=out,
    )
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tap-exactonline-authorize",
        description="Authorize tap-exactonline with Exact Online and store the tokens encrypted.",
    )
    parser.add_argument("--config", action="append", default=[],
                        help="Config JSON file (repeatable) or ENV for TAP_EXACTONLINE_* vars.")
    parser.add_argument("--fetch", action="store_true",
                        help="Request the sign-in URL ourselves (auto-approving hosts only).")
    parser.add_argument("--no-browser", action="store_true", help="Only print the URL.")
    parser.add_argument("--timeout", type=float, default=300,
                        help="Seconds to wait for the redirect.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        config = load_config(args.config or ["ENV"])
        authorize(config, fetch=args.fetch, open_browser=not args.no_browser,
                  timeout=args.timeout)
    except (AuthorizeError, requests.RequestException) as exc:
        print(f"Authorization failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
