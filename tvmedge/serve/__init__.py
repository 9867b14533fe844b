"""The REST model service: compiled artifacts under one directory, served over HTTP on the board.

Why FastAPI + uvicorn: they are the standard ASGI pair, so the service gets an OpenAPI schema generated from its
routes, async request handling that lets an unload wait for running requests while other models keep serving,
and a server with graceful shutdown and a connection limit, without writing any of it. FastAPI's only heavy
dependency, pydantic, tvmedge already uses; plain ``uvicorn`` (no ``[standard]`` extra) is pure Python over h11,
so it adds no compiled wheel of its own (pydantic-core has aarch64 wheels; riscv64 may need a Rust toolchain). The alternatives were weighed:
Flask/gunicorn is WSGI (no async, OpenAPI only through plugins), aiohttp and tornado (already a dependency) have
no schema generation. ``prometheus_client`` is the reference Prometheus exporter.

Only ``tvmedge.runtime`` and ``tvmedge.errors`` are imported from tvmedge: the service runs where the compiler is
not installed (``TVM_USE_RUNTIME_LIB=1``). Install it with ``pip install 'tvmedge[serve]'``.

Example (on the board, then from a client)::

    $ tvmedge serve --models models/          # models/<name>/ = manifest.json + model.so, one per model
    serving /srv/models on http://127.0.0.1:8080 (all models; loaded: tiny_cnn; RSS 109 MiB)
    $ curl -s localhost:8080/v1/models/tiny_cnn/infer -H 'content-type: application/x-npy' --data-binary @x.npy
    {"model":"tiny_cnn","outputs":{"probabilities":{"shape":[1,10],"dtype":"float32","data":[[0.0905,...]]}},"latency_ms":1.2}
    $ curl -s -X POST localhost:8080/v1/models/tiny_cnn/unload
    {"name":"tiny_cnn","state":"available","drained_requests":0,"waited_ms":0.01,"rss_before_bytes":...}

From Python: ``serve(ServeOptions("models/"))``, or ``create_app(ModelRegistry("models/"), options)`` for another
ASGI server.

Modules: ``registry`` (load/unload/admission, no web code), ``codec`` (bodies <-> arrays), ``options``
(settings and their security checks), ``metrics`` (Prometheus), ``app`` (routes), ``server`` (uvicorn),
``memory`` (RSS).
"""

from .options import ServeOptions
from .registry import ModelRegistry
from .server import serve, start_registry

__all__ = ["ServeOptions", "ModelRegistry", "serve", "start_registry"]
