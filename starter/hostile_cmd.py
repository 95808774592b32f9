"""Commands about hostile input: `handrail bench parse` (the pathological mail corpus) and
`handrail codec-server` (decrypts Temporal payloads for the Web UI)."""

from __future__ import annotations

from typing import Optional

import typer

from starter.output import command, console, print_json

JSON = typer.Option(False, "--json", help="Print one JSON document and nothing else.")


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    from starter.common import bench_group

    bench_app = bench_group(app)

    @bench_app.command("parse")
    @command
    def bench_parse(
        size: int = typer.Option(4 * 1024 * 1024 - 4096, "--size", help="Hostile bytes per message (default: cap)."),
        case: Optional[list[str]] = typer.Option(None, "--case", help="Only these corpus entries."),
        as_json: bool = JSON,
    ):
        """Parse the pathological mail corpus once each; report the worst case against the budget."""
        from handrail.runbooks.phishing.hostile import bench

        result = bench(size, case or None)
        if as_json:
            print_json(result)
            return
        for name, row in result["cases"].items():
            console.print(f"{name:18s} {row['seconds']:8.3f}s  {row['outcome']}")
        console.print(f"worst: {result['worst_case']} {result['worst_seconds']}s "
                      f"(budget {result['budget_seconds']}s)")

    @app.command("codec-server")
    @command
    def codec_server(
        host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (loopback by default)."),
        port: int = typer.Option(8081, "--port", help="Port to listen on."),
        origin: Optional[list[str]] = typer.Option(None, "--origin",
                                                   help="Web UI origin allowed by CORS (default the local UI)."),
        as_json: bool = JSON,
    ):
        """Serve /encode and /decode for the Temporal Web UI with the key in HANDRAIL_PAYLOAD_KEY."""
        import uvicorn

        from handrail.ops.codec import KEY_ENV, codec_from_env
        from handrail.ops.codec_server import codec_app
        from handrail.ops.config import load_settings
        from starter.output import fail

        codec = codec_from_env()
        if codec is None:
            fail(f"{KEY_ENV} is not set: there is nothing to decrypt with.")
        origins = origin or [load_settings().ui_url.rstrip("/")]
        if as_json:
            print_json({"url": f"http://{host}:{port}", "origins": origins})
        else:
            console.print(f"codec server on http://{host}:{port} for {', '.join(origins)}")
        uvicorn.run(codec_app(codec, origins), host=host, port=port, log_level="warning")
