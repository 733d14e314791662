"""The ``bench`` command: parse options, call the library, print, return an exit code.

``parser`` declares the commands, ``options`` the options they share (once, with
the library's defaults), ``commands`` one thin function per command, and
``console`` how tables and progress print on a terminal and in a pipe. Exit
codes are ``bench.errors.ExitCode``, the same for every command.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import traceback
from collections.abc import Iterator

from bench.doors.redact import MaskedStream, Redactor, flag_secrets
from bench.doors.signals import handling
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
        with ending_like_ctrl_c(signal.SIGTERM, signal.SIGHUP), masked_output(_secrets_of(args)):
            return HANDLERS[args.command](args)
    except BenchError as exc:
        print(f"bench: error: {_secrets_of(args).text(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("bench: interrupted; measured requests are kept and the run is marked partial", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except Exception:
        traceback.print_exc()
        print("bench: internal error (a bug in the suite; the traceback above says where)", file=sys.stderr)
        return ExitCode.INTERNAL


@contextlib.contextmanager
def ending_like_ctrl_c(*signals: signal.Signals) -> Iterator[None]:
    """TERM (systemd, ``timeout``) and HUP (a dropped ssh session) end a command as Ctrl-C does.

    Re-raised as SIGINT, the asyncio run cancels its task: the run is kept as partial
    and a server the suite started is stopped, instead of both being left behind.
    The earlier handlers come back afterwards (``main`` is also called from Python).
    """
    # A command started with SIGINT ignored (a background job of a shell script, `nohup ... &`)
    # would ignore the raised SIGINT too, and TERM would do nothing: the command takes SIGINT
    # back for its length. Ctrl-C at a terminal reaches only foreground jobs either way.
    interrupt = (signal.SIGINT,) if signal.getsignal(signal.SIGINT) == signal.SIG_IGN else ()
    with (
        handling(interrupt, signal.default_int_handler),
        handling(signals, lambda *_: signal.raise_signal(signal.SIGINT)),
    ):
        yield


@contextlib.contextmanager
def masked_output(redactor: Redactor) -> Iterator[None]:
    """Everything the command prints, tables, progress and tracebacks included, through the redactor."""
    if not redactor:
        yield
        return
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = MaskedStream(stdout, redactor), MaskedStream(stderr, redactor)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = stdout, stderr


def _secrets_of(args: argparse.Namespace) -> Redactor:
    """What a message printed for these options must not show: the key and any key in server flags."""
    from bench.cli.options import api_key

    flags = " ".join(str(getattr(args, name, None) or "") for name in ("server_args", "server_flags", "server_cmd"))
    variants = " ".join([*getattr(args, "variant", []), *getattr(args, "switch", [])])
    return Redactor([api_key(args), *flag_secrets(flags.split()), *flag_secrets(variants.split())])


if __name__ == "__main__":
    sys.exit(main())
