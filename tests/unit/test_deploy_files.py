"""The Prometheus rules and the Grafana dashboard: well formed, tested, and reading metrics the service exports.

promtool itself (``check rules``, ``test rules``, ``check config``) runs in ``make alerts``; here
promtool only checks that the dashboard's queries parse. Under CI=true a missing promtool fails.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import app.composition
import app.main  # noqa: F401 - with app.composition, registers every metric of the service
from app.domain.jobs.catalogue import CATALOGUE
from app.domain.jobs.model import Every
from tests.deploy_metrics import (
    ALERTS,
    ALERTS_TEST,
    DASHBOARD,
    EXPORTED,
    ROOT,
    alerting_rules,
    dashboard_expressions,
    dashboard_panels,
    deploy_metric_names,
    exported_sample_names,
    load_yaml,
    metric_names,
    rules,
)
from tests.support import IN_CI

RUNBOOK = ROOT / "docs" / "runbook.md"

# SPEC section 5: one alert per threshold, with the table's severity.
SPEC_ALERTS = {
    "TaskmarketEventLoopErrors": "warning",
    "TaskmarketDatabaseConnectionErrors": "warning",
    "TaskmarketUnauthorizedShareHigh": "info",
    "TaskmarketRegistrationFailureRateHigh": "warning",
    "TaskmarketJobSlow": "warning",
    "TaskmarketDatabasePoolSaturated": "warning",
    "TaskmarketWebSocketConnectionsHigh": "warning",
    "TaskmarketProcessMemoryHigh": "warning",
    "TaskmarketDatabaseConnectionsHigh": "warning",
    "TaskmarketMultipleEventLoops": "error",
}
OTHER_ALERTS = {
    "TaskmarketJobNotSucceeding",
    "TaskmarketJobHeartbeatMissing",
    "TaskmarketTargetDown",
    "TaskmarketNotReady",
}
SEVERITIES = {"info", "warning", "error", "critical"}
DASHBOARD_SECTIONS = {"Component health", "HTTP", "WebSockets", "Jobs", "Database", "Event loop and process"}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        message = "promtool is not installed (apt-get install -y prometheus)"
        if IN_CI:
            pytest.fail(message + "; CI=true needs it")
        pytest.skip(message)
    return path


# --- extracting metric names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("up == 0", {"up"}),
        ('sum by (job, le) (rate(a_bucket{le="30.0", x=~"y|z"}[5m])) > 0', {"a_bucket"}),
        ("time() - max by (j) (max_over_time(b[3d])) > on (j) 3 * c:recorded", {"b", "c:recorded"}),
        ('label_replace(vector(30), "exported_job", "name", "", "") or d', {"d"}),
        ("e / ignoring(pid) group_left(instance) f offset 5m > 2147483648 and g @ end() > 1e9", {"e", "f", "g"}),
        ('rate(h_total{instance=~"$instance"}[$__rate_interval]) / ${other}', {"h_total"}),
        ("(sum(i) or vector(0)) + count without (pid) (j) > bool 1 unless k", {"i", "j", "k"}),
    ],
)
def test_metric_names_are_what_an_expression_reads(expression: str, expected: set[str]) -> None:
    assert metric_names(expression) == expected


def test_every_metric_the_rules_and_the_dashboard_read_is_exported() -> None:
    exported = exported_sample_names()
    unknown = sorted(name for name in deploy_metric_names() if name not in exported)
    assert not unknown, f"not exported under these names (counter: x_total, histogram: x_bucket/_sum/_count): {unknown}"


def test_the_exported_families_are_the_ones_the_code_registers() -> None:
    kinds = {metric.name: metric.type for metric in REGISTRY.collect()}
    ours = {family: kind for family, kind in EXPORTED.items() if family.startswith("taskmarket_")}
    wrong = {family: (kind, kinds.get(family)) for family, kind in ours.items() if kinds.get(family) != kind}
    assert not wrong, f"family: (expected kind, registered kind): {wrong}"


# --- alert rules -------------------------------------------------------------------------------------


def test_every_spec_threshold_has_its_alert_with_the_spec_severity() -> None:
    severities = {rule["alert"]: rule["labels"]["severity"] for rule in alerting_rules()}
    assert {name: severities.get(name) for name in SPEC_ALERTS} == SPEC_ALERTS
    assert set(severities) == set(SPEC_ALERTS) | OTHER_ALERTS
    assert set(severities.values()) <= SEVERITIES


def test_every_alert_explains_itself_and_links_its_runbook_section() -> None:
    headings = re.findall(r"^#+ (.+)$", RUNBOOK.read_text(encoding="utf-8"), flags=re.MULTILINE)
    anchors = {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}
    for rule in alerting_rules():
        annotations = rule["annotations"]
        assert annotations["summary"].strip(), rule["alert"]
        assert annotations["description"].strip(), rule["alert"]
        assert annotations["runbook_url"] == f"docs/runbook.md#{rule['alert'].lower()}"
        assert rule["alert"].lower() in anchors, f"docs/runbook.md has no section {rule['alert']}"


def _alert_tests() -> list[dict[str, Any]]:
    return [case for test in load_yaml(ALERTS_TEST)["tests"] for case in test.get("alert_rule_test", [])]


def test_every_alert_has_a_test_where_it_fires_and_one_where_it_does_not() -> None:
    cases = _alert_tests()
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    silent = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    names = {rule["alert"] for rule in alerting_rules()}
    assert names - firing == set(), "alerts never tested firing"
    assert names - silent == set(), "alerts never tested silent"
    assert {case["alertname"] for case in cases} <= names


def test_the_job_periods_of_the_rules_are_the_catalogues_cadences() -> None:
    (period_rule,) = [rule for rule in rules() if rule.get("record") == "taskmarket:job_period_seconds"]
    periods = {
        name: int(seconds)
        for seconds, name in re.findall(r'vector\((\d+)\), "exported_job", "([\w-]+)"', period_rule["expr"])
    }
    expected = {job.name: job.cadence.seconds if isinstance(job.cadence, Every) else 86400 for job in CATALOGUE}
    assert periods == expected


def test_prometheus_scrapes_the_jobs_the_rules_name() -> None:
    config = load_yaml(ALERTS.parent / "prometheus.yml")
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {scrape["job_name"] for scrape in config["scrape_configs"]}
    assert {"taskmarket-api", "taskmarket-worker", "taskmarket-scheduler"} <= jobs
    target_down = next(rule for rule in alerting_rules() if rule["alert"] == "TaskmarketTargetDown")
    assert 'job=~"taskmarket-(api|worker|scheduler)"' in target_down["expr"]


# --- Grafana -----------------------------------------------------------------------------------------


def test_the_dashboard_has_every_section_on_the_datasource_variable() -> None:
    dashboard = yaml.safe_load(DASHBOARD.read_text(encoding="utf-8"))  # JSON is YAML
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = list(dashboard_panels())
    assert {panel["title"] for panel in panels if panel["type"] == "row"} == DASHBOARD_SECTIONS
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_the_dashboard_queries_parse(tmp_path: Path) -> None:
    """promtool parses every query, Grafana's variables replaced by what Grafana would put there."""
    substitutions = {"$__rate_interval": "1m", "$__range": "1h", "$instance": ".*", "$job_name": ".*"}
    expressions = []
    for query in dashboard_expressions():
        expression = query
        for variable, value in substitutions.items():
            expression = expression.replace(variable, value)
        assert "$" not in expression, query
        expressions.append(expression)
    rule_file = tmp_path / "dashboard_rules.yml"
    recording = [{"record": f"dashboard:query{i}", "expr": expression} for i, expression in enumerate(expressions)]
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": recording}]}), encoding="utf-8")
    result = subprocess.run(
        [promtool(), "check", "rules", str(rule_file)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_provisions_the_dashboard_and_the_datasource() -> None:
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    (datasource,) = load_yaml(provisioning / "datasources" / "prometheus.yaml")["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    (provider,) = load_yaml(provisioning / "dashboards" / "taskmarket.yaml")["providers"]
    compose = load_yaml(ROOT / "deploy" / "compose.yaml")
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/service.json:{provider['options']['path']}/service.json:ro" in mounts
