"""Reading contracts and milestones through the cache, with the parties-only rule.

The cache holds the public contract / milestone bodies (versioned by ``updated_ms``); the access
rule is applied here after every read, so the cache never widens who may see what. Writers call
:func:`contract_changed` / :func:`milestone_changed` before they reply.
"""

from __future__ import annotations

import msgspec

from ...transport.envelope import Caller
from ...messages.contracts import Contract, Milestone, contract_cache_key, milestone_cache_key
from ...problems import forbidden, not_found
from ...runtime.readcache import fill_soon, invalidate, lookup
from .deps import ContractsDeps
from .rules import can_read

__all__ = ["read_contract", "read_milestone", "readable_contract",
           "contract_changed", "milestone_changed"]

_contract = msgspec.json.Decoder(Contract)
_milestone = msgspec.json.Decoder(Milestone)


async def read_contract(deps: ContractsDeps, contract_id: str) -> Contract:
    cached = await lookup(deps.cache, contract_cache_key(contract_id))
    if cached is not None:
        return _contract.decode(cached)
    c = await deps.store.get_contract(contract_id)
    if c is None:
        raise not_found("contract")
    return fill_soon(deps.cache, contract_cache_key(c.id), c.updated_ms, c.public())


async def readable_contract(deps: ContractsDeps, caller: Caller, contract_id: str) -> Contract:
    c = await read_contract(deps, contract_id)
    if not can_read(caller, c.client_id, c.freelancer_id):
        raise forbidden("only the contract's parties may see it")
    return c


async def read_milestone(deps: ContractsDeps, caller: Caller, milestone_id: str) -> Milestone:
    cached = await lookup(deps.cache, milestone_cache_key(milestone_id))
    if cached is not None:
        m = _milestone.decode(cached)
    else:
        stored = await deps.store.get_milestone(milestone_id)
        if stored is None:
            raise not_found("milestone")
        m = fill_soon(deps.cache, milestone_cache_key(stored.id), stored.updated_ms, stored.public())
    await readable_contract(deps, caller, m.contract_id)
    return m


async def contract_changed(deps: ContractsDeps, contract_id: str, version: int) -> None:
    await invalidate(deps.cache, [contract_cache_key(contract_id)], version)


async def milestone_changed(deps: ContractsDeps, milestone_id: str, version: int) -> None:
    await invalidate(deps.cache, [milestone_cache_key(milestone_id)], version)
