"""OData v2 paging: the answer says where the next page is (`d.__next`), and we go there."""

from __future__ import annotations

from urllib.parse import urlparse

import requests
from singer_sdk.pagination import BaseHATEOASPaginator

from tap_exactonline.answers import page_of


class ODataNextPaginator(BaseHATEOASPaginator):
    """Follows `d.__next` verbatim (an absolute URL with its own `$skiptoken`)."""

    def __init__(self, start_url: str | None = None) -> None:
        super().__init__()
        if start_url:  # resume a read that an earlier run stopped after a page
            self._value = urlparse(start_url)

    def get_next_url(self, response: requests.Response) -> str | None:
        return page_of(response).get("__next") or None  # the page parsed once, shared
