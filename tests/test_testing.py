"""``workup.testing``: fakes built from handlers, and a running system in both modes (the
distributed one on the real RabbitMQ at WORKUP_TEST_AMQP_URL)."""

from __future__ import annotations

import socket
from decimal import Decimal
from typing import Any

import pytest
import trio

from workup.messages.contracts import ActiveContractAnswer, HasActiveContract
from workup.messages.payments import CreatePaymentRequest, CreateWallet, GetMyWallet, PaymentRequestRef, WalletBalance
from workup.runtime import Context
from workup.testing import FakeHandler, Mode, fake_service, request_type_of, require_server, running_system
from workup.transport import DeadlineExceeded, NoResponder
from workup.transport.envelope import SERVICE_CALLER, Event


async def create_wallet(ctx: Context[None], req: CreateWallet) -> WalletBalance:
    return WalletBalance(balance=Decimal("0"))


async def unannotated(ctx, req):  # type: ignore[no-untyped-def]
    return None


async def wrong_type(ctx: Context[None], req: CloseWalletAlias) -> None:
    return None


CloseWalletAlias = CreateWallet   # a struct whose name is not the command's


# --- pure: what a fake's command is -------------------------------------------------------------

def test_request_type_comes_from_the_handlers_annotation() -> None:
    assert request_type_of("payments", "CreateWallet", create_wallet) is CreateWallet


def test_request_type_falls_back_to_the_services_message_module() -> None:
    assert request_type_of("contracts", "HasActiveContract", unannotated) is HasActiveContract


async def loosely_typed(ctx: object, req: Any) -> None:
    return None


def test_a_handler_typed_any_falls_back_to_the_message_module() -> None:
    assert request_type_of("payments", "CreateWallet", loosely_typed) is CreateWallet


def test_request_type_must_carry_the_commands_name() -> None:
    with pytest.raises(ValueError, match="takes CreateWallet"):
        request_type_of("payments", "CloseWallet", wrong_type)


def test_an_unknown_command_without_annotation_is_refused() -> None:
    with pytest.raises(ValueError, match="annotate"):
        request_type_of("payments", "NoSuchCommand", unannotated)
    with pytest.raises(ValueError, match="annotate"):
        request_type_of("nosuchservice", "CreateWallet", unannotated)


def test_fake_service_registers_each_handler_with_its_status() -> None:
    svc = fake_service("payments", status={"CreatePaymentRequest": 201},
                       CreateWallet=create_wallet, CreatePaymentRequest=unannotated)
    assert svc.name == "payments" and svc.open_deps is None
    assert {n: (s.request_type, s.status) for n, s in svc.commands.items()} == {
        "payments.CreateWallet": (CreateWallet, 200),
        "payments.CreatePaymentRequest": (CreatePaymentRequest, 201),
    }


def test_fake_service_refuses_a_status_without_handler() -> None:
    with pytest.raises(ValueError, match="without a handler"):
        fake_service("payments", status={"Deposit": 201}, CreateWallet=create_wallet)


def test_require_server_fails_with_the_variable_to_set() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        require_server(f"redis://127.0.0.1:{port}/0", 6379, "Redis", "WORKUP_TEST_REDIS_URL")
        require_server(f"127.0.0.1:{port}", 9042, "Cassandra", "WORKUP_TEST_CASSANDRA_HOSTS")   # host:port
    with pytest.raises(AssertionError, match="Redis not reachable at 127.0.0.1:.*WORKUP_TEST_REDIS_URL"):
        require_server(f"redis://127.0.0.1:{port}/0", 6379, "Redis", "WORKUP_TEST_REDIS_URL")


async def test_running_system_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="mode"):
        async with running_system("local", []):    # type: ignore[arg-type]
            pass
    with pytest.raises(ValueError, match="both real and faked"):
        async with running_system("embedded", ["payments"], fakes={"payments": fake_service("payments")}):
            pass
    with pytest.raises(ValueError, match="named 'contracts'"):
        async with running_system("embedded", [], fakes={"payments": fake_service("contracts")}):
            pass


# --- running systems -----------------------------------------------------------------------------

def recording_payments(seen: list[CreateWallet]) -> tuple[FakeHandler, FakeHandler, FakeHandler]:
    async def create(ctx: Context[None], req: CreateWallet) -> WalletBalance:
        seen.append(req)
        await ctx.emit("wallet.created", [req.user_id], {"userId": req.user_id})
        return WalletBalance(balance=Decimal("0"))

    async def request(ctx: Context[None], req: CreatePaymentRequest) -> PaymentRequestRef:
        return PaymentRequestRef(id=req.milestone_id)

    async def wallet(ctx: Context[None], req: GetMyWallet) -> WalletBalance:
        assert ctx.caller.user_id is not None
        return WalletBalance(balance=Decimal("12.5"))
    return create, request, wallet


