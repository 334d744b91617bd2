"""What the `train`, `sample` and `evaluate` commands share: flag parsing that fails in one line,
and a clean exit on a signal that arrives before training is under way.

Only the standard library and absl are imported here, so `train` can install the signal handler
before its heavy imports (jax, orbax, the data).
"""

from __future__ import annotations

import os
import signal
import sys
from typing import NoReturn


def fail(message: str) -> NoReturn:
    """Print `error: message` (one line) to stderr and exit with status 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def define_workdir(help_text: str) -> None:
    """The required --workdir flag of every command; empty is refused (it would mean '.')."""
    from absl import flags

    flags.DEFINE_string("workdir", None, help_text, required=True)
    flags.register_validator("workdir", lambda value: value is None or bool(value.strip()),
                             message="--workdir is empty; name a directory")


def define_config(default: str, help_text: str) -> None:
    """The --config flag (an ml_collections config file, its keys overridable as
    --config.KEY=VALUE); an override of a key the config does not have ends in one line."""
    from ml_collections import config_flags

    try:  # overrides of the default config file are resolved here, when the flag is defined
        config_flags.DEFINE_config_file("config", default, help_text, lock_config=True)
    except (AttributeError, KeyError) as e:
        _unknown_key(e, sys.argv)


def _unknown_key(error: Exception, argv: list[str]) -> NoReturn:
    """Fail naming the --config.KEY override whose last part is the missing key `error` names."""
    key = str(error).strip("\"'")
    given = [a.partition("=")[0] for a in argv if a.startswith("--config.")]
    flag = next((g for g in given if g.endswith(f".{key}")), f"--config.*.{key}")
    fail(f"{flag}: the config has no such key; see the config file for its keys")


# absl's help flags, and whether each prints the short help (the command's own flags only).
HELP_FLAGS = {"--help": True, "-?": True, "--helpshort": True, "--helpfull": False}


def parse_flags(argv: list[str]) -> list[str]:
    """absl.app.run's flags_parser: parse the flags; any error (unknown flag, bad value, a config
    file that does not load) ends in one line, exit 2. A help flag prints the help and exits 0
    (absl's own help flags exit 1)."""
    from absl import flags

    asked = [HELP_FLAGS[a] for a in argv[1:] if a in HELP_FLAGS]
    if asked:
        print_help(short=asked[0])
    try:
        argv = flags.FLAGS(argv)
    except flags.Error as e:
        fail(f"{_one_line(e).rstrip('.')}; see --helpfull")
    except (AttributeError, KeyError) as e:  # overrides of a --config file given by name
        _unknown_key(e, argv)
    except Exception as e:  # noqa: BLE001 (a config file that raises while loading)
        fail(f"cannot parse the command line: {type(e).__name__}: {_one_line(e)}")
    for name in flags.FLAGS:
        try:  # config_flags reports a config file that failed to load on first use: use it now
            getattr(flags.FLAGS[name].value, "keys", None)
        except OSError as e:
            fail(f"--{name}: cannot load the config file: {_one_line(e, last=True)}")
    return argv


def print_help(short: bool) -> NoReturn:
    """The command's help on stdout, exit 0: its docstring and its own flags (those defined by
    gan_jax modules or the __main__ module), or every flag when not `short`. Also under a console
    script, where absl's short help would list no flags."""
    from absl import flags

    main = sys.argv[0] if sys.argv else ""  # absl's name for __main__ (`python -m gan_jax.X`)
    modules = sorted(m for m, defined in flags.FLAGS.flags_by_module_dict().items()
                     if (m.startswith("gan_jax.") or m == main)
                     and any(f.name in flags.FLAGS for f in defined))
    command = [m for m in modules if m != __name__]
    doc = (sys.modules["__main__" if command[0] == main else command[0]].__doc__ or ""
           if command else "")
    body = (flags.FLAGS.get_help() if not short
            else "\n".join(flags.FLAGS.module_help(m) for m in modules))
    tail = "Try --helpfull to get a list of all flags." if short else ""
    print("\n\n".join(part for part in (doc.strip(), "flags:\n" + body, tail) if part))
    sys.exit(0)


def _one_line(error: Exception, last: bool = False) -> str:
    """The error's last line, or its first and last (a message that embeds a traceback)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [""]
    return lines[-1] if last or len(lines) == 1 else f"{lines[0]} {lines[-1]}"


def _exit_now(signum: int, frame) -> NoReturn:
    print(f"{signal.Signals(signum).name} received outside the training loop: exiting (checkpoints "
          f"already saved are kept)", file=sys.stderr, flush=True)
    # os._exit, not sys.exit: the signal may arrive inside a callback (e.g. XLA's gc hook) that
    # would swallow SystemExit with a traceback; before the loop there is nothing to flush or save.
    os._exit(0)


def exit_on_signal() -> None:
    """Make SIGTERM/SIGINT exit cleanly (status 0, one line) until the training loop installs its
    own handlers (train.PreemptionGuard); call it first thing in a command."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_now)
