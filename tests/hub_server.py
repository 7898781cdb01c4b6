"""A local, Hugging Face Hub-compatible HTTP server for the test suite (standard library only).

Point the clients at it with ``HF_ENDPOINT=http://127.0.0.1:<port>`` (set before ``huggingface_hub``,
``transformers``, ``sentence_transformers`` or ``evaluate`` is imported) and ``HF_HUB_DISABLE_XET=1``.
Checked against huggingface_hub 2.4 (legacy LFS upload path), sentence-transformers, transformers and
``evaluate.load`` of a metric hosted in a Space repo.

Usage::

    with HubServer(root=tmp_path / "hub") as server:   # or server.start() / server.stop()
        server.url, server.port
        server.fail_next("POST", r"/commit/", status=503, times=1)   # fault injection
        server.requests                                              # [(method, path), ...]
        server.clear_requests()

Supported endpoints (``{type}`` is ``models``, ``datasets`` or ``spaces``; ``{prefix}`` is empty, ``datasets/``
or ``spaces/``; ``{repo}`` is ``namespace/name`` or ``name``; revisions are URL-quoted branch names, tags,
``refs/pr/N`` or full/abbreviated commit shas):

==========  ================================================  =============================================
Method      Path                                              Client call
==========  ================================================  =============================================
GET         /api/whoami-v2                                    whoami (401 without a Bearer token)
*           /api/telemetry/...                                telemetry (200, ``{}``)
GET         /api/agent-harnesses                              agent detection registry (empty)
POST        /api/repos/create                                 create_repo (409 + ``url`` when it exists)
DELETE      /api/repos/delete                                 delete_repo
POST        /api/validate-yaml                                README metadata check (JSON body always)
GET         /api/{type}                                       list_models / list_datasets / list_spaces
GET         /api/{type}/{repo}[/revision/{rev}]               model_info / dataset_info / space_info
PUT         /api/{type}/{repo}/settings                       update_repo_settings (visibility/private)
POST        /api/{type}/{repo}/preupload/{rev}                upload mode, shouldIgnore, remote oid
POST        /api/{type}/{repo}/commit/{rev}                   create_commit (ndjson; create_pr supported)
GET         /api/{type}/{repo}/tree/{rev}[/{path}]            list_repo_tree / list_repo_files
POST        /api/{type}/{repo}/paths-info/{rev}               get_paths_info
GET         /api/{type}/{repo}/refs                           list_repo_refs
GET         /api/{type}/{repo}/commits/{rev}                  list_repo_commits
POST/DEL    /api/{type}/{repo}/branch/{branch}                create_branch / delete_branch
POST        /api/{type}/{repo}/tag/{rev}                      create_tag
POST        /{prefix}{repo}.git/info/lfs/objects/batch        LFS batch (basic transfer)
PUT         /__lfs/{sha256}                                   LFS object upload (href from the batch answer)
POST        /__lfs/verify                                     LFS verify
HEAD/GET    /{prefix}{repo}/resolve/{rev}/{path}              hf_hub_download, snapshot_download, evaluate
==========  ================================================  =============================================

Anything else answers a JSON 404. Errors carry ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``,
``EntryNotFound``) and ``X-Error-Message`` headers like the Hub, so the client raises its typed errors.

Storage: blobs are content-addressed by sha256 under ``root/blobs`` (identical content is stored once and an
LFS object that is already there is not uploaded again); each repo is a JSON file under ``root/repos`` holding
its refs and every commit (a full path -> blob map), so old commit shas keep resolving. A new repo starts with
an initial commit holding ``.gitattributes`` (and a ``README.md`` with the SDK metadata for Spaces), as on the Hub.

Upload mode: "lfs" for files over 10 MB, binary extensions (``.safetensors``, ``.bin``, ``.png``, ...) or a NUL
byte in the first 512 bytes, "regular" otherwise (empty files are always regular). ``preupload`` also returns the
remote ``oid`` of files already in the repo (git blob sha1 for regular, sha256 for LFS), which is what lets the
client skip unchanged files -- and skip the commit entirely when nothing changed.

Auth: any ``Authorization: Bearer <token>`` is accepted (or only ``valid_tokens`` when given). Writes need a token
(401 otherwise, as on the Hub); reading a private repo without a token gives 401 + ``RepoNotFound``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import socket
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, quote, unquote, urlsplit

__all__ = ["HubServer", "HubError"]

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
LFS_THRESHOLD = 10 * 1024 * 1024
LFS_SUFFIXES = frozenset(
    ".7z .arrow .bin .bz2 .ckpt .ftz .gguf .gif .gz .h5 .jpeg .jpg .joblib .lz4 .mlmodel .model .mp3 .mp4 "
    ".msgpack .npy .npz .ogg .onnx .ot .parquet .pb .pdf .pickle .pkl .png .pt .pth .rar .safetensors "
    ".tar .tflite .tgz .ubj .wasm .wav .webp .xz .zip .zst".split()
)
GITATTRIBUTES = "".join(f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in sorted(LFS_SUFFIXES))
LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
COMMIT_PREFIX_RE = re.compile(r"^[0-9a-f]{7,40}$")
REPO_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")

_REPO = r"(?P<repo>[^/]+(?:/[^/]+)?)"
_TYPE = r"(?P<type>models|datasets|spaces)"
_PREFIX = r"(?:(?P<prefix>datasets|spaces)/)?"


class HubError(Exception):
    """An error answer: status, message, optional ``X-Error-Code`` and extra headers/body fields."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None, **body):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
        self.body = body


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob with this content."""
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


def upload_mode_for(path: str, size: int, sample: bytes) -> str:
    if size == 0:
        return "regular"
    if size > LFS_THRESHOLD or os.path.splitext(path)[1].lower() in LFS_SUFFIXES or b"\x00" in sample:
        return "lfs"
    return "regular"


def _split_front_matter(content: str) -> str | None:
    match = re.match(r"^\s*---\r?\n(.*?)\r?\n---\s*(?:\r?\n|$)", content, flags=re.DOTALL)
    if match is None:
        match = re.match(r"^\s*---\r?\n---\s*(?:\r?\n|$)", content)
        return "" if match else None
    return match.group(1)


def parse_card_metadata(content: str) -> dict | None:
    """YAML front matter of a README as a dict (PyYAML when importable, else None). Raises ValueError if invalid."""
    text = _split_front_matter(content)
    if text is None:
        return None
    try:
        import yaml  # a dependency of huggingface_hub; optional here
    except ImportError:  # pragma: no cover
        return None
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise ValueError(f"Invalid YAML in README metadata: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError("README metadata must be a YAML mapping")
    return data


# ----------------------------------------------------------------------------------------------------------------
# Storage
# ----------------------------------------------------------------------------------------------------------------


class Storage:
    """Blobs (content-addressed by sha256) and repos (JSON: refs + full commit snapshots) under ``root``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.blob_dir = self.root / "blobs"
        self.repo_dir = self.root / "repos"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.repo_dir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.repos: dict[tuple[str, str], dict] = {}
        for path in self.repo_dir.glob("*/*.json"):
            repo = json.loads(path.read_text(encoding="utf-8"))
            self.repos[(repo["type"], repo["id"])] = repo

    # -- blobs -----------------------------------------------------------------------------------------------
    def blob_path(self, sha256: str) -> Path:
        return self.blob_dir / sha256[:2] / sha256

    def blob_meta(self, sha256: str) -> dict | None:
        meta = self.blob_path(sha256).with_suffix(".json")
        if not meta.exists():
            return None
        return json.loads(meta.read_text(encoding="utf-8"))

    def put_blob(self, data: bytes, expected_sha256: str | None = None) -> dict:
        """Store ``data``; returns its meta ``{"sha256", "size", "git_sha1"}``."""
        sha256 = hashlib.sha256(data).hexdigest()
        if expected_sha256 is not None and sha256 != expected_sha256:
            raise HubError(400, f"sha256 mismatch: expected {expected_sha256}, got {sha256}")
        meta = {"sha256": sha256, "size": len(data), "git_sha1": git_blob_sha1(data)}
        path = self.blob_path(sha256)
        if self.blob_meta(sha256) is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._atomic_write(path, data)
            self._atomic_write(path.with_suffix(".json"), json.dumps(meta).encode())
        return meta

    # -- repos -----------------------------------------------------------------------------------------------
    def _repo_file(self, repo_type: str, repo_id: str) -> Path:
        return self.repo_dir / f"{repo_type}s" / (quote(repo_id, safe="") + ".json")

    def save_repo(self, repo: dict) -> None:
        path = self._repo_file(repo["type"], repo["id"])
        path.parent.mkdir(parents=True, exist_ok=True)
        self._atomic_write(path, json.dumps(repo).encode())

    def delete_repo(self, repo: dict) -> None:
        self.repos.pop((repo["type"], repo["id"]), None)
        self._repo_file(repo["type"], repo["id"]).unlink(missing_ok=True)

    @staticmethod
    def _atomic_write(path: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)