@pytest.mark.parametrize("mode", ["embedded", "distributed"])
async def test_a_fake_answers_commands_and_its_events_are_collected(mode: Mode, amqp_url: str) -> None:
    seen: list[CreateWallet] = []
    create, request, wallet = recording_payments(seen)
    fake = fake_service("payments", status={"CreatePaymentRequest": 201},
                        CreateWallet=create, CreatePaymentRequest=request)
    async with running_system(mode, [], fakes={"payments": fake}, gateway=False) as sys:
        assert sys.mode == mode and sys.started == {"payments"}
        body = await sys.ok("payments.CreateWallet", CreateWallet(user_id="u1", role="CLIENT"), SERVICE_CALLER)
        assert isinstance(body, dict) and Decimal(str(body["balance"])) == 0
        assert [s.user_id for s in seen] == ["u1"]
        ref = await sys.ok("payments.CreatePaymentRequest",
                           CreatePaymentRequest(milestone_id="m1", contract_id="c1", client_id="a",
                                                freelancer_id="b", amount=Decimal("1")),
                           SERVICE_CALLER, status=201)
        assert ref == {"id": "m1"}
        event: Event = await sys.wait_for_event("wallet.created", userId="u1")
        assert event.recipients == ["u1"] and sys.events_of("wallet.created") == [event]
        with pytest.raises(RuntimeError, match="no gateway"):
            sys.http


async def test_a_hook_names_the_command_after_the_request_struct() -> None:
    seen: list[CreateWallet] = []
    create, _, _ = recording_payments(seen)
    async with running_system("embedded", [], fakes={"payments": fake_service("payments", CreateWallet=create)},
                              gateway=False) as sys:
        payments = sys.hook("payments", timeout=5)
        assert payments.command(CreateWallet(user_id="u2", role="CLIENT")) == "payments.CreateWallet"
        body = await payments.ok(CreateWallet(user_id="u2", role="CLIENT"), SERVICE_CALLER)
        assert isinstance(body, dict) and Decimal(str(body["balance"])) == 0
        assert (await payments.call(GetMyWallet())).status == 501   # no such command on the fake
        assert [s.user_id for s in seen] == ["u2"]


@pytest.mark.parametrize("mode", ["embedded", "distributed"])
async def test_kill_stops_an_instance_and_start_brings_one_back(mode: Mode, amqp_url: str) -> None:
    fake = fake_service("contracts", HasActiveContract=unannotated)
    async with running_system(mode, [], fakes={"contracts": fake}, gateway=False) as sys:
        await sys.ok("contracts.HasActiveContract", HasActiveContract(user_id="u"), SERVICE_CALLER)
        sys.kill("contracts")
        assert "contracts" not in sys.instances
        with pytest.raises((NoResponder, DeadlineExceeded)):   # queued in-process; refused by the broker
            await sys.call("contracts.HasActiveContract", HasActiveContract(user_id="u"), SERVICE_CALLER,
                           timeout=2)

        async def active(ctx: Context[None], req: HasActiveContract) -> ActiveContractAnswer:
            return ActiveContractAnswer(active=True)
        await sys.start("contracts", fake_service("contracts", HasActiveContract=active))
        assert await sys.ok("contracts.HasActiveContract", HasActiveContract(user_id="u"),
                            SERVICE_CALLER) == {"active": True}


@pytest.mark.parametrize("mode", ["embedded", "distributed"])
async def test_the_real_gateway_routes_to_a_fake(mode: Mode, amqp_url: str, redis_url: str) -> None:
    seen: list[CreateWallet] = []
    _, _, wallet = recording_payments(seen)
    fake = fake_service("payments", GetMyWallet=wallet)
    async with running_system(mode, [], fakes={"payments": fake}) as sys:
        token = sys.token_for("c0ffee" * 5 + "00", "CLIENT")
        r = await sys.http.get("/api/v1/payments/clients/me/wallet", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        assert Decimal(str(r.json()["balance"])) == Decimal("12.5")


async def test_embedded_system_with_real_users_calls_the_fake_peer() -> None:
    seen: list[CreateWallet] = []
    create, _, _ = recording_payments(seen)
    fakes = {"payments": fake_service("payments", CreateWallet=create),
             "contracts": fake_service("contracts", HasActiveContract=unannotated)}
    async with running_system("embedded", ["users"], fakes=fakes) as sys:
        client = await sys.register_client()
        await sys.wait_for(lambda: [s.user_id for s in seen] == [client.id])
        r = await sys.http.get("/api/v1/users/me", headers=client.auth)
        assert r.status_code == 200 and r.json()["userType"] == "CLIENT"
        admin = await sys.admin()
        assert admin.role == "ADMIN"


async def test_wait_for_fails_after_its_timeout() -> None:
    async with running_system("embedded", [], gateway=False) as sys:
        with pytest.raises(trio.TooSlowError):
            await sys.wait_for(lambda: False, timeout=0.05)
        with pytest.raises(AssertionError, match="no x.y event"):
            await sys.wait_for_event("x.y", timeout=0.05)

