"""`make template-update`: bring this project up to the template's newest commit with cruft
(README, "Keeping up with the template").

cruft renders the template at the commit in .cruft.json and at the newest one, with the answers
recorded there, and applies the difference with git's three-way merge. This prints cruft's own
output when it succeeds; when it fails (uncommitted changes, an answer the template refuses, a
commit the template no longer has), the reason in a few lines instead of a traceback. Either
way a failed update leaves the project's files as they were. Extra arguments go to
`cruft update` (e.g. `--checkout v2`).
"""

import subprocess
import sys

BOX = ("╭", "│", "╰")  # the frame of the traceback cruft's command line prints


def main() -> int:
    command = [sys.executable, "-m", "cruft", "update", "--skip-apply-ask", *sys.argv[1:]]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode == 0:
        print(done.stdout + done.stderr, end="")
        return 0
    reason = why(done.stdout + done.stderr)
    print("template update failed, nothing changed:", *reason, sep="\n  ", file=sys.stderr)
    return 1


def why(output: str) -> list[str]:
    """The lines that say what went wrong: no traceback frames, each message once."""
    kept: list[str] = []
    in_traceback = False
    for line in output.splitlines():
        if not line.strip() or line.startswith(BOX):
            continue
        if line.startswith("Traceback (most recent call last)"):
            in_traceback = True
            continue
        if in_traceback and line.startswith((" ", "\t")):
            continue
        in_traceback = False
        text = line.strip()
        name, colon, message = text.partition(": ")
        if colon and "." in name and " " not in name:  # module.path.SomeError: the message
            text = f"{name.rsplit('.', 1)[-1]}: {message}"
        if text not in kept:
            kept.append(text)
    return kept


if __name__ == "__main__":
    sys.exit(main())
