"""Trace links: what an operator clicks in an error reply or an announcement."""

from bot.config import Settings
from telemetry.trace_links import TraceLinks, trace_reference

TID = "0af7651916cd43dd8448eb211c80319c"


def test_environment_link_has_team_environment_dataset_and_window() -> None:
    url = TraceLinks("acme", "prod").trace_url(TID, "chatops-bot", start_s=1_700_000_000)
    assert url.startswith(
        "https://ui.honeycomb.io/acme/environments/prod/datasets/chatops-bot/trace?"
    )
    assert f"trace_id={TID}" in url
    assert "trace_start_ts=1699999940" in url and "trace_end_ts=1700003600" in url


def test_classic_link_and_eu_region_follow_the_api_url() -> None:
    links = TraceLinks("acme", None, "https://api.eu1.honeycomb.io")
    assert (
        links.trace_url(TID, "ci")
        == f"https://ui.eu1.honeycomb.io/acme/datasets/ci/trace?trace_id={TID}"
    )


def test_odd_names_are_escaped_not_interpreted() -> None:
    url = TraceLinks("a/b", "x y").trace_url(0xABC, "d?s")
    assert "/a%2Fb/environments/x%20y/datasets/d%3Fs/trace?" in url
    assert "trace_id=00000000000000000000000000000abc" in url


def test_without_a_team_the_reference_is_the_bare_id() -> None:
    assert trace_reference(None, TID, "chatops-bot") == TID
    settings = Settings(_env_file=None, discord_token="x")  # type: ignore[call-arg]
    assert settings.trace_links is None
    configured = Settings(_env_file=None, discord_token="x", honeycomb_team="acme")  # type: ignore[call-arg]
    assert trace_reference(configured.trace_links, TID, "s").startswith(
        "https://ui.honeycomb.io/acme/datasets/s/"
    )
