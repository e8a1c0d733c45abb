"""The accounts and rosters both servers get, and how each server is given them.

- Connect and message users ``u0`` .. ``u{N-1}``, without rosters.
- Presence users ``p{R}x0`` .. ``p{R}x{U-1}`` for each roster size R: user i has the R users
  nearest to it on a ring of U (i ± 1 .. i ± R/2) as contacts, all with subscription "both",
  so every roster is mutual.

Every account has the same password and the same SCRAM-SHA-1 salt (4096 iterations), so a
load-generator worker derives the salted password once. roost gets them through
``roost import`` of a XEP-0227 file carrying ``<scram-credentials>`` (the bulk path operators
use too); Prosody gets its ``internal`` storage files written directly
(``data/<host>/accounts/<user>.dat`` with ``internal_hashed`` fields, ``roster/<user>.dat``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from roost.auth.credentials import (
    ScramKeys,
    keys_from_salted,
    prepare_password,
    salted_password,
)
from roost.storage.roster import RosterItem, roster_query
from roost.xep0227 import UserData, user_element, write_document

SALT: Final = b"roost-bench-salt"  # ASCII: Prosody keeps its salt as a Lua string
ITERATIONS: Final = 4096


def bench_keys(password: str) -> ScramKeys:
    """The SCRAM-SHA-1 keys every bench account shares."""
    salted = salted_password("SHA-1", prepare_password(password), SALT, ITERATIONS)
    return keys_from_salted("SHA-1", salted, SALT, ITERATIONS)


@dataclass(frozen=True, slots=True)
class Population:
    """Who exists: ``plain`` users without rosters, and rings of (R contacts, U users)."""

    domain: str
    plain: int
    rings: tuple[tuple[int, int], ...]

    def plain_user(self, n: int) -> str:
        """The n-th user without a roster."""
        return f"u{n}"

    @staticmethod
    def ring_user(contacts: int, n: int) -> str:
        """The n-th user of the ring whose users have ``contacts`` contacts."""
        return f"p{contacts}x{n}"

    def ring_users(self, contacts: int) -> list[str]:
        """Every user of one ring."""
        size = dict(self.rings)[contacts]
        return [self.ring_user(contacts, n) for n in range(size)]

    def contacts_of(self, contacts: int, size: int, n: int) -> list[str]:
        """The bare JIDs on user n's roster in a ring of ``size``."""
        half = contacts // 2
        near = [(n + d) % size for d in range(1, half + 1)]
        near += [(n - d) % size for d in range(1, half + 1)]
        return [f"{self.ring_user(contacts, m)}@{self.domain}" for m in near]

    def accounts(self) -> Iterator[tuple[str, list[str]]]:
        """(username, contact bare JIDs) for every account."""
        for n in range(self.plain):
            yield self.plain_user(n), []
        for contacts, size in self.rings:
            if contacts % 2 or size <= contacts:
                raise ValueError(f"a ring needs an even R below its size: R={contacts} U={size}")
            for n in range(size):
                yield self.ring_user(contacts, n), self.contacts_of(contacts, size, n)

    @property
    def roster_items(self) -> int:
        """Roster items over all accounts."""
        return sum(contacts * size for contacts, size in self.rings)


def write_xep0227(population: Population, keys: ScramKeys, path: Path) -> int:
    """The roost import file; the number of accounts in it."""
    users = (
        user_element(
            UserData(
                population.domain,
                name,
                scram={"SHA-1": keys},
                children=[roster_query(RosterItem(jid, subscription="both") for jid in contacts)],
            )
        )
        for name, contacts in population.accounts()
    )
    with path.open("wb") as out:
        return write_document(out, [(population.domain, users)])


def _prosody_encode(name: str) -> str:
    """util.datamanager's file-name encoding: %xx for all but ASCII letters and digits."""
    return "".join(c if c.isascii() and c.isalnum() else f"%{ord(c):02x}" for c in name)


def _lua_key(name: str) -> str:
    return '["' + name.replace("\\", "\\\\").replace('"', '\\"') + '"]'


def write_prosody_data(population: Population, keys: ScramKeys, data_path: Path) -> int:
    """Prosody ``internal`` storage files under ``data_path``; the number of accounts.

    Usernames are ASCII letters and digits, which need no escaping in file names.
    """
    host = data_path / _prosody_encode(population.domain)
    (host / "accounts").mkdir(parents=True, exist_ok=True)
    (host / "roster").mkdir(exist_ok=True)
    account = (
        "return {\n"
        f'\t["iteration_count"] = {keys.iterations};\n'
        f'\t["salt"] = "{keys.salt.decode("ascii")}";\n'
        f'\t["server_key"] = "{keys.server_key.hex()}";\n'
        f'\t["stored_key"] = "{keys.stored_key.hex()}";\n'
        "};\n"
    )
    count = 0
    for name, contacts in population.accounts():
        (host / "accounts" / f"{name}.dat").write_text(account)
        if contacts:
            items = "".join(
                f'\t{_lua_key(jid)} = {{ ["subscription"] = "both"; ["groups"] = {{}}; }};\n'
                for jid in contacts
            )
            roster = (
                'return {\n\t[false] = { ["version"] = 1; ["pending"] = {}; };\n' + items + "};\n"
            )
            (host / "roster" / f"{name}.dat").write_text(roster)
        count += 1
    return count
