"""The exit codes of every ``sparring`` command, in one place (the README's table is generated from the same words)."""

from __future__ import annotations

OK = 0
REFUSED = 1  # the database refused an account action: no such user, a name taken, a password too short
USAGE = 2  # the command line is wrong (Click's own code for usage errors)
INPUT = 3  # a file, config, database or record cannot be used; the message names it
RUN_FAILED = 4  # a run ended with failed conversations (the message says how many; rerunning retries them)
INTERNAL = 70  # a bug: one line on stderr, the traceback in the log file it names
INTERRUPTED = 130  # stopped by Ctrl-C or SIGTERM; rerunning the same command resumes

MEANINGS = {
    OK: "done",
    REFUSED: "refused (no such user, a name taken, a password too short)",
    USAGE: "wrong command line (unknown option, missing argument)",
    INPUT: "an input cannot be used: a file, config key, database or record, named in the message",
    RUN_FAILED: "a run ended with failed conversations; rerun the same command to retry them",
    INTERNAL: "internal error (a bug); the traceback is in the log file named in the message",
    INTERRUPTED: "interrupted; rerun the same command to resume",
}

HELP = ("Exit codes: 0 done; 1 refused; 2 wrong command line; 3 an input (file, config, database, record) "
        "cannot be used; 4 a run ended with failed conversations; 70 internal error; 130 interrupted.")