def file_entry(meta: dict, lfs: bool) -> dict:
    """A path's record inside a commit snapshot."""
    return {"sha256": meta["sha256"], "size": meta["size"], "git_sha1": meta["git_sha1"], "lfs": bool(lfs)}


def entry_oid(entry: dict) -> str:
    """The git oid shown by the tree API: the blob sha1, or the sha1 of the LFS pointer file."""
    if entry["lfs"]:
        return git_blob_sha1(LFS_POINTER.format(oid=entry["sha256"], size=entry["size"]).encode())
    return entry["git_sha1"]


def entry_json(path: str, entry: dict) -> dict:
    item = {"type": "file", "oid": entry_oid(entry), "size": entry["size"], "path": path}
    if entry["lfs"]:
        pointer = LFS_POINTER.format(oid=entry["sha256"], size=entry["size"]).encode()
        item["lfs"] = {"oid": entry["sha256"], "size": entry["size"], "pointerSize": len(pointer)}
    return item


def folder_json(path: str, files: dict[str, dict]) -> dict:
    prefix = path + "/"
    listing = sorted((p, entry_oid(e)) for p, e in files.items() if p.startswith(prefix))
    oid = hashlib.sha1(json.dumps(listing).encode()).hexdigest()
    return {"type": "directory", "oid": oid, "size": 0, "path": path}


# ----------------------------------------------------------------------------------------------------------------
# Requests / responses
# ----------------------------------------------------------------------------------------------------------------


