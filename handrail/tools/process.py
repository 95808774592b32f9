"""Running a tool's own command line (nft, unbound-control) without blocking the event loop.

A command that cannot start or times out is `Unavailable` (worth retrying); its exit code
and the first line of its stderr decide the rest in the caller.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from handrail.tools.errors import Unavailable


@dataclass
class Completed:
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def error_line(self) -> str:
        lines = [ln.strip() for ln in self.stderr.decode(errors="replace").splitlines() if ln.strip()]
        first = next((ln for ln in lines if ln.lower().startswith("error")), lines[0] if lines else "")
        return first[:300]


async def run_command(argv: list[str], *, stdin: bytes | None = None, timeout: float = 10.0) -> Completed:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    except OSError as exc:
        raise Unavailable(f"The command {argv[0]} cannot be started: {exc.strerror or exc}.",
                          code="unreachable") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except TimeoutError:
        await _kill(proc)
        raise Unavailable(f"The command {argv[0]} did not finish within {timeout:g}s.", code="timeout") from None
    except BaseException:  # cancelled (the activity timed out or the worker stops): the command goes too
        await asyncio.shield(_kill(proc))
        raise
    return Completed(proc.returncode or 0, out, err)


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        try:
            proc.kill()
        except ProcessLookupError:
            pass
    await proc.wait()
