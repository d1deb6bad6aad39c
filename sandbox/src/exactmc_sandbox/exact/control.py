"""Exact-specific control endpoints under `/_sandbox/` (never faulted, never counted)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Flask, jsonify, request

from exactmc_sandbox.exact.model import REGIONS
from exactmc_sandbox.exact.oauth import OAuthError
from exactmc_sandbox.exact.schema import ENTITY_FIELDS
from exactmc_sandbox.exact.store import NotFoundError
from exactmc_sandbox.exact.validation import InvalidInputError

if TYPE_CHECKING:  # no import cycle at run time
    from exactmc_sandbox.exact.sandbox import ExactSandbox


def _error(status: int, message: str) -> Any:
    return jsonify({"error": message}), status


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if body is None and request.data:
        raise InvalidInputError("the body is not valid JSON")
    if body is not None and not isinstance(body, dict):
        raise InvalidInputError("the body must be a JSON object")
    return body or {}


CENTURY_SECONDS = 100 * 366 * 86400


def register_exact_control(app: Flask, sandbox: ExactSandbox) -> None:
    @app.errorhandler(InvalidInputError)
    def _invalid(exc: InvalidInputError) -> Any:
        return _error(400, str(exc))

    @app.errorhandler(NotFoundError)
    def _missing(exc: NotFoundError) -> Any:
        return _error(404, str(exc.args[0]) if exc.args else "not found")

    @app.post("/_sandbox/oauth/grant")
    def _grant() -> Any:
        body = _json_body()
        region = body.get("region", "nl")
        if region not in REGIONS:
            return _error(400, f"region must be one of {list(REGIONS)}")
        try:
            token = sandbox.issue_refresh_token(region, client_id=body.get("client_id"))
        except OAuthError as exc:
            return _error(400, exc.body["error_description"])
        return jsonify({"refresh_token": token})

    @app.post("/_sandbox/clock/advance")
    def _advance() -> Any:
        seconds = _json_body().get("seconds")
        # At most a century: the clock must stay inside the dates Exact can answer.
        if not isinstance(seconds, int | float) or not 0 <= seconds <= CENTURY_SECONDS:
            return _error(400, f"seconds must be a number from 0 to {CENTURY_SECONDS}")
        sandbox.advance_clock(seconds)
        return jsonify({"ok": True})

    def _entity(name: str) -> str:
        if name not in ENTITY_FIELDS:
            raise NotFoundError(f"unknown entity {name!r}; known: {sorted(ENTITY_FIELDS)}")
        return name

    @app.get("/_sandbox/data/<entity>")
    def _dump(entity: str) -> Any:
        division = request.args.get("division", type=int)
        if entity == "Deleted":
            return jsonify(sandbox.store.deleted_rows(division))
        return jsonify(sandbox.rows(_entity(entity), division))

    @app.post("/_sandbox/data/<entity>")
    def _create(entity: str) -> Any:
        return jsonify(sandbox.create(_entity(entity), _json_body())), 201

    @app.patch("/_sandbox/data/<entity>/<key>")
    def _update(entity: str, key: str) -> Any:
        return jsonify(sandbox.update(_entity(entity), key, _json_body()))

    @app.delete("/_sandbox/data/<entity>/<key>")
    def _delete(entity: str, key: str) -> Any:
        sandbox.delete(_entity(entity), key)
        return jsonify({"ok": True})

    @app.post("/_sandbox/data/Receivables/<key>/pay")
    def _pay(key: str) -> Any:
        return jsonify(sandbox.pay_receivable(key, _json_body().get("paid_at")))

    @app.get("/_sandbox/webhooks")
    def _webhooks() -> Any:
        if sandbox.webhooks is None:
            return _error(404, "webhooks are off (start the sandbox with a webhook secret)")
        return jsonify({"subscriptions": sandbox.webhooks.subscriptions(),
                        "deliveries": sandbox.webhook_deliveries()})

    @app.post("/_sandbox/webhooks/faults")
    def _webhook_faults() -> Any:
        if sandbox.webhooks is None:
            return _error(404, "webhooks are off (start the sandbox with a webhook secret)")
        body = _json_body()
        try:
            return jsonify(sandbox.webhooks.set_faults(
                drop_rate=body.get("drop_rate"), delay=body.get("delay"), seed=body.get("seed")))
        except ValueError as exc:
            return _error(400, str(exc))

    @app.post("/_sandbox/divisions/<int:division>/move")
    def _move(division: int) -> Any:
        return jsonify(sandbox.move_division(division))
