"""A Weaviate server in this process: REST and gRPC on loopback, free ports, memory storage.

It speaks the wire protocol the Python client v4 uses for collections, batch writes, filtered,
vector, BM25 and hybrid search (given a vector), cursors, deletes and counts. What it does not
implement (modules, references, tenants, aggregations other than counts) it refuses with an
error saying so, rather than answering wrongly. It behaves like a single node with
AUTOSCHEMA_ENABLED=false: properties must be in the collection's schema.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import grpc
from weaviate.proto.v1 import health_weaviate_pb2, weaviate_pb2_grpc

from .engine import Database, RpcFailure, unsupported
from .schema import SchemaError

VERSION = "1.33.0"
"""The Weaviate version reported by /v1/meta; the client picks its protocol by it."""
GRPC_MAX_MESSAGE_SIZE = 104_858_000
HOST = "127.0.0.1"
_ANONYMOUS = (
    "anonymous access not enabled. Please authenticate through one of the available methods"
)
_INVALID_KEY = "unauthorized: invalid api key"

Request = TypeVar("Request")
Reply = TypeVar("Reply")


class WeaviateServer:
    """Start with `start()` or as a context manager; `url`, `http_port`, `grpc_port` then say
    where it listens (free ports unless given). With `api_keys`, every call but the well-known probes needs
    ``Authorization: Bearer <key>``; `authorizations` records the headers received."""

    def __init__(
        self,
        *,
        api_keys: Iterable[str] = (),
        version: str = VERSION,
        http_port: int = 0,
        grpc_port: int = 0,
    ) -> None:
        self.api_keys = frozenset(api_keys)
        self.version = version
        self.database = Database()
        self.authorizations: list[tuple[str, str]] = []
        """(transport, Authorization header) for every request that carried one."""
        self._http: ThreadingHTTPServer | None = None
        self._grpc: grpc.Server | None = None
        self.http_port = http_port
        self.grpc_port = grpc_port
        """0 until started: any free port."""

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    def __enter__(self) -> WeaviateServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> WeaviateServer:
        if self._http is not None:
            return self
        handler = type("Handler", (_RestHandler,), {"weaviate": self})
        self._http = ThreadingHTTPServer((HOST, self.http_port), handler)
        self._http.daemon_threads = True
        self.http_port = self._http.server_address[1]
        threading.Thread(target=self._http.serve_forever, args=(0.05,), daemon=True).start()

        size = GRPC_MAX_MESSAGE_SIZE
        self._grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=8),
            options=[
                ("grpc.max_receive_message_length", size),
                ("grpc.max_send_message_length", size),
                ("grpc.so_reuseport", 0),
            ],
        )
        weaviate_pb2_grpc.add_WeaviateServicer_to_server(_WeaviateService(self), self._grpc)
        self._grpc.add_generic_rpc_handlers((_health_handler(),))
        self.grpc_port = self._grpc.add_insecure_port(f"{HOST}:{self.grpc_port}")
        self._grpc.start()
        return self

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace=None)
            self._grpc = None
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def check_auth(self, transport: str, header: str | None) -> str | None:
        """Why a request is refused (None: allowed)."""
        if header:
            self.authorizations.append((transport, header))
        if not self.api_keys:
            return None
        if not header:
            return _ANONYMOUS
        scheme, _, key = header.partition(" ")
        return None if scheme.lower() == "bearer" and key in self.api_keys else _INVALID_KEY

    def meta(self) -> dict[str, Any]:
        return {
            "hostname": f"http://{HOST}:{self.http_port}",
            "modules": {},
            "version": self.version,
            "grpcMaxMessageSize": GRPC_MAX_MESSAGE_SIZE,
        }


class _RestHandler(BaseHTTPRequestHandler):
    """The REST endpoints the client calls outside gRPC: probes, meta and the schema."""

    weaviate: WeaviateServer
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's httpx pool expects

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: object = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._send(status, {"error": [{"message": message}]})

    def _body(self) -> object:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"null")

    def _route(self) -> None:
        path = unquote(urlsplit(self.path).path).rstrip("/")
        parts = path.split("/")[1:]
        if parts[:1] != ["v1"]:
            return self._send(404, {"code": 404, "message": f"path {path} was not found"})
        if parts[1:2] == [".well-known"]:
            if parts[2:] in (["ready"], ["live"]):
                return self._send(200)
            # No OIDC here: the client then uses the API key (or nothing) as given.
            return self._send(404)
        # Read the body before any refusal, so the kept-alive connection stays in step.
        body = self._body() if self.command in ("POST", "PUT", "PATCH") else None
        refused = self.weaviate.check_auth("rest", self.headers.get("Authorization"))
        if refused:
            return self._send(401, {"code": 401, "message": refused})
        db = self.weaviate.database
        match self.command, parts[1:]:
            case "GET", ["meta"]:
                return self._send(200, self.weaviate.meta())
            case "GET", ["schema"]:
                return self._send(200, {"classes": db.list_classes()})
            case "POST", ["schema"]:
                try:
                    return self._send(200, db.create_class(body))
                except SchemaError as exc:
                    return self._error(422, str(exc))
            case "GET" | "HEAD", ["schema", name]:
                schema = db.get_class(name)
                return self._send(200, schema) if schema else self._send(404)
            case "DELETE", ["schema", name]:
                db.delete_class(name)
                return self._send(200)
        return self._error(501, f"{self.command} {path} is not implemented by this server")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _route


def _health_handler() -> grpc.GenericRpcHandler:
    """The gRPC health check the client sends when it connects (with Weaviate's messages)."""

    def check(
        request: health_weaviate_pb2.WeaviateHealthCheckRequest, context: grpc.ServicerContext
    ) -> health_weaviate_pb2.WeaviateHealthCheckResponse:
        serving = health_weaviate_pb2.WeaviateHealthCheckResponse.SERVING
        return health_weaviate_pb2.WeaviateHealthCheckResponse(status=serving)

    return grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health",
        {
            "Check": grpc.unary_unary_rpc_method_handler(
                check,
                request_deserializer=health_weaviate_pb2.WeaviateHealthCheckRequest.FromString,
                response_serializer=health_weaviate_pb2.WeaviateHealthCheckResponse.SerializeToString,
            )
        },
    )


class _WeaviateService(weaviate_pb2_grpc.WeaviateServicer):
    """The `weaviate.v1.Weaviate` gRPC service, answered from the database."""

    def __init__(self, server: WeaviateServer) -> None:
        self.server = server
        self.db = server.database

    def _call(
        self, context: grpc.ServicerContext, method: Callable[[Request], Reply], request: Request
    ) -> Reply:
        header = dict(context.invocation_metadata()).get("authorization")
        refused = self.server.check_auth("grpc", header)
        if refused:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, refused)
        try:
            return method(request)
        except RpcFailure as exc:
            context.abort(exc.code, exc.message)

    def Search(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._call(context, self.db.search, request)

    def BatchObjects(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._call(context, self.db.batch_objects, request)

    def BatchDelete(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._call(context, self.db.batch_delete, request)

    def Aggregate(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._call(context, self.db.aggregate, request)

    def _refuse(self, what: str, context: grpc.ServicerContext) -> Any:
        failure = unsupported(what)
        context.abort(failure.code, failure.message)

    def BatchReferences(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._refuse("BatchReferences", context)

    def TenantsGet(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._refuse("TenantsGet (multi-tenancy)", context)

    def BatchStream(self, request_iterator: Any, context: grpc.ServicerContext) -> Any:
        return self._refuse("BatchStream (servers before 1.36 have none)", context)
