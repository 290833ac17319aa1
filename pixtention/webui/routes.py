"""REST routes under ``/pixtention/v1/`` (status, index, suggest, adapters, clusters, masks).

Routes added from ``on_app_started`` bypass the WebUI's ``--api-auth`` (only its own ``Api``
adds that dependency), so this router checks the same credentials itself. Handlers are plain
``def`` functions: FastAPI runs them in its thread pool, off the event loop and off the
generation thread; indexing only starts a background thread.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Response
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from pixtention.webui.args import ArgsError, parse_args
from pixtention.webui.masks import MaskStore
from pixtention.webui.service import LibraryService

PREFIX = "/pixtention/v1"


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
    service: LibraryService, masks: MaskStore, *, api_auth: str | None = None
) -> APIRouter:
    """All PixTention routes, guarded by ``--api-auth`` credentials when given."""
    router = APIRouter(
        prefix=PREFIX,
        tags=["PixTention"],
        dependencies=[Depends(_auth_dependency(parse_api_auth(api_auth)))],
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
    def suggest(body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            raise HTTPException(422, detail="suggest: 'prompt' (text) is required")
        try:
            args = parse_args(body.get("args") or {})
        except ArgsError as error:
            raise HTTPException(422, detail=str(error)) from None
        base_model = body.get("base_model")
        picks = service.suggest(prompt, args, base_model=base_model)
        return {"prompt": prompt, "picks": [pick_dict(p) for p in picks]}

    @router.get("/adapters")
    def adapters(
        offset: int = Query(0, ge=0),  # noqa: B008
        limit: int = Query(100, ge=1, le=1000),  # noqa: B008
        name: str | None = None,
    ) -> dict[str, Any]:
        records = library_records(service)
        if name:
            records = [r for r in records if name.lower() in r.name.lower()]
        page = records[offset : offset + limit]
        return {"total": len(records), "adapters": [record_dict(r) for r in page]}

    @router.get("/clusters")
    def clusters() -> dict[str, Any]:
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
        return {"clusters": ordered}

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


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "to_dict"):
        return _jsonable(value.to_dict())
    return str(value)
