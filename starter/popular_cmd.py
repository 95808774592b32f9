"""`handrail popular refresh|check`: the top-sites list behind the `popular_domain` guardrail.

    handrail popular refresh [--top N]   fetch the current Tranco list (network needed)
    handrail popular check DOMAIN        where a domain (host or URL) stands, and why

The list's path and cut-off are in the policy (`[settings.popular]`). Without a readable
list the guardrail fails safe: every sinkhole and takedown waits for a human.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from starter.output import USAGE, command, console, fail, print_json, shown

if TYPE_CHECKING:
    from handrail.runbooks.phishing.popular import PopularSettings


def _popular_settings() -> PopularSettings:
    from handrail.gate.policy import PolicyError, load_policy
    from handrail.runbooks.phishing.popular import PopularSettings  # tldextract: only for `popular`
    from starter.common import _settings

    settings = _settings()
    try:
        policy = load_policy(settings.policy_path)
    except PolicyError as exc:
        fail(str(exc))
    return PopularSettings.from_policy(policy.settings, settings.home, settings.policy_path.parent)


def _public_suffix(target: str) -> tuple[str, str] | None:
    """(name, whose suffix) when the target's name is itself a public suffix (``co.uk``,
    ``github.io``), the way the gate's canonical_target reads it; else None."""
    from handrail.gate.canon import looks_like_url, target_name
    from handrail.gate.guardrails import _SUFFIX_OWNERS
    from handrail.suffixes import suffix_section

    if looks_like_url(target.strip()):
        return None  # a URL blocks one page, not a suffix (handrail.gate.preflight.target_suffix)
    name = target_name(target)
    section = suffix_section(name)
    if section is None:
        return None
    return name, _SUFFIX_OWNERS.get(section, "a public suffix: every site under it")


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    popular_app = typer.Typer(help="The top-sites list that keeps popular domains from automatic blocking.",
                              no_args_is_help=True)
    app.add_typer(popular_app, name="popular")

    @popular_app.command("check")
    @command
    def check(
        domain: str = typer.Argument(..., help="A domain, host or URL."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON document and nothing else."),
    ):
        """Where a domain stands in the top-sites list, and whether sinkholing it would hold."""
        from handrail.runbooks.phishing.popular import platform_host, standing, target_host

        if not domain.strip() or len(domain) > 2048:
            fail("Give a domain, host or URL.", USAGE)
        suffix = _public_suffix(domain)
        if suffix is not None:  # the gate denies it in every mode: never "the phishing verdict decides"
            name, owners = suffix
            why = (f"{name} is {owners}: the gate never sinkholes or blocks it (canonical_target); "
                   "name the site instead")
            if as_json:
                print_json({"target": domain, "domain": None, "rank": None, "public_suffix": name,
                            "popular": False, "automatic_sinkhole_allowed": False, "page_block": None,
                            "why": why})
                return
            console.print(f"[yellow]{shown(why)}[/]", highlight=False)
            return
        found = standing(domain, _popular_settings())
        holds = found.problem is not None or found.popular
        host = target_host(domain)
        on_platform = bool(host) and platform_host(host)
        pages = None if not found.popular else "automatic" if on_platform else "waits for a human"
        document = found.as_fact() | {"popular": found.popular, "automatic_sinkhole_allowed": not holds,
                                      "page_block": pages, "why": found.describe()}
        if as_json:
            print_json(document)
            return
        colour = "yellow" if holds else "green"
        console.print(f"[{colour}]{shown(found.describe())}[/]", highlight=False)  # a pasted URL: the attacker's
        console.print("a sinkhole or takedown of it waits for a human" if holds
                      else "not popular: the phishing verdict decides", highlight=False)
        if pages == "automatic":
            console.print("a user-content platform's service host: a phishing page on it is blocked on the web "
                          "proxy automatically (high verdicts)", highlight=False)
        elif pages:
            console.print("a phishing page on it (high verdicts): its web proxy block waits for a human",
                          highlight=False)

    @popular_app.command("refresh")
    @command
    def refresh(
        top: int = typer.Option(100_000, "--top", min=1, max=5_000_000,
                                help="How many ranks to keep (more: fewer unknown sites, more memory)."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON document and nothing else."),
    ):
        """Fetch the current Tranco list with the `tranco` package and write it where the policy says."""
        from handrail.runbooks.phishing.popular import load_ranking, write_ranking

        settings = _popular_settings()
        try:
            from tranco import Tranco
        except ImportError:
            fail("The `tranco` package is not installed (pip install tranco: the optional extra 'refresh'); "
                 "or copy a Tranco CSV "
                 f"('rank,domain' lines) to {settings.path}.")
        try:
            cache = settings.path.parent / "tranco-cache"
            cache.mkdir(parents=True, exist_ok=True)
            domains = Tranco(cache=True, cache_dir=str(cache)).list().top(top)
        except Exception as exc:  # the package raises requests' and its own errors
            fail(f"The Tranco list could not be fetched ({type(exc).__name__}); with no network, copy a "
                 f"Tranco CSV ('rank,domain' lines) to {settings.path}.")
        if not domains:
            fail("The Tranco list came back empty; the previous list is kept.")
        count = write_ranking(list(enumerate(domains, start=1)), settings.path)
        load_ranking(settings.path)  # proves it reads back
        document = {"path": str(settings.path), "domains": count, "cutoff": settings.cutoff}
        if as_json:
            print_json(document)
        else:
            console.print(f"wrote {count:,} domains to {settings.path} (cut-off {settings.cutoff:,})", highlight=False)
