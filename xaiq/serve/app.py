"""``xaiq serve``: a read-only Starlette app over the configured store and its artifacts.

Pages: Jobs (``/``, live progress polled from ``/api/jobs``), a job (``/jobs/{id}``), its
Samples gallery (``/jobs/{id}/samples``), one sample (``/jobs/{id}/samples/{index}``) and
Compare (``/compare?a=&b=``). Every table downloads as CSV (``/jobs/{id}/table/{name}.csv``),
every figure as PNG or SVG (``/jobs/{id}/samples/{index}/{what}.png``). Nothing is written
to the store; no file is fetched from the internet (the one script ships in ``static/``).

Access: with a ``token`` every request must carry it (header ``X-Xaiq-Token``, or the
cookie set by opening any page with ``?token=...``); without one (loopback binding) none is
asked for. Store URLs are shown with their passwords masked (:func:`xaiq.db.urls.redact_url`).
"""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from xaiq.db.errors import NotFoundError, QueryError
from xaiq.db.models import JobKind, JobStatus
from xaiq.db.protocol import protocol_rows
from xaiq.report.data import job_models
from xaiq.serve import tables
from xaiq.serve.jobs_data import jobs_rows
from xaiq.serve.pictures import FORMATS, FigureCache, sample_figure_bytes

HERE = Path(__file__).parent
TOKEN_HEADER = "X-Xaiq-Token"
TOKEN_COOKIE = "xaiq_token"


