"""Organisations and several tenants per vendor: two organisations with two tenants of each
vendor between them, each tenant its own simulator (other data, other token), loaded by the real
`posture` command from a configuration file, built by dbt and published."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from cli.main import main
from simulators.keeper_rmd import KeeperRmdSimulator
from simulators.onepassword_events import FEATURES, OnePasswordEventsSimulator
from simulators.server import SimulatorServer
from simulators.trend_audit import TrendAuditSimulator
from tests.conftest import files_containing

ROOT = Path(__file__).resolve().parent.parent
TREND_ACCOUNTS = {"t-acme": "111111111111", "t-globex": "222222222222"}
ONEPASSWORD_TABLES = {
    "signin_attempts": "signinattempts",
    "item_usages": "itemusages",
    "audit_events": "auditevents",
}
BI_TYPES = {"BIGINT", "DOUBLE", "DATE", "TIMESTAMP", "VARCHAR", "BOOLEAN"}


@dataclass
class Fleet:
    """The simulators (by tenant), the tokens, and what the loads printed."""

    servers: dict[str, SimulatorServer]
    tokens: dict[str, str]
    data_dir: Path
    second_load: subprocess.CompletedProcess

    def published(self, sql: str, params: tuple = ()) -> list[tuple]:
        path = self.data_dir / "published" / "posture.duckdb"
        with duckdb.connect(str(path), read_only=True) as con:
            return con.execute(sql, params).fetchall()


def _simulators() -> dict[str, tuple[str, object, str]]:
    """tenant -> (source, simulator, token); 1Password's two share a seed, so some of their
    event uuids are equal (different people, different data)."""
    tokens = {tenant: f"tok-{tenant}-{secrets.token_hex(8)}" for tenant in _TENANTS}
    return {
        "k-acme": (
            "keeper",
            KeeperRmdSimulator(
                users=40, seed=21, tokens=(tokens["k-acme"],), domain="acme.example"
            ),
            tokens["k-acme"],
        ),
        "k-globex": (
            "keeper",
            KeeperRmdSimulator(users=25, seed=22, tokens=(tokens["k-globex"],), domain="globex.io"),
            tokens["k-globex"],
        ),
        **{
            tenant: (
                "trend",
                TrendAuditSimulator(
                    accounts=(account,),
                    seed=21 + n,
                    api_keys={tokens[tenant]: account},
                    history_days=2,
                    events_per_day=60,
                ),
                tokens[tenant],
            )
            for n, (tenant, account) in enumerate(TREND_ACCOUNTS.items())
        },
        **{
            tenant: (
                "onepassword",
                OnePasswordEventsSimulator(
                    account_uuid=f"ACCOUNT{n}".ljust(26, "0"),
                    seed=5,
                    tokens={tokens[tenant]: FEATURES},
                    users=users,
                    history_days=2,
                ),
                tokens[tenant],
            )
            for n, (tenant, users) in enumerate((("op-acme", 15), ("op-globex", 9)))
        },
    }


_TENANTS = ("k-acme", "k-globex", "t-acme", "t-globex", "op-acme", "op-globex")


def _config(servers: dict[str, SimulatorServer]) -> str:
    """Two organisations; every token named by an environment variable, one by a dlt secret."""
    blocks = []
    for tenant, server in servers.items():
        source = {"k": "keeper", "t": "trend", "op": "onepassword"}[tenant.split("-")[0]]
        organisation = tenant.split("-")[1]
        token = (
            'token_secret = "globex.onepassword_token"'
            if tenant == "op-globex"
            else f'token_env = "{_token_env(tenant)}"'
        )
        blocks.append(
            f'[[organisations.{organisation}.{source}]]\ntenant = "{tenant}"\n'
            f'base_url = "{server.url}"\n{token}\n'
        )
    return "\n".join(blocks)


def _token_env(tenant: str) -> str:
    return "TEST_" + tenant.upper().replace("-", "_") + "_TOKEN"


def _posture(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    folder = tmp_path_factory.mktemp("organisations")
    with ExitStack() as stack:
        made = _simulators()
        servers = {t: stack.enter_context(SimulatorServer(sim)) for t, (_, sim, _) in made.items()}
        tokens = {tenant: token for tenant, (_, _, token) in made.items()}
        config = folder / "posture.toml"
        config.write_text(_config(servers))
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__")}
        env.update(
            {
                "POSTURE_CONFIG": str(config),
                "POSTURE_DATA_DIR": str(folder / "warehouse"),
                "GLOBEX__ONEPASSWORD_TOKEN": tokens["op-globex"],
                **{_token_env(t): tokens[t] for t in tokens if t != "op-globex"},
            }
        )
        first = _posture(env, "load", "all")
        assert first.returncode == 0, first.stderr[-3000:]
        for server in servers.values():
            server.simulator.advance(days=1)
        # The second day one tenant's key is wrong: only that tenant fails.
        second = _posture({**env, _token_env("t-globex"): "wrong-key"}, "load", "all")
        for step in ("transform", "publish"):
            done = _posture(env, step)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        yield Fleet(servers, tokens, folder / "warehouse", second)


def test_every_row_belongs_to_the_tenant_whose_server_sent_it(fleet: Fleet):
    # Keeper: each tenant's latest snapshot lists exactly its own enterprise's users.
    for tenant in ("k-acme", "k-globex"):
        rows = fleet.published(
            "select count(*), count(distinct snapshot_date) from "
            "keeper_rmd.enterprise_stat_details where tenant = ? and snapshot_date = "
            "(select max(snapshot_date) from keeper_rmd.enterprise_stat_details where tenant = ?)",
            (tenant, tenant),
        )
        assert rows == [(fleet.servers[tenant].simulator.user_count(), 1)]
    domains = fleet.published(
        "select tenant, split_part(enterprise_user_id, '@', 2) from "
        "keeper_rmd.enterprise_stat_details group by all order by 1"
    )
    assert domains == [("k-acme", "acme.example"), ("k-globex", "globex.io")]

    # Trend: every event is its own account's; t-acme has every event its server holds.
    accounts = fleet.published(
        "select tenant, account_id, count(*) from trend_audit.audit_logs group by all order by 1"
    )
    assert [(t, a) for t, a, _ in accounts] == sorted(TREND_ACCOUNTS.items())
    acme_events = len(fleet.servers["t-acme"].simulator.retained_events())
    assert accounts[0][2] == acme_events

    # 1Password: each tenant holds exactly the events its server shows, although the two
    # accounts have event uuids in common.
    shared = 0
    for table, feature in ONEPASSWORD_TABLES.items():
        by_tenant = {}
        for tenant in ("op-acme", "op-globex"):
            stored = fleet.published(
                f"select uuid from onepassword_events.{table} where tenant = ?", (tenant,)
            )
            by_tenant[tenant] = {uuid for (uuid,) in stored}
            assert len(stored) == len(by_tenant[tenant])
            assert by_tenant[tenant] == set(
                fleet.servers[tenant].simulator.visible_uuids(feature)
            ), (table, tenant)
        shared += len(by_tenant["op-acme"] & by_tenant["op-globex"])
    assert shared > 0  # the case where a merge on the uuid alone would mix the two up


def test_a_wrong_token_fails_only_that_tenant(fleet: Fleet):
    second = fleet.second_load
    assert second.returncode == 1
    errors = [line for line in second.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1 and errors[0].startswith("posture load trend t-globex: error:")
    assert "401" in errors[0] or "rejected" in errors[0].lower()
    # "loaded keeper k-acme in 0.4 s: ..." for every other tenant
    loaded = {line.split()[2] for line in second.stdout.splitlines() if line.startswith("loaded")}
    assert loaded == set(_TENANTS) - {"t-globex"}
    # The other tenants took their second day: two Keeper snapshots each.
    days = fleet.published(
        "select tenant, count(distinct snapshot_date) from keeper_rmd.enterprise_stat group by 1"
    )
    assert sorted(days) == [("k-acme", 2), ("k-globex", 2)]


def test_each_tenant_keeps_its_own_incremental_state(fleet: Fleet):
    for dataset, prefix in (
        ("keeper_rmd", "k"),
        ("trend_audit", "t"),
        ("onepassword_events", "op"),
    ):
        names = fleet.published(f"select distinct pipeline_name from {dataset}._dlt_pipeline_state")
        assert sorted(n for (n,) in names) == [
            f"{dataset}__{prefix}-acme",
            f"{dataset}__{prefix}-globex",
        ]


def test_the_organisation_mart_sums_its_tenants(fleet: Fleet):
    organisations = fleet.published(
        "select source, tenant, organisation from marts.fct_daily_posture group by all order by 2"
    )
    assert {(t, o) for _, t, o in organisations} == {(t, t.split("-")[1]) for t in _TENANTS}
    mismatches = fleet.published(
        """
        with tenant_sums as (
            select organisation, metric_date, sum(total_users) as total_users,
                sum(users_logged_recent) as users_logged_recent,
                sum(signin_attempts) as signin_attempts, sum(signin_failures) as signin_failures,
                sum(trend_events) as trend_events, count(*) as tenants
            from marts.fct_daily_posture group by all
        )
        select * from tenant_sums
        full join marts.fct_org_daily_posture as org using (organisation, metric_date)
        where tenant_sums.tenants is distinct from
                org.keeper_tenants + org.trend_tenants + org.onepassword_tenants
            or tenant_sums.total_users is distinct from org.total_users
            or tenant_sums.signin_failures is distinct from org.signin_failures
            or tenant_sums.trend_events is distinct from org.trend_events
            or abs(org.login_coverage - tenant_sums.users_logged_recent / tenant_sums.total_users)
                > 1e-12
            or abs(org.signin_failure_rate
                   - tenant_sums.signin_failures / tenant_sums.signin_attempts) > 1e-12
        """
    )
    assert mismatches == []
    latest = fleet.published(
        "select organisation, keeper_tenants, trend_tenants, onepassword_tenants, is_partial_day "
        "from marts.fct_org_daily_posture where metric_date = "
        "(select max(metric_date) from marts.fct_org_daily_posture) order by 1"
    )
    # t-globex failed its second load: its last day is a day earlier, so globex's last two days
    # are partial (acme's only its last).
    assert latest == [("acme", 1, 1, 1, True), ("globex", 1, 0, 1, True)]
    partial = fleet.published(
        "select organisation, count(*) from marts.fct_org_daily_posture where is_partial_day "
        "group by 1 order by 1"
    )
    assert partial == [("acme", 1), ("globex", 2)]


def test_every_mart_column_has_a_type_bi_drivers_read(fleet: Fleet):
    columns = fleet.published(
        "select table_name, column_name, data_type from information_schema.columns "
        "where table_schema = 'marts'"
    )
    assert {"fct_org_daily_posture", "fct_daily_posture"} <= {t for t, _, _ in columns}
    assert [c for c in columns if c[2] not in BI_TYPES] == []


def test_no_token_reaches_a_file(fleet: Fleet):
    for token in fleet.tokens.values():
        assert files_containing(fleet.data_dir, token) == []


def test_a_benchmark_is_set_on_the_named_keeper_tenant_only(fleet: Fleet, monkeypatch, capsys):
    monkeypatch.setenv("POSTURE_CONFIG", str(fleet.data_dir.parent / "posture.toml"))
    for tenant in ("k-acme", "k-globex"):
        monkeypatch.setenv(_token_env(tenant), fleet.tokens[tenant])
    acme, globex = (fleet.servers[t].simulator for t in ("k-acme", "k-globex"))
    benchmark = "SB_CREATE_ALERTS"
    status = "IGNORED" if acme.benchmark(benchmark)["status"] != "IGNORED" else "RESOLVED"
    globex_before = globex.benchmark(benchmark)["status"]

    # Two Keeper tenants: which one is meant must be said.
    assert main(["benchmarks", "set", benchmark, status]) == 2
    assert main(["benchmarks", "set", benchmark, status, "--tenant", "k-nowhere"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2, lines
    assert "2 keeper tenants are configured (k-acme, k-globex): name one with --tenant" in lines[0]
    assert "k-nowhere: no keeper tenant of that name (configured: k-acme, k-globex)" in lines[1]
    assert acme.benchmark(benchmark)["status"] != status

    assert main(["benchmarks", "set", benchmark, status, "--tenant", "k-acme"]) == 0
    assert f"{benchmark}: {status}" in capsys.readouterr().out
    assert acme.benchmark(benchmark)["status"] == status
    assert globex.benchmark(benchmark)["status"] == globex_before


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("[organisations.acme\n", "not valid TOML", "line 1"),
        ("[organisations]\n", "organisations", "missing"),
        (
            '[[organisations.acme.keeper]]\ntenant = "k"\nbase_url = "https://k"\n'
            'api_token = "s3cret"\n',
            "organisations.acme.keeper[1].api_token",
            "tokens never go in this file",
        ),
        (
            '[[organisations.acme.keeper]]\ntenant = "k"\ntoken_env = "K"\n',
            "organisations.acme.keeper[1].base_url",
            "missing",
        ),
        (
            '[[organisations.acme.lastpass]]\ntenant = "k"\n',
            "organisations.acme.lastpass",
            "unknown vendor",
        ),
        (
            '[[organisations.acme.trend]]\ntenant = "t"\ntoken_env = "T"\n'
            '[[organisations.beta.trend]]\ntenant = "t"\ntoken_env = "U"\n',
            "organisations.beta.trend[1].tenant",
            "named twice (also in organisations.acme.trend[1])",
        ),
        (
            '[[organisations.acme.trend]]\ntenant = "a b"\ntoken_env = "T"\n',
            "organisations.acme.trend[1].tenant",
            "letters, digits",
        ),
    ],
)
def test_a_bad_configuration_file_is_one_line_naming_file_and_key(
    text: str, key: str, problem: str, tmp_path: Path, monkeypatch, capsys
):
    config = tmp_path / "posture.toml"
    config.write_text(text)
    monkeypatch.setenv("POSTURE_CONFIG", str(config))
    assert main(["--data-dir", str(tmp_path / "w"), "load", "all"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"posture load: error: {config}: ")
    assert key in line and problem in line
    assert "s3cret" not in line


def test_a_missing_configuration_file_is_named(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("POSTURE_CONFIG", str(tmp_path / "nowhere.toml"))
    assert main(["--data-dir", str(tmp_path / "w"), "load", "keeper"]) == 2
    err = capsys.readouterr().err
    assert "nowhere.toml: cannot be read" in err


def test_one_person_is_one_row_across_vendors_and_one_query_finds_their_events(fleet: Fleet):
    # k-acme's users and both 1Password accounts' people share the domain acme.example: some
    # people are in Keeper and 1Password, and in both organisations.
    both = fleet.published(
        "select person_key, person_email, organisations from marts.dim_people "
        "where keeper_tenants = 1 and onepassword_tenants >= 1 order by 2"
    )
    assert both and all(email.endswith("@acme.example") for _, email, _ in both)
    assert all("acme" in organisations.split(", ") for *_, organisations in both)
    key, email, _ = both[0]
    keeper_users = fleet.published(
        "select count(*) from keeper_rmd.enterprise_stat_details "
        "where tenant = 'k-acme' and lower(enterprise_user_id) = ?",
        (email,),
    )
    assert keeper_users[0][0] > 0
    events = fleet.published(
        "select distinct source, tenant from marts.fct_security_events "
        "where person_key = ? and person_email = ?",
        (key, email),
    )
    assert ("onepassword", "op-acme") in events
    assert set(events) <= {("onepassword", "op-acme"), ("onepassword", "op-globex")}
    # Trend principals are matched through the user events that carry their e-mail.
    (trend_people,) = fleet.published(
        "select count(*) from marts.fct_security_events e join marts.dim_people p "
        "using (person_key) where e.source = 'trend' and p.trend_tenants = 1"
    )[0]
    assert trend_people > 0


def test_dagster_loads_every_tenant_and_fails_naming_the_one_that_failed(
    tmp_path: Path, monkeypatch, location
):
    import dagster as dg
    from dagster_dlt import DagsterDltResource

    from assets.dlt import build_dlt_assets
    from pipelines.registry import SOURCES

    token = f"kt-{secrets.token_hex(8)}"
    good = KeeperRmdSimulator(users=12, seed=3, tokens=(token,))
    bad = KeeperRmdSimulator(users=7, seed=4, tokens=("another-token",))
    with SimulatorServer(good) as good_server, SimulatorServer(bad) as bad_server:
        config = tmp_path / "posture.toml"
        config.write_text(
            f'[[organisations.acme.keeper]]\ntenant = "k-good"\nbase_url = "{good_server.url}"\n'
            'token_env = "TEST_KEEPER_TOKEN"\n'
            f'[[organisations.acme.keeper]]\ntenant = "k-bad"\nbase_url = "{bad_server.url}"\n'
            'token_env = "TEST_KEEPER_TOKEN"\n'
        )
        monkeypatch.setenv("POSTURE_CONFIG", str(config))
        monkeypatch.setenv("TEST_KEEPER_TOKEN", token)
        result = dg.materialize(
            [build_dlt_assets(SOURCES["keeper"], location)],
            resources={"dlt": DagsterDltResource()},
            instance=dg.DagsterInstance.ephemeral(),
            raise_on_error=False,
        )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "1 of 2 tenants failed to load: keeper k-bad" in str(failure.event_specific_data)
    materialised = result.asset_materializations_for_node("keeper_rmd")
    assert len(materialised) == 5  # each table once
    assert {m.metadata["tenants"].text for m in materialised} == {"keeper k-good"}
    with duckdb.connect(str(location.working_db), read_only=True) as con:
        rows = con.execute(
            "select tenant, count(*) from keeper_rmd.enterprise_stat_details group by 1"
        ).fetchall()
    assert rows == [("k-good", good.user_count())]
    assert not any(token in str(event) for event in result.all_events)