class Request:
    def __init__(self, handler: "_Handler", body: bytes):
        split = urlsplit(handler.path)
        self.handler = handler
        self.method = handler.command
        self.path = split.path
        self.query = parse_qs(split.query, keep_blank_values=True)
        self.headers = handler.headers
        self.body = body
        auth = handler.headers.get("Authorization", "")
        self.token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        host = handler.headers.get("Host") or f"{handler.server.server_address[0]}:{handler.server.server_address[1]}"
        self.base_url = f"http://{host}"

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except ValueError as exc:
            raise HubError(400, f"Invalid JSON body: {exc}") from exc

    def form(self) -> dict[str, list[str]]:
        content_type = self.headers.get("Content-Type", "")
        if "json" in content_type:
            data = self.json()
            return {k: v if isinstance(v, list) else [v] for k, v in data.items()}
        return parse_qs(self.body.decode("utf-8"), keep_blank_values=True)

    def flag(self, name: str) -> bool:
        values = self.query.get(name)
        return bool(values) and values[-1].lower() in ("1", "true", "yes")


class Response:
    def __init__(self, status: int = 200, body: Any = None, headers: dict | None = None, file: Path | None = None,
                 file_range: tuple[int, int] | None = None, content_type: str = "application/json"):
        self.status = status
        self.headers = dict(headers or {})
        self.file = file
        self.file_range = file_range  # (start, length) within `file`
        if file is None:
            self.data = body if isinstance(body, bytes) else json.dumps(body if body is not None else {}).encode()
            self.headers.setdefault("Content-Type", content_type)
        else:
            self.data = b""
            self.headers.setdefault("Content-Type", "application/octet-stream")

    @property
    def length(self) -> int:
        return self.file_range[1] if self.file is not None else len(self.data)


def _error_response(err: HubError) -> Response:
    headers = {"X-Error-Message": err.message.replace("\n", " ")[:500], **err.headers}
    if err.code:
        headers["X-Error-Code"] = err.code
    return Response(err.status, {"error": err.message, **err.body}, headers)


# ----------------------------------------------------------------------------------------------------------------
# The Hub logic
# ----------------------------------------------------------------------------------------------------------------


