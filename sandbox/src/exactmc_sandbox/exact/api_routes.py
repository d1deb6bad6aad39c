"""`/{region}/api/v1/...`: current/Me, system/Divisions, the data endpoints and webhooks.

Order of checks after the fault/error-limit hooks: access token (401), division ownership
(403), rate limit (429), then the endpoint itself.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request

from exactmc_sandbox.exact.dates import from_odata_date, to_iso
from exactmc_sandbox.exact.endpoints import ENDPOINTS, NORMAL_PAGE, Endpoint, read_page
from exactmc_sandbox.exact.model import REGIONS
from exactmc_sandbox.exact.odata import ODataError, next_link, parse_select, render
from exactmc_sandbox.exact.properties import ME_PROPERTIES, SYSTEM_DIVISION_PROPERTIES
from exactmc_sandbox.exact.responses import answer, error_answer, json_page, wants_json
from exactmc_sandbox.exact.store import NotFoundError
from exactmc_sandbox.exact.validation import InvalidInputError

if TYPE_CHECKING:
    from exactmc_sandbox.exact.app import Components

V1_PATH = re.compile(r"^/(?P<region>[a-z]{2})/api/v1/(?P<division>\d+)/(?P<rest>.+)$")
KEYED = re.compile(r"^(?P<path>[A-Za-z/]+?)(?:\(guid'(?P<key>[0-9a-fA-F-]{36})'\))?$")

DIVISION_FIELDS = ("Code", "Description", "Country", "Currency", "Hid", "Main", "Customer",
                   "CustomerName", "Started", "Status", "DivisionMoveDate")
ME_FIELDS = ("UserID", "UserName", "FullName", "Email", "LanguageCode", "CurrentDivision",
             "DivisionCustomer", "DivisionCustomerName", "AccountingDivision")
# Every documented property may be selected; those the sandbox does not keep answer null.
DIVISION_SELECTABLE = tuple(dict.fromkeys((*DIVISION_FIELDS, *SYSTEM_DIVISION_PROPERTIES)))
ME_SELECTABLE = tuple(dict.fromkeys((*ME_FIELDS, *ME_PROPERTIES)))


def register_api(app: Flask, parts: Components) -> None:
    store = parts.store

    @app.route("/<region>/api/v1/<path:rest>", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    def _api(region: str, rest: str) -> Any:
        if region not in REGIONS:
            return error_answer(404, "Not found")
        grant = parts.authority.check_access(region, request.headers.get("Authorization"))
        if grant is None:
            return error_answer(401, "Unauthorized",
                                {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        try:
            if rest == "current/Me":
                return _me(region, grant.client_id)
            m = V1_PATH.match(request.path)
            if not m:
                raise ODataError(404, "Not found")
            division = int(m.group("division"))
            company = store.companies.get(region)
            if company is None or division not in company.divisions:
                raise ODataError(403, "Forbidden - WrongDivision")
            keyed = KEYED.match(m.group("rest"))
            path, key = (keyed.group("path"), keyed.group("key")) if keyed else ("", None)
            handler = _resolve(path, key)
            decision = parts.limiter.take(grant.client_id, division)
            if not decision.allowed:
                return error_answer(429, "API rate limit exceeded", decision.headers)
            try:
                response = handler(division, path, key)
            except ODataError as exc:
                exc.headers = {**decision.headers, **exc.headers}
                raise
            response.headers.update(decision.headers)
            return response
        except ODataError as exc:
            return error_answer(exc.status, exc.message, exc.headers)

    def _resolve(path: str, key: str | None) -> Any:
        if path == "system/Divisions" and request.method == "GET":
            return _divisions
        if path == "webhooks/WebhookSubscriptions" and parts.webhooks is not None:
            return parts.webhooks.handle
        endpoint = ENDPOINTS.get(path)
        if endpoint is None:
            raise ODataError(404, f"Resource not found for the segment '{path}'")
        if request.method == "GET":
            return _get_one if key else _get_list
        if endpoint.writable and (request.method == "POST") == (key is None):
            return _write
        raise ODataError(405, f"Method {request.method} not allowed on {path}")

    def _me(region: str, client_id: str) -> Response:
        company = store.companies[region]
        row = {"UserID": company.user_id, "UserName": company.user_name,
               "FullName": company.full_name, "Email": company.email,
               "LanguageCode": company.language, "CurrentDivision": company.current_division,
               "DivisionCustomer": company.id, "DivisionCustomerName": company.name,
               "AccountingDivision": company.current_division}
        fields = parse_select(request.args.get("$select"), ME_SELECTABLE, required=False,
                              default=ME_FIELDS)
        return answer({"d": {"results": [render(row, fields)]}}, title="Me")

    def _divisions(division: int, path: str, key: str | None) -> Response:
        company = store.division(division).company
        rows = []
        for code in company.divisions:
            d = store.division(code)
            rows.append({"Code": d.code, "Description": d.description, "Country": d.country,
                         "Currency": d.currency, "Hid": d.hid, "Main": d.main,
                         "Customer": company.id, "CustomerName": company.name,
                         "Started": d.created, "Status": 1, "DivisionMoveDate": d.move_date})
        fields = parse_select(request.args.get("$select"), DIVISION_SELECTABLE, required=False,
                              default=DIVISION_FIELDS)
        return answer({"d": {"results": [render(r, fields) for r in rows[:NORMAL_PAGE]]}},
                      title="Divisions")

    def _get_list(division: int, path: str, key: str | None) -> Response:
        endpoint = ENDPOINTS[path]
        top = request.args.get("$top")
        if top is not None and not top.isdigit():
            raise ODataError(400, "$top must be a whole number")
        as_json = wants_json()  # rows written as JSON text straight away (issue 9)
        page = read_page(store, endpoint, division, request.args.to_dict(),
                         int(top) if top else None, as_json=as_json)
        link = next_link(request.host_url, request.path, request.args.to_dict(),
                         page.skiptoken) if page.skiptoken else None
        if as_json:
            return json_page(page.rows, link)
        body: dict[str, Any] = {"results": page.rows}
        if link is not None:
            body["__next"] = link
        return answer({"d": body}, title=path)

    def _get_one(division: int, path: str, key: str) -> Response:
        endpoint = ENDPOINTS[path]
        fields = parse_select(request.args.get("$select"), endpoint.selectable,
                              required=endpoint.kind != "normal", default=endpoint.fields)
        with store.lock:
            row = _row_in(endpoint, division, key)
            return answer({"d": render(row, fields)}, title=path)

    def _row_in(endpoint: Endpoint, division: int, key: str) -> dict[str, Any]:
        try:
            row = store.get(endpoint.source, key)
        except (NotFoundError, KeyError):
            raise ODataError(404, f"Entity not found: {key}") from None
        if row["Division"] != division:
            raise ODataError(404, f"Entity not found: {key}")
        return row

    def _write(division: int, path: str, key: str | None) -> Response:
        endpoint = ENDPOINTS[path]
        try:
            if request.method == "DELETE":
                _row_in(endpoint, division, key or "")
                store.delete(endpoint.source, key or "")
                return Response(status=204)
            body = request.get_json(silent=True)
            if not isinstance(body, dict):
                raise ODataError(400, "The request body must be a JSON object")
            fields = _from_odata(body)
            if request.method == "POST":
                created = store.create(endpoint.source, {**fields, "Division": division})
                row = store.get(endpoint.source, created[endpoint.key])
                return answer({"d": render(row, endpoint.fields)}, 201, title=path)
            _row_in(endpoint, division, key or "")
            store.update(endpoint.source, key or "", fields)
            return Response(status=204)
        except InvalidInputError as exc:
            raise ODataError(400, str(exc)) from None


def _from_odata(body: dict[str, Any]) -> dict[str, Any]:
    """Accept `/Date(ms)/` values in API bodies; the store works with ISO strings."""
    out = {}
    for name, value in body.items():
        if name == "__metadata":
            continue
        if isinstance(value, str) and value.startswith("/Date("):
            try:
                value = to_iso(from_odata_date(value))
            except (ValueError, OverflowError, OSError):  # not a number, or no year 1-9999
                raise InvalidInputError(f"{name}: not a /Date(ms)/ value: {value!r}") from None
        out[name] = value
    return out
