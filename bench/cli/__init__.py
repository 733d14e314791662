"""The ``bench`` command: parse options, call the library, print, return an exit code.

``parser`` declares the commands, ``options`` the options they share (once, with
the library's defaults), ``commands`` one thin function per command, and
``console`` how tables and progress print on a terminal and in a pipe. Exit
codes are ``bench.errors.ExitCode``, the same for every command.
"""

from __future__ import annotations

import asyncio
import sys
import traceback

from bench.errors import BenchError, ExitCode


def main(argv: list[str] | None = None) -> int:
    from bench.cli.commands import HANDLERS
    from bench.cli.parser import build_parser

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return ExitCode.CONFIG
    try:
        return HANDLERS[args.command](args)
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("bench: interrupted; measured requests are kept and the run is marked partial", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except Exception:
        traceback.print_exc()
        print("bench: internal error (a bug in the suite; the traceback above says where)", file=sys.stderr)
        return ExitCode.INTERNAL


if __name__ == "__main__":
    sys.exit(main())
