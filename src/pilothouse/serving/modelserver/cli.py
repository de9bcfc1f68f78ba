"""Command line and process contract of the model server.

The model is loaded *before* the server starts listening (or, with ``--fd``, before it starts
accepting on the inherited socket), so any HTTP answer at all means the model is loaded:
``/v2/health/live`` and ``/v2/health/ready`` become 200 at the same moment. A load failure never
serves: it writes one ``ModelLoadFailed: ...`` line to ``$PILOTHOUSE_TERMINATION_LOG`` (if set) and
stderr, and exits with :data:`EXIT_MODEL_LOAD_FAILED`.

uvicorn runs one worker with uvloop + httptools, no access log, no lifespan round-trip.
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

from pilothouse.serving.loaders import FORMATS, ModelLoadError, load_model
from pilothouse.serving.modelserver import EXIT_MODEL_LOAD_FAILED, MODEL_LOAD_FAILED, TERMINATION_LOG_ENV

log = logging.getLogger("pilothouse.modelserver")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pilothouse.serving.modelserver",
        description="Serve one model over the Open Inference Protocol v2 (REST).",
    )
    p.add_argument("--name", required=True, help="model name used in /v2/models/{name}")
    p.add_argument("--model-uri", required=True, help="model file: a local path or a file:// URI")
    p.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
    p.add_argument("--class-name", default="Model", help="class to instantiate for --format python")
    p.add_argument("--host", default="127.0.0.1", help="bind address for --port (default 127.0.0.1)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", type=int, help="TCP port to bind")
    where.add_argument("--fd", type=int, help="inherited, already bound and listening TCP socket")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    return p


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
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
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

    from pilothouse.serving.modelserver.app import ModelServerApp

    # The *_created samples double the exposition for no use here (the function is untyped, hence the cast).
    cast("Callable[[], None]", disable_created_metrics)()
    app = ModelServerApp(args.name, model, load_seconds=load_seconds)
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
    )
    server = uvicorn.Server(config)
    if args.fd is not None:
        # socket(fileno=...) detects family/type from the descriptor; uvicorn's own fd= path assumes AF_UNIX.
        server.run(sockets=[socket.socket(fileno=args.fd)])
    else:
        server.run()
    return 0
