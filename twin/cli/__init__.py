"""``twin``: run and validate scenarios, compare and sweep them, write the scenario schema.

Exit codes (one table: docs/errors.md): 0 success; 1 internal error; 2 invalid input or usage (the
message names the field or flag; no traceback); 3 an optimize that finds no feasible schedule;
4 the environment failed (a folder not writable, a full disk); 5 a sweep finished with failed
runs; 130 interrupted. Data goes to stdout only when asked for; messages, logs (twin.log) and
progress bars go to stderr (docs/cli.md).
"""

from __future__ import annotations

import os
import sys
import traceback

from twin.cli.common import path_name
from twin.cli.parser import build_parser, twin_version
from twin.cli.study import INFEASIBLE, RUNS_FAILED

__all__ = ["main", "build_parser", "path_name", "twin_version", "INTERNAL_ERROR", "INVALID_INPUT", "INFEASIBLE",
           "ENVIRONMENT_ERROR", "RUNS_FAILED", "INTERRUPTED", "TORCH_THREADS_VARIABLE"]

INTERNAL_ERROR = 1
INVALID_INPUT = 2
ENVIRONMENT_ERROR = 4
"""The machine, not the input: a folder that cannot be created or written, a full disk."""
INTERRUPTED = 130
TORCH_THREADS_VARIABLE = "PCM_TWIN_TORCH_THREADS"
_NO_TORCH = ("validate", "schema", "report")  # commands that never compute: their torch threads are left alone


def _set_torch_threads() -> None:
    """torch's intra-op threads for this process: ``PCM_TWIN_TORCH_THREADS``, default 1. The
    chip's tensors are small to medium and runs are independent: one thread per run is the fast
    setting (the default scenario: 15 s on one thread, 121 s on two on a loaded two-core machine,
    docs/performance.md), and sweeps run one process per core. Results do not depend on it."""
    import torch
    from twin.scenario.schema import ScenarioError
    raw = os.environ.get(TORCH_THREADS_VARIABLE, "1")
    if not raw.isdigit() or not 1 <= int(raw) <= 1024:
        raise ScenarioError([(TORCH_THREADS_VARIABLE, f"{raw!r} is not a number of threads (1 .. 1024)")])
    torch.set_num_threads(int(raw))


def _fail(message: str, *notes: str) -> None:
    """An error on stderr: ``error: ...`` lines, or one JSON line with ``--log-json``."""
    from twin.log import get_logger, settings_json
    if settings_json():
        get_logger("twin.cli").error(message, **({"notes": list(notes)} if notes else {}))
    else:
        print(message, *notes, sep="\n", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from twin.log import configure, unconfigure
    configure(args.verbosity, args.log_json)
    from twin.atomic import OutputExistsError
    from twin.toolchain.data import DatasetError
    from twin.scenario.schema import ScenarioError
    from twin.simulate import ScenarioBuildError
    from twin.scenario.build import DeviceUnavailable
    from twin.resume import ResumeError
    from firmware_model.policies import PolicyError
    try:
        if args.command not in _NO_TORCH:
            _set_torch_threads()
        return args.handler(args)
    except (ScenarioError, DatasetError, ScenarioBuildError, OutputExistsError, PolicyError, ResumeError) as exc:
        _fail(f"error: {exc}")
        return INVALID_INPUT
    except KeyboardInterrupt as exc:
        _fail("interrupted", *getattr(exc, "__notes__", ()))
        return INTERRUPTED
    except DeviceUnavailable as exc:  # simulation.device: cuda on a machine without one
        _fail(f"error: {exc}")
        return ENVIRONMENT_ERROR
    except OSError as exc:  # the environment failed (permissions, a full disk), not the input
        _fail(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), *getattr(exc, "__notes__", ()))
        return ENVIRONMENT_ERROR
    except Exception as exc:  # a bug: say so plainly
        _fail(f"internal error: {type(exc).__name__}: {exc}")
        if args.debug:
            traceback.print_exc()
        return INTERNAL_ERROR
    finally:
        unconfigure()


if __name__ == "__main__":
    sys.exit(main())
