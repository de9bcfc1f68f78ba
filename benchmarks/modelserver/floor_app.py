"""The benchmark's "floor": the least code that serves the same model with Starlette + orjson.

No validation, no metrics, no error handling beyond what Starlette does. It shows what the HTTP stack
(uvicorn + uvloop + httptools) and ``model.predict`` cost on their own, so the model server's
overhead can be read as a ratio against it.
"""

from __future__ import annotations

import argparse

import joblib
import numpy as np
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def build(model_path: str, name: str) -> Starlette:
    model = joblib.load(model_path)

    async def infer(request: Request) -> Response:
        body = orjson.loads(await request.body())
        tensor = body["inputs"][0]
        x = np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
        y = model.predict(x)
        out = {
            "model_name": name,
            "outputs": [{"name": "output-0", "datatype": "INT64", "shape": list(y.shape), "data": y}],
        }
        return Response(orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")

    async def ready(request: Request) -> Response:
        return Response(b'{"ready":true}', media_type="application/json")

    return Starlette(
        routes=[
            Route(f"/v2/models/{name}/infer", infer, methods=["POST"]),
            Route("/v2/health/ready", ready, methods=["GET"]),
        ]
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--name", default="iris")
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    uvicorn.run(
        build(args.model, args.name),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        server_header=False,
    )


if __name__ == "__main__":
    main()