class HubApp:
    """Routing table + handlers, independent of the socket server."""

    def __init__(self, storage: Storage, user: str, orgs: tuple[str, ...], valid_tokens: set[str] | None,
                 require_token_for_writes: bool):
        self.storage = storage
        self.user = user
        self.orgs = tuple(orgs)
        self.valid_tokens = valid_tokens
        self.require_token_for_writes = require_token_for_writes
        api = rf"^/api/{_TYPE}/{_REPO}"
        self.routes: list[tuple[str, re.Pattern, Callable[[Request, re.Match], Response]]] = [
            ("GET", r"^/api/whoami-v2$", self.whoami),
            ("*", r"^/api/telemetry(?:/.*)?$", self.telemetry),
            ("GET", r"^/api/agent-harnesses$", self.agent_harnesses),
            ("POST", r"^/api/repos/create$", self.create_repo),
            ("DELETE", r"^/api/repos/delete$", self.delete_repo),
            ("POST", r"^/api/validate-yaml$", self.validate_yaml),
            ("GET", rf"^/api/{_TYPE}$", self.list_repos),
            ("POST", api + r"/preupload/(?P<rev>[^/]+)$", self.preupload),
            ("POST", api + r"/commit/(?P<rev>[^/]+)$", self.commit),
            ("GET", api + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$", self.tree),
            ("POST", api + r"/paths-info/(?P<rev>[^/]+)$", self.paths_info),
            ("GET", api + r"/refs$", self.refs),
            ("GET", api + r"/commits/(?P<rev>[^/]+)$", self.commits),
            ("POST", api + r"/branch/(?P<branch>[^/]+)$", self.create_branch),
            ("DELETE", api + r"/branch/(?P<branch>[^/]+)$", self.delete_branch),
            ("POST", api + r"/tag/(?P<rev>[^/]+)$", self.create_tag),
            ("PUT", api + r"/settings$", self.settings),
            ("GET", api + r"(?:/revision/(?P<rev>[^/]+))?$", self.repo_info),
            ("POST", rf"^/{_PREFIX}{_REPO}\.git/info/lfs/objects/batch$", self.lfs_batch),
            ("PUT", r"^/__lfs/(?P<oid>[0-9a-f]{64})$", self.lfs_put),
            ("POST", r"^/__lfs/verify$", self.lfs_verify),
            ("GET", rf"^/{_PREFIX}{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$", self.resolve),
            ("HEAD", rf"^/{_PREFIX}{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$", self.resolve),
        ]
        self.routes = [(m, re.compile(p), h) for m, p, h in self.routes]

    # -- dispatch --------------------------------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        try:
            if req.token is not None and self.valid_tokens is not None and req.token not in self.valid_tokens:
                raise HubError(401, "Invalid credentials in Authorization header")
            for method, pattern, handler in self.routes:
                if method not in ("*", req.method):
                    continue
                match = pattern.match(req.path)
                if match:
                    return handler(req, match)
            raise HubError(404, f"Not Found: {req.method} {req.path}")
        except HubError as err:
            return _error_response(err)

    # -- helpers ---------------------------------------------------------------------------------------------
    def _require_token(self, req: Request) -> None:
        if self.require_token_for_writes and req.token is None:
            raise HubError(401, "Authorization header is required for this operation (pass a token)")

    def _repo(self, req: Request, repo_type: str, repo_id: str, write: bool = False) -> dict:
        if write:
            self._require_token(req)
        repo = self.storage.repos.get((repo_type, repo_id))
        if repo is None or (repo["private"] and req.token is None):
            status = 401 if req.token is None else 404
            raise HubError(status, "Repository not found", "RepoNotFound")
        return repo

    def _repo_from_match(self, req: Request, match: re.Match, write: bool = False) -> dict:
        groups = match.groupdict()
        kind = groups.get("type") or groups.get("prefix")
        repo_type = REPO_TYPES[kind] if kind else "model"
        return self._repo(req, repo_type, unquote(groups["repo"]), write=write)

    @staticmethod
    def _resolve_rev(repo: dict, rev: str) -> str:
        rev = unquote(rev)
        for name in (rev, rev.removeprefix("refs/heads/")):
            if name in repo["branches"]:
                return repo["branches"][name]
        tag = rev.removeprefix("refs/tags/")
        if tag in repo["tags"]:
            return repo["tags"][tag]
        if rev in repo["prs"]:
            return repo["prs"][rev]
        if COMMIT_PREFIX_RE.match(rev):
            found = [sha for sha in repo["commits"] if sha.startswith(rev)]
            if len(found) == 1:
                return found[0]
        raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")

    def _snapshot(self, repo: dict, rev: str) -> tuple[str, dict[str, dict]]:
        sha = self._resolve_rev(repo, rev)
        return sha, repo["commits"][sha]["files"]

    @staticmethod
    def _repo_url(req: Request, repo: dict) -> str:
        return f"{req.base_url}/{URL_PREFIX[repo['type']]}{repo['id']}"

    def _new_commit(self, repo: dict, parent: str | None, files: dict, title: str, message: str = "") -> str:
        date = _now()
        seed = json.dumps([parent, sorted(files), title, date, uuid.uuid4().hex]).encode()
        sha = hashlib.sha1(seed).hexdigest()
        repo["commits"][sha] = {
            "parents": [parent] if parent else [],
            "title": title,
            "message": message,
            "date": date,
            "author": self.user,
            "files": files,
        }
        repo["lastModified"] = date
        return sha

    def _last_commit(self, repo: dict, head: str, path: str) -> dict:
        """The most recent commit (first-parent walk) that changed ``path`` (a file or a folder)."""

        def signature(files: dict) -> Any:
            if path in files:
                return files[path]
            return sorted((p, e["sha256"]) for p, e in files.items() if p.startswith(path + "/"))

        current, sha = signature(repo["commits"][head]["files"]), head
        while True:
            parents = repo["commits"][sha]["parents"]
            if not parents or signature(repo["commits"][parents[0]]["files"]) != current:
                commit = repo["commits"][sha]
                return {"id": sha, "title": commit["title"], "date": commit["date"]}
            sha = parents[0]

    def _readme_card(self, files: dict) -> dict | None:
        entry = files.get("README.md")
        if entry is None or entry["size"] > 1_000_000:
            return None
        try:
            return parse_card_metadata(self.storage.blob_path(entry["sha256"]).read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            return None

    # -- misc endpoints --------------------------------------------------------------------------------------
    def whoami(self, req: Request, match: re.Match) -> Response:
        if req.token is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return Response(200, {
            "type": "user",
            "id": hashlib.sha1(self.user.encode()).hexdigest()[:24],
            "name": self.user,
            "fullname": self.user.title(),
            "email": f"{self.user}@example.com",
            "emailVerified": True,
            "canPay": False,
            "isPro": False,
            "periodEnd": None,
            "avatarUrl": "",
            "orgs": [
                {"type": "org", "name": org, "fullname": org, "id": hashlib.sha1(org.encode()).hexdigest()[:24],
                 "roleInOrg": "admin", "isEnterprise": False}
                for org in self.orgs
            ],
            "auth": {"type": "access_token",
                     "accessToken": {"displayName": "tests", "role": "write", "createdAt": _now()}},
        })

    def telemetry(self, req: Request, match: re.Match) -> Response:
        return Response(200, {})

    def agent_harnesses(self, req: Request, match: re.Match) -> Response:
        return Response(200, {"standardEnvVars": [], "harnesses": {}})

    def validate_yaml(self, req: Request, match: re.Match) -> Response:
        content = req.json().get("content", "")
        try:
            metadata = parse_card_metadata(content)
        except ValueError as exc:
            return Response(400, {"errors": [{"message": str(exc)}], "warnings": []})
        errors = []
        if metadata:
            if "model-index" in metadata and not isinstance(metadata["model-index"], list):
                errors.append({"message": '"model-index" must be an array'})
            for key in ("tags", "datasets"):
                if key in metadata and not isinstance(metadata[key], (list, str)):
                    errors.append({"message": f'"{key}" must be an array or a string'})
        if errors:
            return Response(400, {"errors": errors, "warnings": []})
        return Response(200, {"errors": [], "warnings": []})

    # -- repos -----------------------------------------------------------------------------------------------
    def create_repo(self, req: Request, match: re.Match) -> Response:
        self._require_token(req)
        payload = req.json()
        repo_type = payload.get("type") or "model"
        if repo_type not in URL_PREFIX:
            raise HubError(400, f"Invalid repo type: {repo_type}")
        name = payload.get("name") or ""
        if not REPO_NAME_RE.match(name) or "--" in name or ".." in name or name.endswith((".git", ".")):
            raise HubError(400, f"Invalid repo name: {name!r}")
        namespace = payload.get("organization") or self.user
        repo_id = f"{namespace}/{name}"
        if repo_type == "space" and not payload.get("sdk"):
            raise HubError(400, "A Space needs an sdk")
        visibility = payload.get("visibility")
        private = visibility == "private" if visibility is not None else bool(payload.get("private", False))
        with self.storage.lock:
            existing = self.storage.repos.get((repo_type, repo_id))
            if existing is not None:
                url = self._repo_url(req, existing)
                raise HubError(409, f"You already created this {repo_type} repo", url=url, name=repo_id)
            repo = {
                "type": repo_type, "id": repo_id, "private": private, "sdk": payload.get("sdk"),
                "createdAt": _now(), "lastModified": None,
                "branches": {}, "tags": {}, "prs": {}, "commits": {},
            }
            files = {".gitattributes": file_entry(self.storage.put_blob(GITATTRIBUTES.encode()), lfs=False)}
            if repo_type == "space":
                readme = (f"---\ntitle: {name}\nemoji: 🚀\ncolorFrom: blue\ncolorTo: green\n"
                          f"sdk: {payload['sdk']}\npinned: false\n---\n")
                files["README.md"] = file_entry(self.storage.put_blob(readme.encode()), lfs=False)
            repo["branches"]["main"] = self._new_commit(repo, None, files, "initial commit")
            self.storage.repos[(repo_type, repo_id)] = repo
            self.storage.save_repo(repo)
        return Response(200, {"url": self._repo_url(req, repo), "name": repo_id, "id": repo_id})

    def delete_repo(self, req: Request, match: re.Match) -> Response:
        payload = req.json()
        name, namespace = payload.get("name", ""), payload.get("organization") or self.user
        repo_type = payload.get("type") or "model"
        with self.storage.lock:
            repo = self._repo(req, repo_type, f"{namespace}/{name}", write=True)
            self.storage.delete_repo(repo)
        return Response(200, {})

    def settings(self, req: Request, match: re.Match) -> Response:
        payload = req.json()
        with self.storage.lock:
            repo = self._repo_from_match(req, match, write=True)
            if "visibility" in payload:
                repo["private"] = payload["visibility"] == "private"
            elif "private" in payload:
                repo["private"] = bool(payload["private"])
            if "gated" in payload:
                repo["gated"] = payload["gated"]
            self.storage.save_repo(repo)
        return Response(200, {})

    def _info_json(self, req: Request, repo: dict, sha: str | None, blobs: bool) -> dict:
        info: dict[str, Any] = {
            "_id": hashlib.sha1(f"{repo['type']}/{repo['id']}".encode()).hexdigest()[:24],
            "id": repo["id"],
            "author": repo["id"].split("/")[0] if "/" in repo["id"] else None,
            "private": repo["private"],
            "gated": repo.get("gated", False),
            "disabled": False,
            "createdAt": repo["createdAt"],
            "lastModified": repo["lastModified"],
            "likes": 0,
            "tags": [],
        }
        if repo["type"] != "space":
            info["downloads"] = 0
        if repo["type"] == "space":
            info["sdk"] = repo.get("sdk")
        if sha is None:
            return info
        files = repo["commits"][sha]["files"]
        info["sha"] = sha
        info["siblings"] = []
        for path in sorted(files):
            sibling: dict[str, Any] = {"rfilename": path}
            if blobs:
                entry = files[path]
                sibling.update(size=entry["size"], blobId=entry_oid(entry))
                if entry["lfs"]:
                    lfs = entry_json(path, entry)["lfs"]
                    sibling["lfs"] = {"sha256": lfs["oid"], "size": lfs["size"], "pointerSize": lfs["pointerSize"]}
            info["siblings"].append(sibling)
        card = self._readme_card(files)
        if card is not None:
            info["cardData"] = card
            if isinstance(card.get("tags"), list):
                info["tags"] = [str(tag) for tag in card["tags"]]
            if repo["type"] == "model":
                for key in ("library_name", "pipeline_tag"):
                    if isinstance(card.get(key), str):
                        info[key] = card[key]
        return info

    def repo_info(self, req: Request, match: re.Match) -> Response:
        with self.storage.lock:
            repo = self._repo_from_match(req, match)
            sha = self._resolve_rev(repo, match["rev"] or "main")
            return Response(200, self._info_json(req, repo, sha, blobs=req.flag("blobs")))

    def list_repos(self, req: Request, match: re.Match) -> Response:
        repo_type = REPO_TYPES[match["type"]]
        author = (req.query.get("author") or [None])[-1]
        search = (req.query.get("search") or [None])[-1]
        with self.storage.lock:
            items = []
            for (kind, repo_id), repo in sorted(self.storage.repos.items()):
                if kind != repo_type or (repo["private"] and req.token is None):
                    continue
                if author and not repo_id.startswith(author + "/"):
                    continue
                if search and search.lower() not in repo_id.lower():
                    continue
                items.append(self._info_json(req, repo, None, blobs=False))
        return Response(200, items)

    # -- upload ----------------------------------------------------------------------------------------------
    def preupload(self, req: Request, match: re.Match) -> Response:
        payload = req.json()
        with self.storage.lock:
            repo = self._repo_from_match(req, match, write=True)
            try:
                _, files = self._snapshot(repo, match["rev"])
            except HubError:
                files = {}  # unknown revision: the commit itself will answer RevisionNotFound
        answer = []
        for item in payload.get("files", []):
            path = item["path"]
            sample = base64.b64decode(item.get("sample", ""))
            mode = upload_mode_for(path, int(item.get("size", 0)), sample)
            remote = files.get(path)
            oid = None
            if remote is not None:
                oid = remote["sha256"] if mode == "lfs" else remote["git_sha1"]
            answer.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        return Response(200, {"files": answer, "commitOid": None})

    def lfs_batch(self, req: Request, match: re.Match) -> Response:
        payload = req.json()
        with self.storage.lock:
            self._repo_from_match(req, match, write=payload.get("operation") == "upload")
        objects = []
        for obj in payload.get("objects", []):
            oid, size = obj.get("oid", ""), int(obj.get("size", 0))
            if not SHA256_RE.match(oid):
                objects.append({"oid": oid, "size": size, "error": {"code": 422, "message": "Invalid oid"}})
                continue
            meta = self.storage.blob_meta(oid)
            if payload.get("operation") == "download":
                if meta is None:
                    objects.append({"oid": oid, "size": size, "error": {"code": 404, "message": "Object not found"}})
                else:
                    objects.append({"oid": oid, "size": size, "authenticated": True, "actions": {"download": {
                        "href": f"{req.base_url}/__lfs/{oid}"}}})
            elif meta is not None and meta["size"] == size:
                objects.append({"oid": oid, "size": size})  # already there: the client skips the upload
            else:
                objects.append({"oid": oid, "size": size, "authenticated": True, "actions": {
                    "upload": {"href": f"{req.base_url}/__lfs/{oid}", "header": {}},
                    "verify": {"href": f"{req.base_url}/__lfs/verify", "header": {}},
                }})
        return Response(200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
                        content_type="application/vnd.git-lfs+json")

    def lfs_put(self, req: Request, match: re.Match) -> Response:
        self.storage.put_blob(req.body, expected_sha256=match["oid"])
        return Response(200, {}, headers={"ETag": f'"{match["oid"]}"'})

    def lfs_verify(self, req: Request, match: re.Match) -> Response:
        payload = req.json()
        meta = self.storage.blob_meta(str(payload.get("oid", "")))
        if meta is None or meta["size"] != int(payload.get("size", -1)):
            raise HubError(404, f"LFS object {payload.get('oid')} not found or has the wrong size")
        return Response(200, {})

    def commit(self, req: Request, match: re.Match) -> Response:
        try:
            lines = [json.loads(line) for line in req.body.decode("utf-8").splitlines() if line.strip()]
        except ValueError as exc:
            raise HubError(400, f"Invalid ndjson payload: {exc}") from exc
        header = next((line["value"] for line in lines if line.get("key") == "header"), {})
        create_pr = req.flag("create_pr")
        with self.storage.lock:
            repo = self._repo_from_match(req, match, write=True)
            rev = unquote(match["rev"])
            branch = rev.removeprefix("refs/heads/")
            if branch in repo["branches"]:
                head = repo["branches"][branch]
            elif rev in repo["prs"]:
                head = repo["prs"][rev]
            else:
                raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
            parent_commit = header.get("parentCommit")
            if parent_commit and parent_commit != head:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(repo["commits"][head]["files"])
            for line in lines:
                self._apply_operation(files, line.get("key"), line.get("value") or {})
            sha = self._new_commit(repo, head, files, header.get("summary") or "Update",
                                   header.get("description") or "")
            pr_url = None
            if create_pr:
                number = len(repo["prs"]) + 1
                repo["prs"][f"refs/pr/{number}"] = sha
                pr_url = f"{self._repo_url(req, repo)}/discussions/{number}"
            elif branch in repo["branches"]:
                repo["branches"][branch] = sha
            else:
                repo["prs"][rev] = sha
            self.storage.save_repo(repo)
        return Response(200, {
            "success": True,
            "commitOid": sha,
            "commitUrl": f"{self._repo_url(req, repo)}/commit/{sha}",
            "hookOutput": "",
            "pullRequestUrl": pr_url,
        })

    def _apply_operation(self, files: dict, key: str | None, value: dict) -> None:
        path = str(value.get("path", "")).strip("/")
        if key == "header":
            return
        if key == "file":
            if value.get("encoding", "base64") != "base64":
                raise HubError(400, f"Unsupported encoding for {path}")
            files[path] = file_entry(self.storage.put_blob(base64.b64decode(value.get("content", ""))), lfs=False)
        elif key == "lfsFile":
            meta = self.storage.blob_meta(str(value.get("oid", "")))
            if meta is None:
                raise HubError(422, f"LFS object {value.get('oid')} for {path} was never uploaded")
            if value.get("size") is not None and int(value["size"]) != meta["size"]:
                raise HubError(422, f"Size mismatch for LFS file {path}")
            files[path] = file_entry(meta, lfs=True)
        elif key == "deletedFile":
            if path not in files:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            del files[path]
        elif key == "deletedFolder":
            doomed = [p for p in files if p.startswith(path + "/")] if path else list(files)
            if not doomed:
                raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
            for p in doomed:
                del files[p]
        else:
            raise HubError(400, f"Unknown commit operation: {key}")

    # -- refs ------------------------------------------------------------------------------------------------
    def refs(self, req: Request, match: re.Match) -> Response:
        with self.storage.lock:
            repo = self._repo_from_match(req, match)

            def refs_of(kind: str, prefix: str) -> list[dict]:
                return [{"name": name, "ref": f"{prefix}{name}", "targetCommit": sha}
                        for name, sha in sorted(repo[kind].items())]

            data = {"branches": refs_of("branches", "refs/heads/"), "tags": refs_of("tags", "refs/tags/"),
                    "converts": []}
            if req.flag("include_prs"):
                data["pullRequests"] = [{"name": ref, "ref": ref, "targetCommit": sha}
                                        for ref, sha in sorted(repo["prs"].items())]
        return Response(200, data)

    def commits(self, req: Request, match: re.Match) -> Response:
        with self.storage.lock:
            repo = self._repo_from_match(req, match)
            sha = self._resolve_rev(repo, match["rev"])
            items = []
            while sha:
                commit = repo["commits"][sha]
                items.append({"id": sha, "title": commit["title"], "message": commit["message"],
                              "date": commit["date"], "authors": [{"user": commit["author"]}]})
                sha = commit["parents"][0] if commit["parents"] else None
        return Response(200, items)

    def create_branch(self, req: Request, match: re.Match) -> Response:
        payload = req.json()
        with self.storage.lock:
            repo = self._repo_from_match(req, match, write=True)
            branch = unquote(match["branch"])
            if branch in repo["branches"]:
                raise HubError(409, f"Reference already exists: refs/heads/{branch}")
            start = payload.get("startingPoint") or "main"
            repo["branches"][branch] = self._resolve_rev(repo, start)
            self.storage.save_repo(repo)
        return Response(200, {})

    def delete_branch(self, req: Request, match: re.Match) -> Response:
        with self.storage.lock:
            repo = self._repo_from_match(req, match, write=True)
            branch = unquote(match["branch"])
            if branch not in repo["branches"] or branch == "main":
                raise HubError(404 if branch != "main" else 403, f"Cannot delete branch {branch}",
                               "RevisionNotFound" if branch != "main" else None)
            del repo["branches"][branch]
            self.storage.save_repo(repo)
        return Response(200, {})

    def create_tag(self, req: Request, match: re.Match) -> Response:
        payload = req.json()
        with self.storage.lock:
            repo = self._repo_from_match(req, match, write=True)
            tag = str(payload.get("tag", ""))
            if not tag:
                raise HubError(400, "Missing tag name")
            if tag in repo["tags"]:
                raise HubError(409, f"Tag {tag} already exists")
            repo["tags"][tag] = self._resolve_rev(repo, match["rev"])
            self.storage.save_repo(repo)
        return Response(200, {})

    # -- reading files ---------------------------------------------------------------------------------------
    def tree(self, req: Request, match: re.Match) -> Response:
        with self.storage.lock:
            repo = self._repo_from_match(req, match)
            sha, files = self._snapshot(repo, match["rev"])
            base = unquote(match["path"] or "").strip("/")
            prefix = base + "/" if base else ""
            if base and not any(p.startswith(prefix) for p in files):
                raise HubError(404, f"Path {base} not found in tree", "EntryNotFound", {"X-Repo-Commit": sha})
            recursive = req.flag("recursive")
            items, folders = [], set()
            for path in sorted(files):
                if not path.startswith(prefix):
                    continue
                parts = path[len(prefix):].split("/")
                if recursive or len(parts) == 1:
                    items.append(entry_json(path, files[path]))
                for depth in range(1, len(parts) if recursive else min(len(parts), 2)):
                    folders.add(prefix + "/".join(parts[:depth]))
            items += [folder_json(folder, files) for folder in sorted(folders)]
            if req.flag("expand"):
                for item in items:
                    item["lastCommit"] = self._last_commit(repo, sha, item["path"])
        items.sort(key=lambda item: (item["type"] != "directory", item["path"]))
        return Response(200, items, headers={"X-Repo-Commit": sha})

    def paths_info(self, req: Request, match: re.Match) -> Response:
        form = req.form()
        with self.storage.lock:
            repo = self._repo_from_match(req, match)
            sha, files = self._snapshot(repo, match["rev"])
            expand = str((form.get("expand") or ["false"])[-1]).lower() in ("1", "true")
            items = []
            for path in form.get("paths", []):
                path = str(path).strip("/")
                if path in files:
                    item = entry_json(path, files[path])
                elif any(p.startswith(path + "/") for p in files):
                    item = folder_json(path, files)
                else:
                    continue
                if expand:
                    item["lastCommit"] = self._last_commit(repo, sha, path)
                items.append(item)
        return Response(200, items, headers={"X-Repo-Commit": sha})

    def resolve(self, req: Request, match: re.Match) -> Response:
        with self.storage.lock:
            repo = self._repo_from_match(req, match)
            sha, files = self._snapshot(repo, match["rev"])
            path = unquote(match["path"])
            entry = files.get(path)
        if entry is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": sha})
        headers = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes", "Cache-Control": "private, max-age=0"}
        etag = entry["sha256"] if entry["lfs"] else entry["git_sha1"]
        headers["ETag"] = f'"{etag}"'
        if entry["lfs"]:
            headers["X-Linked-Etag"] = f'"{etag}"'
            headers["X-Linked-Size"] = str(entry["size"])
        size = entry["size"]
        blob = self.storage.blob_path(entry["sha256"])
        range_header = req.headers.get("Range")
        if not range_header:
            return Response(200, headers=headers, file=blob, file_range=(0, size))
        span = _parse_range(range_header, size)
        if span is None:
            raise HubError(416, f"Range not satisfiable: {range_header}", headers={"Content-Range": f"bytes */{size}"})
        start, end = span
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return Response(206, headers=headers, file=blob, file_range=(start, end - start + 1))


def _parse_range(value: str, size: int) -> tuple[int, int] | None:
    """``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` -> inclusive (start, end), or None if unsatisfiable."""
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", value)
    if match is None or size == 0:
        return None
    first, last = match.groups()
    if not first:
        if not last or int(last) == 0:
            return None
        return max(size - int(last), 0), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        return None
    return start, end


# ----------------------------------------------------------------------------------------------------------------
# HTTP plumbing
# ----------------------------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LocalHub/1.0"
    server: "_Server"

    def setup(self) -> None:
        super().setup()
        self.server.hub._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.hub._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if self.server.hub.verbose:
            super().log_message(format, *args)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        hub = self.server.hub
        body = self._read_body()
        req = Request(self, body)
        hub._record(req.method, req.path)
        status = hub._injected_failure(req.method, req.path)
        if status == 0:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if status is not None:
            resp = _error_response(HubError(status, f"Injected failure ({status}) for {req.method} {req.path}"))
        else:
            try:
                resp = hub.app.handle(req)
            except Exception as exc:  # a bug in the server: answer 500 instead of hanging the client
                resp = _error_response(HubError(500, f"Internal server error: {exc!r}"))
        self._send(resp)

    def _send(self, resp: Response) -> None:
        self.send_response(resp.status)
        for key, value in resp.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(resp.length))
        self.end_headers()
        if self.command == "HEAD":
            return
        if resp.file is None:
            self.wfile.write(resp.data)
            return
        start, remaining = resp.file_range
        with open(resp.file, "rb") as handle:
            handle.seek(start)
            while remaining > 0:
                chunk = handle.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                self.wfile.write(chunk)
                remaining -= len(chunk)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _dispatch


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    hub: "HubServer"

    def handle_error(self, request: Any, client_address: Any) -> None:
        if self.hub.verbose:  # dropped connections (fail_next status=0, clients going away) are expected
            super().handle_error(request, client_address)


class HubServer:
    """A Hub-compatible server on ``host:port`` (port 0 picks a free one) storing everything under ``root``."""

    def __init__(self, root: Path | str, host: str = "127.0.0.1", port: int = 0, *, user: str = "testuser",
                 orgs: tuple[str, ...] = ("org",), valid_tokens: set[str] | None = None,
                 require_token_for_writes: bool = True, verbose: bool = False):
        self.root = Path(root)
        self.storage = Storage(self.root)
        self.app = HubApp(self.storage, user, orgs, valid_tokens, require_token_for_writes)
        self.verbose = verbose
        self._httpd = _Server((host, port), _Handler, bind_and_activate=True)
        self._httpd.hub = self
        self.host, self.port = self._httpd.server_address[:2]
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._requests: list[tuple[str, str]] = []
        self._failures: list[list] = []  # [method, compiled regex, status, remaining]
        self._connections: set[socket.socket] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> "HubServer":
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                            name=f"hub-server-{self.port}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        with self._lock:
            connections = list(self._connections)
        for conn in connections:  # close idle keep-alive connections so no handler outlives the server
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._httpd.server_close()

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test hooks ------------------------------------------------------------------------------------------
    def fail_next(self, method: str, path_regex: str, status: int = 503, times: int = 1) -> None:
        """Make the next ``times`` requests whose method (``"*"`` = any) and path (``re.search``) match fail with
        ``status`` (a JSON error body; ``status=0`` drops the connection without an answer)."""
        with self._lock:
            self._failures.append([method.upper(), re.compile(path_regex), status, times])

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    @property
    def requests(self) -> list[tuple[str, str]]:
        """A snapshot of every request received so far as ``(method, path)`` (path without the query string)."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def count_requests(self, method: str, path_regex: str) -> int:
        pattern = re.compile(path_regex)
        return sum(1 for m, p in self.requests if method.upper() in ("*", m) and pattern.search(p))

    # -- internals used by the handler -----------------------------------------------------------------------
    def _record(self, method: str, path: str) -> None:
        with self._lock:
            self._requests.append((method, path))

    def _injected_failure(self, method: str, path: str) -> int | None:
        with self._lock:
            for rule in self._failures:
                if rule[0] in ("*", method) and rule[1].search(path):
                    rule[3] -= 1
                    if rule[3] <= 0:
                        self._failures.remove(rule)
                    return rule[2]
        return None

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            (self._connections.add if add else self._connections.discard)(conn)

    def __repr__(self) -> str:
        return f"HubServer(url={self.url!r}, root={str(self.root)!r})"


if __name__ == "__main__":  # pragma: no cover - manual use: python tests/hub_server.py [root] [port]
    import sys

    root_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="local-hub-"))
    with HubServer(root_dir, port=int(sys.argv[2]) if len(sys.argv) > 2 else 0, verbose=True) as hub:
        print(f"serving {hub.url} from {root_dir}")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
