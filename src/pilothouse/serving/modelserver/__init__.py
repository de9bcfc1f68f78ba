"""Pilothouse model server: one model, one process, Open Inference Protocol v2 over HTTP.

Started by the platform's process supervisor as
``python -m pilothouse.serving.modelserver --name N --model-uri U --format F (--port P | --fd FD)``.
This package deliberately imports nothing from the control plane (store, controllers, runtime,
server, client, fastapi, sqlalchemy) so that start-up stays fast; see :mod:`.cli` for the contract.
Importing the package itself is cheap: it only defines the process-contract constants.
"""

from __future__ import annotations

#: Exit status when the model cannot be loaded (message also in ``$PILOTHOUSE_TERMINATION_LOG``).
EXIT_MODEL_LOAD_FAILED = 3
#: Environment variable naming the file that receives the one-line failure reason.
TERMINATION_LOG_ENV = "PILOTHOUSE_TERMINATION_LOG"
#: Prefix of the termination-log line for load failures.
MODEL_LOAD_FAILED = "ModelLoadFailed"

__all__ = ["EXIT_MODEL_LOAD_FAILED", "MODEL_LOAD_FAILED", "TERMINATION_LOG_ENV"]
