"""The runs list as a query: filter by status and text, sort by a column, one page at a time.

Only the runs on the page are summarised (their metrics read), so the list's cost grows with the page, not with
the runs folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from math import ceil
from urllib.parse import urlencode

from emtune.dashboard.launcher import RunInfo

SORTS = ("created_at", "status", "name", "run_id")
PER_PAGE = (25, 50, 100, 200)


@dataclass(frozen=True)
class RunQuery:
    status: str = ""
    text: str = ""
    sort: str = "created_at"
    descending: bool = True
    page: int = 1
    per_page: int = 50
    archived: bool = False  # include archived runs

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> RunQuery:
        """The query a URL asks for; anything malformed falls back to its default (a list always shows)."""
        sort = params.get("sort", "created_at")
        per_page = _int(params.get("per_page"), 50)
        return cls(
            status=params.get("status", "")[:40],
            text=params.get("q", "")[:200].strip(),
            sort=sort if sort in SORTS else "created_at",
            descending=params.get("order", "desc") != "asc",
            page=max(1, _int(params.get("page"), 1)),
            per_page=per_page if per_page in PER_PAGE else 50,
            archived=params.get("archived") == "1",
        )

    def url(self, **changes: object) -> str:
        """This query's URL with some parts changed (a page link, a column's sort link)."""
        order = "desc" if self.descending else "asc"
        values: dict[str, object] = {"status": self.status, "q": self.text, "sort": self.sort, "order": order}
        values.update(page=self.page, per_page=self.per_page, archived="1" if self.archived else "")
        values.update(changes)
        return "?" + urlencode({key: value for key, value in values.items() if value not in ("", None)})


@dataclass(frozen=True)
class RunPage:
    runs: list[RunInfo]
    total: int  # runs matching the filters
    pages: int
    query: RunQuery
    statuses: list[str]  # every status present, for the filter's choices


def select(runs: list[RunInfo], query: RunQuery) -> RunPage:
    statuses = sorted({run.status for run in runs})
    text = query.text.lower()
    matching = [
        run
        for run in runs
        if (query.archived or not run.archived)
        and (not query.status or run.status == query.status)
        and (not text or any(text in (value or "").lower() for value in _searchable(run)))
    ]
    matching.sort(key=lambda run: (str(getattr(run, query.sort) or ""), run.run_id), reverse=query.descending)
    pages = max(1, ceil(len(matching) / query.per_page))
    page = min(query.page, pages)
    start = (page - 1) * query.per_page
    shown = RunQuery(query.status, query.text, query.sort, query.descending, page, query.per_page, query.archived)
    return RunPage(matching[start : start + query.per_page], len(matching), pages, shown, statuses)


def _searchable(run: RunInfo) -> tuple[str | None, ...]:
    provenance = run.provenance
    return (run.run_id, run.name, provenance.requested_by, provenance.trigger, provenance.parent_run, *run.tags)


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default
