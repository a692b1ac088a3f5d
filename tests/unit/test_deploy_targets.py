"""Which containers ``chatops deploy`` rolls, and where it asks each for readiness."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from bot.deploy import DeployFailed, DeployRequest, _health_url, _pick, secret_file_variable

BOT = "myacr.azurecr.io/chatops-bot"
REQUEST = DeployRequest(group="chatops-bot", image=f"{BOT}:2.0.0")


def container(name: str, image: str, *, port: int | None = None, **env: str) -> Any:
    return SimpleNamespace(
        name=name,
        image=image,
        ports=[SimpleNamespace(port=port)] if port else [],
        environment_variables=[SimpleNamespace(name=k, value=v) for k, v in env.items()],
    )


def group(*containers: Any, ip: str | None = "20.1.2.3", ports: tuple[int, ...] = ()) -> Any:
    address = SimpleNamespace(ip=ip, fqdn=None, ports=[SimpleNamespace(port=p) for p in ports])
    return SimpleNamespace(name="chatops-bot", containers=list(containers), ip_address=address)


def sharded(site: str) -> Any:
    return group(
        container("bot-0", f"{BOT}:1.0.0", port=8080),
        container("bot-1", f"{BOT}@sha256:{'a' * 64}", port=8081),
        container("tls", "myacr.azurecr.io/caddy:2", SITE_ADDRESS=site),
        ports=(80, 443),
    )


def test_every_container_of_the_bot_repository_is_rolled_in_order_and_the_sidecar_is_not() -> None:
    assert [c.name for c in _pick(sharded("x.example"), None, REQUEST.image)] == ["bot-0", "bot-1"]
    assert [c.name for c in _pick(sharded("x.example"), "bot-1", REQUEST.image)] == ["bot-1"]


def test_a_group_with_no_container_of_that_repository_asks_for_container() -> None:
    with pytest.raises(
        DeployFailed, match=r"none running myacr\.azurecr\.io/other: pass --container"
    ):
        _pick(sharded("x.example"), None, "myacr.azurecr.io/other:1")
    with pytest.raises(DeployFailed, match="has no container bot-7"):
        _pick(sharded("x.example"), "bot-7", REQUEST.image)


def test_behind_the_tls_sidecar_readiness_is_asked_over_https_per_container() -> None:
    target = sharded("chatops.example.org")
    bot_1 = target.containers[1]
    assert _health_url(target, bot_1, REQUEST) == "https://chatops.example.org/readyz/bot-1"
    # No public certificate yet: nothing to ask from outside, the ready phase is skipped.
    assert _health_url(sharded("localhost"), bot_1, REQUEST) is None


def test_without_the_sidecar_each_container_is_asked_on_its_own_port() -> None:
    target = group(
        container("bot-0", f"{BOT}:1", port=8080),
        container("bot-1", f"{BOT}:1", port=8081),
        ports=(8080,),
    )
    assert _health_url(target, target.containers[1], REQUEST) == "http://20.1.2.3:8081/readyz"
    single = group(container("bot", f"{BOT}:1"), ports=(8080,))
    assert _health_url(single, single.containers[0], REQUEST) == "http://20.1.2.3:8080/readyz"
    no_check = DeployRequest(group="g", image="i", check_health=False)
    assert _health_url(single, single.containers[0], no_check) is None


def test_secret_volume_files_are_re_sent_from_a_variable_named_after_them() -> None:
    assert secret_file_variable("commands", "commands.toml") == "COMMANDS__COMMANDS_TOML"
