"""REST routes under ``/pixtention/v1/`` (status, index, suggest, adapters, clusters, masks).

They follow the WebUI's own API: mounted only when it is (``--api``, or ``--nowebui``), behind
``--api-auth``; when only the UI has a login (``--gradio-auth``/``--gradio-auth-path``), behind
that one, so a UI login never leaves the routes open. Routes added from ``on_app_started``
bypass the WebUI's own auth dependency, so this router checks the credentials itself.

Handlers are plain ``def`` functions (FastAPI's thread pool, off the event loop and off the
generation thread), except ``suggest``: it reads a bounded body and waits for the selector on
a small executor of its own, so a burst of suggestions never starves ``/status``.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from pixtention.webui.args import ArgsError, parse_args
from pixtention.webui.masks import MaskStore
from pixtention.webui.service import LibraryService

PREFIX = "/pixtention/v1"
MAX_BODY = 1 << 20  # a suggest request is a prompt and a few settings
RANKED = 10  # "suggestions" in a /suggest answer: the most relevant adapters, picked or not
_SUGGEST_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pixtention-suggest")


def routes_enabled(cmd_opts: Any) -> bool:
    """Mount the routes only where the WebUI serves its own API."""
    return bool(getattr(cmd_opts, "api", False) or getattr(cmd_opts, "nowebui", False))


def route_credentials(cmd_opts: Any) -> dict[str, str]:
    """``--api-auth`` if given, else the UI login (``--gradio-auth`` and its file), else none."""
    api = parse_api_auth(getattr(cmd_opts, "api_auth", None))
    if api:
        return api
    lines = [getattr(cmd_opts, "gradio_auth", None) or ""]
    path = getattr(cmd_opts, "gradio_auth_path", None)
    if path:
        with open(path, encoding="utf-8") as handle:
            lines += handle.read().splitlines()
    return dict(_pairs(",".join(line.strip() for line in lines)))


def _pairs(text: str) -> Iterable[tuple[str, str]]:
    for entry in text.split(","):
        entry = entry.strip()
        if entry:
            user, _, password = entry.partition(":")
            yield user, password


def parse_api_auth(value: str | None) -> dict[str, str]:
    """``--api-auth "user:pass,user2:pass2"`` → {user: password} (empty: no auth)."""
    credentials: dict[str, str] = {}
    for entry in (value or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        user, sep, password = entry.partition(":")
        if not sep:
            raise ValueError(f"--api-auth entry {entry!r} is not user:password")
        credentials[user] = password
    return credentials


def _auth_dependency(credentials: Mapping[str, str]):
    basic = HTTPBasic(auto_error=False)

    def check(given: HTTPBasicCredentials | None = Depends(basic)) -> None:  # noqa: B008
        if not credentials:
            return
        if given is not None and given.username in credentials:
            expected = credentials[given.username].encode("utf-8")
            if secrets.compare_digest(given.password.encode("utf-8"), expected):
                return
        raise HTTPException(
            status_code=401,
            detail="Incorrect username or password",
            headers={"WWW-Authenticate": "Basic"},
        )

    return check


def build_router(
    service: LibraryService,
    masks: MaskStore,
    *,
    api_auth: str | None = None,
    credentials: Mapping[str, str] | None = None,
) -> APIRouter:
    """All PixTention routes, guarded by ``credentials`` (or ``--api-auth`` text) when given."""
    allowed = dict(credentials or {}) or parse_api_auth(api_auth)
    router = APIRouter(
        prefix=PREFIX,
        tags=["PixTention"],
        dependencies=[Depends(_auth_dependency(allowed))],
    )

    @router.get("/status")
    def status() -> dict[str, Any]:
        return service.status().to_dict()

    @router.post("/index", status_code=202)
    def start_index() -> dict[str, Any]:
        started = service.start_index()
        return {"started": started, "status": service.status().to_dict()}

    @router.delete("/index")
    def cancel_index() -> dict[str, Any]:
        return {"cancelled": service.cancel_index(), "status": service.status().to_dict()}

    @router.post("/suggest")
    async def suggest(request: Request) -> Response:
        body = await _json_body(request)
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            raise HTTPException(422, detail="suggest: 'prompt' (text) is required")
        prompt = _text(prompt)
        try:
            args = parse_args(body.get("args") or {})
        except ArgsError as error:
            raise HTTPException(422, detail=str(error)) from None
        base_model = _base_model(body.get("base_model"))
        loop = asyncio.get_running_loop()
        picks, ranked = await loop.run_in_executor(
            _SUGGEST_POOL,
            lambda: (
                service.suggest(prompt, args, base_model=base_model),
                service.rank(prompt, args, base_model=base_model, k=RANKED),
            ),
        )
        # "suggestions": the adapters most relevant to the prompt, best first (picked or not)
        return _json_response(
            {
                "prompt": prompt,
                "picks": [pick_dict(p) for p in picks],
                "suggestions": [s.to_dict() for s in ranked],
            }
        )

    @router.get("/adapters")
    def adapters(
        offset: int = Query(0, ge=0, le=10**9),  # noqa: B008
        limit: int = Query(100, ge=1, le=1000),  # noqa: B008
        name: str | None = None,
    ) -> Response:
        records = library_records(service)
        if name:
            records = [r for r in records if name.lower() in r.name.lower()]
        page = records[offset : offset + limit]
        return _json_response({"total": len(records), "adapters": [record_dict(r) for r in page]})

    @router.get("/clusters")
    def clusters() -> Response:
        groups: dict[int, dict[str, Any]] = {}
        for record in library_records(service):
            group = groups.setdefault(
                record.cluster, {"id": record.cluster, "label": record.cluster_label, "size": 0}
            )
            group["size"] += 1
            group.setdefault("examples", [])
            if len(group["examples"]) < 5:
                group["examples"].append(record.name)
        ordered = sorted(groups.values(), key=lambda g: (-g["size"], g["id"]))
        return _json_response({"clusters": ordered})

    @router.get("/masks")
    def mask_list() -> dict[str, Any]:
        return {"masks": masks.listing()}

    @router.get("/masks/{job}/{image}.png")
    def mask_png(job: str, image: int) -> Response:
        data = masks.png(job, image)
        if data is None:
            raise HTTPException(404, detail=f"no masks for job {job!r} image {image}")
        return Response(content=data, media_type="image/png")

    return router


def library_records(service: LibraryService) -> list[Any]:
    library = service.library()
    if library is None:
        return []
    return list(library.records)


def pick_dict(pick: Any) -> dict[str, Any]:
    data = pick.to_dict() if hasattr(pick, "to_dict") else dict(vars(pick))
    return {key: _jsonable(value) for key, value in data.items()}


def record_dict(record: Any) -> dict[str, Any]:
    keep = (
        "name",
        "title",
        "path",
        "short_hash",
        "category",
        "base_family",
        "base_variant",
        "kind",
        "rank",
        "triggers",
        "preferred_weight",
        "tags",
        "cluster",
        "cluster_label",
    )
    return {key: _jsonable(getattr(record, key, None)) for key in keep}


async def _json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object, read up to ``MAX_BODY`` bytes (413 beyond, 422 if not JSON)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise HTTPException(413, detail=f"request body over {MAX_BODY} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise HTTPException(413, detail=f"request body over {MAX_BODY} bytes")
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks) or b"null")
    except (ValueError, RecursionError):
        raise HTTPException(422, detail="request body is not JSON") from None
    if not isinstance(body, dict):
        raise HTTPException(422, detail="request body must be a JSON object")
    return body


def _base_model(value: Any) -> str | None:
    """A base-model name the selector knows (422 with the known ones otherwise)."""
    if value is None:
        return None
    from pixtention.selector.select import base_family

    try:
        if not isinstance(value, str):
            raise ValueError(f"base_model {str(value)[:40]!r} is not text")
        base_family(value)
    except ValueError as error:
        raise HTTPException(422, detail=f"suggest: {error}") from None
    return value


def _json_response(data: Any) -> Response:
    """JSON that any client can read: no NaN/Infinity, no lone surrogates."""
    text = json.dumps(_jsonable(data), ensure_ascii=False, allow_nan=False)
    return Response(content=text.encode("utf-8"), media_type="application/json")


def _text(value: str) -> str:
    """Text with undecodable file-name bytes and lone surrogates made printable (U+FFFD)."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        pass
    try:  # file names: bytes that were not UTF-8, kept by the OS as U+DC80..U+DCFF
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # lone surrogates from JSON escapes
        return value.encode("utf-8", "replace").decode("utf-8")


def _jsonable(value: Any) -> Any:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (int, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "to_dict"):
        return _jsonable(value.to_dict())
    return str(value)
