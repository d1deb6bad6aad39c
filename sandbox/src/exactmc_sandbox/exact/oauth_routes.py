"""The OAuth endpoints of each region: authorize (auto-approved) and token."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, redirect, request

from exactmc_sandbox.exact.model import REGIONS
from exactmc_sandbox.exact.oauth import OAuthError, TokenAuthority
from exactmc_sandbox.exact.store import DataStore


def register_oauth(app: Flask, authority: TokenAuthority, store: DataStore) -> None:
    @app.get("/<region>/api/oauth2/auth")
    def _authorize(region: str) -> Any:
        """Auto-approves (the sandbox user always consents) and redirects with a code."""
        if region not in REGIONS or region not in store.companies:
            return Response(f"No Exact Online company on region {region!r}", 400)
        redirect_uri = request.args.get("redirect_uri")
        if not redirect_uri or request.args.get("response_type", "code") != "code":
            return Response("redirect_uri and response_type=code are required", 400)
        try:
            code = authority.issue_code(region, request.args.get("client_id", ""), redirect_uri)
        except OAuthError as exc:
            return Response(exc.body["error_description"], 400)
        params = {"code": code}
        if "state" in request.args:
            params["state"] = request.args["state"]
        separator = "&" if "?" in redirect_uri else "?"
        return redirect(f"{redirect_uri}{separator}{urlencode(params)}", 302)

    @app.post("/<region>/api/oauth2/token")
    def _token(region: str) -> Any:
        if region not in REGIONS:
            return Response(json.dumps({"error": "invalid_request"}), 404,
                            mimetype="application/json")
        if request.mimetype != "application/x-www-form-urlencoded":
            return _oauth_error(OAuthError(400, "invalid_request",
                                           "The body must be application/x-www-form-urlencoded"))
        try:
            tokens = authority.token(region, request.form.to_dict())
        except OAuthError as exc:
            return _oauth_error(exc)
        response = Response(json.dumps(tokens), 200, mimetype="application/json")
        response.headers["Cache-Control"] = "no-store"
        return response


def _oauth_error(exc: OAuthError) -> Response:
    response = Response(json.dumps(exc.body), exc.status, mimetype="application/json")
    response.headers.update(exc.headers)
    return response
