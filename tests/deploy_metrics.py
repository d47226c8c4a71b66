"""The metric names the deploy files use, and the names the service exports.

The alert rules (``deploy/prometheus/alerts.yml``) and the Grafana dashboard
(``deploy/grafana/service.json``) name metrics in PromQL. ``deploy_metric_names``
extracts every name they read; ``EXPORTED`` is what the service exports, family by
family, and ``sample_names`` turns a family into the names a scrape shows (a counter
``x`` is scraped as ``x_total``, a histogram as ``x_bucket``, ``x_sum`` and
``x_count``). The unit test checks the deploy files against ``EXPORTED`` (and
``EXPORTED`` against the code's registry); the end-to-end test checks them against
real scrapes of an API and a job worker.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import yaml

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERTS_TEST = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "service.json"

Kind = Literal["counter", "gauge", "histogram"]

# Every metric family the service exports (prometheus_client family names: counters without _total).
EXPORTED: dict[str, Kind] = {
    # litestar's PrometheusMiddleware (app_name="taskmarket", by route template)
    "litestar_requests": "counter",
    "litestar_request_duration_seconds": "histogram",
    "litestar_requests_in_progress": "gauge",
    # HTTP responses the middleware does not see or tell apart
    "taskmarket_http_unauthorized_responses": "counter",
    "taskmarket_registration_attempts": "counter",
    "taskmarket_registration_failures": "counter",
    # WebSockets
    "taskmarket_ws_connections_active": "gauge",
    "taskmarket_ws_connections_opened": "counter",
    "taskmarket_ws_messages_received": "counter",
    "taskmarket_ws_messages_sent": "counter",
    "taskmarket_ws_clients_dropped": "counter",
    "taskmarket_ws_fanout_publish_failures": "counter",
    "taskmarket_ws_fanout_resubscriptions": "counter",
    # database
    "taskmarket_db_pool_size": "gauge",
    "taskmarket_db_pool_checked_out": "gauge",
    "taskmarket_db_pool_overflow": "gauge",
    "taskmarket_db_pool_connections": "gauge",
    "taskmarket_db_connection_errors": "counter",
    "taskmarket_db_query_duration_seconds": "histogram",
    # event loop and process (every kind of process)
    "taskmarket_event_loops_created": "gauge",
    "taskmarket_event_loop_lag_seconds": "histogram",
    "taskmarket_event_loop_lag_last_seconds": "gauge",
    "taskmarket_event_loop_errors": "counter",
    "taskmarket_process_resident_memory_bytes": "gauge",
    "taskmarket_process_open_fds": "gauge",
    # readiness, as a gauge (API)
    "taskmarket_component_up": "gauge",
    # jobs: workers (and the API in in-process mode)
    "taskmarket_job_runs": "counter",
    "taskmarket_job_duration_seconds": "histogram",
    "taskmarket_job_in_progress": "gauge",
    "taskmarket_job_last_success_timestamp_seconds": "gauge",
    # jobs: the scheduler
    "taskmarket_job_enqueued": "counter",
    "taskmarket_job_enqueue_failures": "counter",
    "taskmarket_job_ticks_claimed_elsewhere": "counter",
}

# Families a job worker exports (the scrape the end-to-end test reads them from).
WORKER_FAMILIES = frozenset(
    {
        "taskmarket_job_runs",
        "taskmarket_job_duration_seconds",
        "taskmarket_job_in_progress",
        "taskmarket_job_last_success_timestamp_seconds",
    }
)
# Families only a job scheduler exports.
SCHEDULER_FAMILIES = frozenset(
    {"taskmarket_job_enqueued", "taskmarket_job_enqueue_failures", "taskmarket_job_ticks_claimed_elsewhere"}
)
# Series Prometheus makes itself for every target.
PROMETHEUS_SERIES = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})

_SUFFIXES: dict[Kind, tuple[str, ...]] = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
}


def sample_names(family: str, kind: Kind) -> set[str]:
    """The names under which a scrape shows ``family``."""
    return {family + suffix for suffix in _SUFFIXES[kind]}


def exported_sample_names(families: Iterable[str] = EXPORTED) -> dict[str, str]:
    """Scraped name -> family, for every exported family."""
    return {name: family for family in families for name in sample_names(family, EXPORTED[family])}


# --- PromQL ------------------------------------------------------------------------------------------

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'" + r"|`[^`]*`")
_GRAFANA_VARIABLES = re.compile(r"\$\{[^}]*\}|\$__\w+|\$\w+|\[\[\w+\]\]")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_OFFSET = re.compile(r"\boffset\s+-?\w+|@\s*(?:start\(\)|end\(\)|[0-9.]+)")
_IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "by", "without", "on", "ignoring", "group_left", "group_right", "offset"}
    | {"inf", "nan", "Inf", "NaN"}
)


def metric_names(expression: str) -> set[str]:
    """The metric names an expression reads: not its functions, keywords, labels, strings or numbers.

    Grafana's template variables (``$instance``, ``$__rate_interval``, ``${datasource}``) are
    ignored wherever they appear.
    """
    text = _STRINGS.sub(" ", expression)
    text = _GRAFANA_VARIABLES.sub(" ", text)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _LABEL_LISTS.sub(" ", text)
    text = _OFFSET.sub(" ", text)
    names: set[str] = set()
    for match in _IDENTIFIER.finditer(text):
        name, call = match.group(1), match.group(2)
        if call is None and name not in _KEYWORDS:
            names.add(name)
    return names


# --- the deploy files --------------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules(path: Path = ALERTS) -> list[dict[str, Any]]:
    """Every rule (alerting and recording) of a rule file."""
    return [rule for group in load_yaml(path)["groups"] for rule in group["rules"]]


def alerting_rules(path: Path = ALERTS) -> list[dict[str, Any]]:
    return [rule for rule in rules(path) if "alert" in rule]


def recorded_names(path: Path = ALERTS) -> set[str]:
    return {rule["record"] for rule in rules(path) if "record" in rule}


def dashboard_panels(path: Path = DASHBOARD) -> Iterator[dict[str, Any]]:
    """Every panel, also those nested in collapsed rows."""
    for panel in json.loads(path.read_text(encoding="utf-8"))["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_expressions(path: Path = DASHBOARD) -> list[str]:
    return [target["expr"] for panel in dashboard_panels(path) for target in panel.get("targets", [])]


def rule_expressions(path: Path = ALERTS) -> list[str]:
    return [rule["expr"] for rule in rules(path)]


def deploy_metric_names() -> set[str]:
    """Every scraped metric name the alert rules and the dashboard read (recorded series and ``up`` left out)."""
    expressions = [*rule_expressions(), *dashboard_expressions()]
    names = {name for expression in expressions for name in metric_names(expression)}
    return names - recorded_names() - PROMETHEUS_SERIES