class TokenGate:
    """ASGI middleware: every HTTP request carries the token (header or cookie), or gets 401.
    ``?token=`` with the right value sets the cookie and redirects to the same URL without
    it (so the token does not linger in the address bar or the history)."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.token = token

    def _ok(self, value: str | None) -> bool:
        return bool(value) and hmac.compare_digest(str(value), self.token)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        given = request.query_params.get("token")
        if given is not None and self._ok(given):
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            url = request.url.replace_query_params(**dict(rest)) if rest else request.url.path
            response: Response = RedirectResponse(str(url), status_code=303)
            response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict")
            await response(scope, receive, send)
            return
        if self._ok(request.headers.get(TOKEN_HEADER)) or self._ok(
            request.cookies.get(TOKEN_COOKIE)
        ):
            await self.app(scope, receive, send)
            return
        response = PlainTextResponse(
            "401: this server wants its token: open it with ?token=... (printed when it"
            " started) or send the X-Xaiq-Token header",
            status_code=401,
        )
        await response(scope, receive, send)


class Pages:
    """The route handlers, bound to one engine and one figure cache."""

    def __init__(self, engine: Engine, where: str, cache_items: int) -> None:
        self.engine = engine
        self.where = where
        self.cache = FigureCache(cache_items)
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.globals["store"] = where
        from xaiq.report.faith_section import protocol_note
        from xaiq.report.format import num  # the report's rounding, for one value

        self.templates.env.globals["number"] = num
        self.templates.env.globals["protocol_note"] = protocol_note

    def render(self, request: Request, name: str, **context: Any) -> Response:
        return self.templates.TemplateResponse(request, name, context)

    def job(self, request: Request) -> Any:
        from xaiq.report.data import get_job

        try:
            job_id = int(request.path_params["job_id"])
        except ValueError:
            raise NotFoundError(
                f"job id must be an integer: {request.path_params['job_id']!r}"
            ) from None
        return get_job(self.engine, job_id)

    # ----------------------------------------------------------------- pages

    async def jobs(self, request: Request) -> Response:
        status, kind = _filters(request)
        rows = jobs_rows(self.engine, status=status, kind=kind)
        return self.render(
            request,
            "jobs.html",
            rows=rows,
            status=status or "",
            kind=kind or "",
            statuses=[s.value for s in JobStatus],
            kinds=[k.value for k in JobKind],
        )

    async def api_jobs(self, request: Request) -> Response:
        status, kind = _filters(request)
        rows = jobs_rows(self.engine, status=status, kind=kind)
        return JSONResponse({"jobs": rows})

    def job_page_sync(self, request: Request) -> Response:
        job = self.job(request)
        card = (job.spec or {}).get("protocol") or getattr(job, "protocol", None)
        return self.render(
            request,
            "job.html",
            job=job,
            models=job_models(job),
            tables=tables.job_tables(self.engine, job),
            protocol=protocol_rows(card) if isinstance(card, dict) else None,
            spec=job.spec or {},
        )

    def table_csv(self, request: Request) -> Response:
        job = self.job(request)
        name = request.path_params["name"]
        for t in tables.job_tables(self.engine, job):
            if t.name == name:
                return _csv(t, f"job-{job.id}-{name}.csv")
        raise NotFoundError(f"job {job.id} has no table {name!r}")

    def samples_page(self, request: Request) -> Response:
        from xaiq.serve.gallery import PAGE_SIZES, gallery_page, parse_query

        job = self.job(request)
        q = parse_query(request.query_params)
        page = gallery_page(self.engine, job.id, q, attacked_only=job.kind == JobKind.attack)
        return self.render(
            request,
            "samples.html",
            job=job,
            page=page,
            q=q,
            page_sizes=PAGE_SIZES,
            metrics=_metric_choices(job, page),
        )

    def samples_csv(self, request: Request) -> Response:
        from xaiq.serve.gallery import gallery_page, parse_query

        job = self.job(request)
        page = gallery_page(
            self.engine,
            job.id,
            parse_query(request.query_params),
            attacked_only=job.kind == JobKind.attack,
        )
        cols = ["sample_index", "key", "label", "pred", "correct", "prob_pred", "value"]
        t = tables.Table("samples", "samples", page.rows, cols)
        return _csv(t, f"job-{job.id}-samples-page-{page.query.page}.csv")

    def sample_page(self, request: Request) -> Response:
        from xaiq.report import data
        from xaiq.serve.gallery import sample_errors
        from xaiq.serve.jobs_data import sample_rows

        job = self.job(request)
        idx = _index(request)
        sample = data.sample_row(self.engine, job.id, idx)
        rows = sample_rows(self.engine, job, idx)
        if sample is None and not any(t.rows for t in rows):
            raise NotFoundError(f"job {job.id} has no sample {idx}")
        methods: list[str] = []
        if job.kind != JobKind.attack:
            methods = sorted(_map_methods(self.engine, job, idx))
        return self.render(
            request,
            "sample.html",
            job=job,
            idx=idx,
            sample=sample or {},
            tables=rows,
            methods=methods,
            attacked=any(t.name == "attack" for t in rows),
            errors=sample_errors(self.engine, job.id, idx),
        )

    def sample_table_csv(self, request: Request) -> Response:
        from xaiq.serve.jobs_data import sample_rows

        job = self.job(request)
        idx = _index(request)
        name = request.path_params["name"]
        for t in sample_rows(self.engine, job, idx):
            if t.name == name:
                return _csv(t, f"job-{job.id}-sample-{idx}-{name}.csv")
        raise NotFoundError(f"sample {idx} of job {job.id} has no table {name!r}")

    def figure(self, request: Request) -> Response:
        job = self.job(request)
        idx = _index(request)
        what = request.path_params["what"]
        fmt = request.path_params["fmt"]
        if fmt not in FORMATS:
            raise NotFoundError(f"figure format must be one of {', '.join(FORMATS)}: {fmt!r}")
        key = (job.id, job.finished_at, idx, what, fmt)
        data = self.cache.get(key)
        if data is None:
            data = sample_figure_bytes(self.engine, job, idx, what, fmt)
            self.cache.put(key, data)
        headers = {"Cache-Control": "private, max-age=300"}
        if request.query_params.get("download"):
            headers["Content-Disposition"] = (
                f'attachment; filename="job-{job.id}-sample-{idx}-{what}.{fmt}"'
            )
        return Response(data, media_type=FORMATS[fmt], headers=headers)

    def compare_csv(self, request: Request) -> Response:
        return self.compare_page(request, as_csv=True)

    def compare_page(self, request: Request, as_csv: bool = False) -> Response:
        from xaiq.report.data import get_job

        a_raw, b_raw = request.query_params.get("a", ""), request.query_params.get("b", "")
        table = None
        jobs = []
        if a_raw or b_raw:
            try:
                a_id, b_id = int(a_raw), int(b_raw)
            except ValueError:
                raise QueryError(f"a and b must be job ids, got a={a_raw!r} b={b_raw!r}") from None
            jobs = [get_job(self.engine, a_id), get_job(self.engine, b_id)]
            if all(j.kind == JobKind.disagreement for j in jobs):
                table = tables.compare_table(self.engine, jobs[0], jobs[1])
        if as_csv:
            if table is None:
                raise QueryError("compare CSV needs two disagreement jobs ?a=&b=")
            return _csv(table, f"{table.name}.csv")
        options = jobs_rows(self.engine)
        return self.render(
            request,
            "compare.html",
            jobs=jobs,
            table=table,
            options=options,
            a=a_raw,
            b=b_raw,
            models={j.id: job_models(j) for j in jobs},
        )


def _filters(request: Request) -> tuple[str | None, str | None]:
    status = request.query_params.get("status") or None
    kind = request.query_params.get("kind") or None
    if status is not None and status not in JobStatus.__members__:
        raise QueryError(f"unknown status {status!r}; known: {', '.join(JobStatus.__members__)}")
    if kind is not None and kind not in JobKind.__members__:
        raise QueryError(f"unknown kind {kind!r}; known: {', '.join(JobKind.__members__)}")
    return status, kind


def _index(request: Request) -> int:
    raw = request.path_params["index"]
    try:
        return int(raw)
    except ValueError:
        raise NotFoundError(f"sample index must be an integer: {raw!r}") from None


def _map_methods(engine: Engine, job: Any, idx: int) -> list[str]:
    from sqlalchemy import select

    from xaiq.db.models import Attribution
    from xaiq.report.data import maps_job_id

    stmt = select(Attribution.method).where(
        Attribution.job_id == maps_job_id(job), Attribution.sample_index == idx
    )
    with engine.connect() as conn:
        return [str(m) for m in conn.scalars(stmt)]


def _metric_choices(job: Any, page: Any) -> list[str]:
    from xaiq.db.models import METRIC_COLUMNS
    from xaiq.serve.gallery import ATTACK_METRICS, FAITH_METRICS

    out = ["prob_pred"]
    if page.pairs:
        out += list(METRIC_COLUMNS)
    if page.methods:
        out += list(FAITH_METRICS)
    if job.kind == JobKind.attack:
        out += list(ATTACK_METRICS)
    return out


def _csv(table: tables.Table, filename: str) -> Response:
    return Response(
        tables.to_csv(table.rows, table.columns),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def create_app(
    engine: Engine | None = None, *, token: str | None = None, cache_items: int = 256
) -> Any:
    """The ASGI app over ``engine`` (default: the configured store, opened read-only where
    the backend allows). ``token``: required on every request when given."""
    from starlette.concurrency import run_in_threadpool

    from xaiq.db.urls import redact_url

    if engine is None:
        from xaiq.db.session import get_engine

        engine = get_engine()
    where = redact_url(engine.url.render_as_string(hide_password=False))
    pages = Pages(engine, where, cache_items)

    def threaded(fn: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            return await run_in_threadpool(fn, request)

        return endpoint

    routes = [
        Route("/", pages.jobs),
        Route("/api/jobs", pages.api_jobs),
        Route("/compare", threaded(pages.compare_page)),
        Route("/compare.csv", threaded(pages.compare_csv)),
        Route("/jobs/{job_id}", threaded(pages.job_page_sync)),
        Route("/jobs/{job_id}/table/{name}.csv", threaded(pages.table_csv)),
        Route("/jobs/{job_id}/samples", threaded(pages.samples_page)),
        Route("/jobs/{job_id}/samples.csv", threaded(pages.samples_csv)),
        Route("/jobs/{job_id}/samples/{index}", threaded(pages.sample_page)),
        Route("/jobs/{job_id}/samples/{index}/table/{name}.csv", threaded(pages.sample_table_csv)),
        Route("/jobs/{job_id}/samples/{index}/{what}.{fmt}", threaded(pages.figure)),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return (
            pages.render(request, "error.html", message=str(exc), code=404)
            if _html(request)
            else PlainTextResponse(str(exc), status_code=404)
        )

    async def bad_request(request: Request, exc: Exception) -> Response:
        return PlainTextResponse(f"400: {exc}", status_code=400)

    app = Starlette(
        routes=routes,
        exception_handlers={NotFoundError: not_found, QueryError: bad_request},
    )
    app.state.pages = pages
    return TokenGate(app, token) if token else app


def _html(request: Request) -> bool:
    return not any(request.url.path.endswith(s) for s in (".png", ".svg", ".csv"))


__all__ = ["TOKEN_COOKIE", "TOKEN_HEADER", "TokenGate", "create_app"]
