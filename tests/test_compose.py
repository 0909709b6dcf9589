"""The compose file: every queue has a consumer, and media has its own workers; the
monitoring profile (Prometheus and Grafana) is off by default, scrapes the web service
with the metrics token, and its dashboard reads only what GET /metrics exports."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobs.queues import ALL_QUEUES, Queue

pytestmark = pytest.mark.services_free

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "jobsite.json"

MONITORING = {"prometheus", "grafana"}

# What GET /metrics exports (jobs/metrics.py), by base name: the metrics module's own test
# checks that the endpoint serves each of them. The dashboard may read no other.
EXPORTED_METRICS = (
    "jobsite_jobs_created_total",
    "jobsite_jobs_started_total",
    "jobsite_jobs_finished_total",
    "jobsite_jobs_retried_total",
    "jobsite_jobs_restarted_total",
    "jobsite_job_duration_seconds",
    "jobsite_jobs",
    "jobsite_queue_depth",
    "jobsite_queue_pending_jobs",
    "jobsite_queue_oldest_pending_age_seconds",
    "jobsite_workers_online",
    "jobsite_worker_running_jobs",
    "jobsite_webhook_attempts_total",
    "jobsite_pipeline_pages_total",
    "jobsite_pipeline_media_seconds_total",
    "jobsite_broker_up",
    "jobsite_metrics_backlog_events",
)
# Histograms among them: their series are the base name plus one of these.
HISTOGRAMS = {"jobsite_job_duration_seconds"}
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")

# The dashboard JSON's schemaVersion for the Grafana minor version docker-compose.yml pins
# (what that version writes when it saves a dashboard): bump both together.
GRAFANA_SCHEMA_VERSION = {"12.4": 42}


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def services() -> dict[str, Any]:
    return compose()["services"]


def worker_queues() -> dict[str, set[str]]:
    found = {}
    for name, service in services().items():
        argv = shlex.split(str(service.get("command", "")))
        if argv[:4] == ["celery", "-A", "jobsite", "worker"]:
            found[name] = set(argv[argv.index("-Q") + 1].split(","))
    return found


def test_every_queue_is_consumed_and_media_only_by_its_own_workers():
    queues = worker_queues()
    assert set().union(*queues.values()) == set(ALL_QUEUES)
    assert queues["worker-media"] == {Queue.MEDIA}
    assert all(Queue.MEDIA not in q for name, q in queues.items() if name != "worker-media")


# --- Monitoring: docker-compose.yml ---------------------------------------------------


def with_defaults(text: str) -> str:
    """``text`` as Compose reads it with no variable set: ``${VAR:-default}`` is the
    default, ``${VAR}`` is empty."""
    return re.sub(r"\$\{\w+(?::?-([^}]*))?\}", lambda m: m.group(1) or "", text)


def volume_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source (a named volume, or a path relative to the compose file)."""
    mounts = {}
    for spec in service.get("volumes", []):
        source, target = spec.split(":")[:2]
        mounts[target] = source
    return mounts


def secret_files(service: dict[str, Any]) -> dict[str, str]:
    """Secret name -> the file it is in, inside the container."""
    files = {}
    for secret in service.get("secrets", []):
        if isinstance(secret, str):
            secret = {"source": secret}
        target = secret.get("target", secret["source"])
        files[secret["source"]] = target if target.startswith("/") else f"/run/secrets/{target}"
    return files


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, str):
        yield value


def test_monitoring_services_are_a_profile_that_is_off_by_default():
    profiled = {name for name, service in services().items() if "profiles" in service}
    assert profiled == MONITORING  # a plain `docker compose up` starts every other service
    for name in MONITORING:
        assert services()[name]["profiles"] == ["monitoring"]


def test_monitoring_images_are_pinned_to_a_version():
    images = {name: services()[name]["image"] for name in MONITORING}
    assert images["prometheus"].split(":")[0] == "prom/prometheus"
    assert images["grafana"].split(":")[0] == "grafana/grafana"
    for image in images.values():
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", image), image


def test_monitoring_ports_are_on_loopback_unless_told_otherwise():
    container_ports = {"prometheus": "9090", "grafana": "3000"}
    for name, port in container_ports.items():
        (published,) = services()[name]["ports"]
        assert "${" in published  # the address and port can be moved
        host, _, container = with_defaults(published).rpartition(":")
        assert container == port
        assert host == f"127.0.0.1:{port}"


def test_monitoring_data_is_in_named_volumes():
    data_dirs = {"prometheus": "/prometheus", "grafana": "/var/lib/grafana"}
    for name, path in data_dirs.items():
        volume = volume_mounts(services()[name])[path]
        assert volume in compose()["volumes"]
    argv = services()["prometheus"]["command"]
    assert "--storage.tsdb.path=/prometheus" in argv


def test_monitoring_needs_no_variable_unless_its_profile_is_used():
    """Compose interpolates the whole file for every command, profile or not: a
    ``${VAR:?message}`` here would stop a plain `docker compose up` without VAR. The token
    and the password come as secrets read from the environment, which Compose reads only
    when it creates the container that uses them."""
    used = set()
    for name in MONITORING:
        assert not [s for s in strings(services()[name]) if ":?" in s]
        used |= set(secret_files(services()[name]))
    secrets = compose()["secrets"]
    assert {secret: secrets[secret]["environment"] for secret in used} == {
        "metrics-token": "JOBSITE_METRICS_TOKEN",
        "grafana-admin-password": "GRAFANA_ADMIN_PASSWORD",
    }
    grafana = services()["grafana"]
    assert "GF_SECURITY_ADMIN_PASSWORD" not in grafana["environment"]
    assert (
        grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"]
        == secret_files(grafana)["grafana-admin-password"]
    )
    for name in MONITORING:  # the images run as other users than the file's owner (root)
        assert all(s.get("mode") == 0o444 for s in services()[name]["secrets"])


def test_app_services_get_the_metrics_token_and_log_format():
    for variable in ("JOBSITE_METRICS_TOKEN", "JOBSITE_LOG_FORMAT"):
        assert compose()["x-app-env"][variable] is None  # passed on from the shell or .env
        assert variable in services()["web"]["environment"]


# --- Monitoring: Prometheus -----------------------------------------------------------


def web_port() -> int:
    web = services()["web"]
    argv = shlex.split(web["command"])
    port = argv[argv.index("--port") + 1]
    assert [str(p) for p in web["expose"]] == [port]
    return int(port)


def test_prometheus_reads_its_config_from_the_deploy_folder():
    prometheus = services()["prometheus"]
    (flag,) = [a for a in prometheus["command"] if a.startswith("--config.file=")]
    path = flag.removeprefix("--config.file=")
    assert volume_mounts(prometheus)[path] == "./deploy/prometheus/prometheus.yml"


def test_prometheus_scrapes_the_web_service_metrics_with_the_bearer_token():
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (job,) = config["scrape_configs"]
    (static,) = job["static_configs"]
    assert static["targets"] == [f"web:{web_port()}"]
    assert job.get("scheme", "http") == "http"
    assert job["metrics_path"] == "/metrics"
    assert job.get("scrape_interval", config["global"]["scrape_interval"]) == "15s"
    auth = job["authorization"]
    assert auth.get("type", "Bearer") == "Bearer"
    assert set(auth) <= {"type", "credentials_file"}  # never the token itself in the file
    assert auth["credentials_file"] == secret_files(services()["prometheus"])["metrics-token"]
    for legacy in ("bearer_token", "bearer_token_file", "basic_auth"):
        assert legacy not in job


def test_the_web_service_accepts_the_host_prometheus_sends():
    """Django answers 400 to a Host outside ALLOWED_HOSTS: the scrape's is `web`."""
    allowed = with_defaults(services()["web"]["environment"]["ALLOWED_HOSTS"]).split(",")
    assert "web" in allowed
    assert {"localhost", "127.0.0.1"} <= set(allowed)


# --- Monitoring: Grafana --------------------------------------------------------------


def provisioning(kind: str) -> dict[str, Any]:
    (path,) = (GRAFANA / "provisioning" / kind).glob("*.yml")
    return yaml.safe_load(path.read_text())


def datasource() -> dict[str, Any]:
    (source,) = provisioning("datasources")["datasources"]
    return source


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside (collapsed) rows included."""
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def test_grafana_provisioning_and_dashboards_are_mounted():
    mounts = volume_mounts(services()["grafana"])
    for kind in ("datasources", "dashboards"):
        target = f"/etc/grafana/provisioning/{kind}"
        assert mounts[target] == f"./deploy/grafana/provisioning/{kind}"
    (provider,) = provisioning("dashboards")["providers"]
    assert provider["type"] == "file"
    assert mounts[provider["options"]["path"]] == "./deploy/grafana/dashboards"


def test_the_datasource_is_the_prometheus_service():
    source = datasource()
    assert source["type"] == "prometheus"
    (published,) = services()["prometheus"]["ports"]
    assert source["url"] == f"http://prometheus:{published.rpartition(':')[2]}"
    assert source["uid"]


def test_every_panel_queries_the_provisioned_datasource_by_its_uid():
    expected = {"type": "prometheus", "uid": datasource()["uid"]}
    for panel in all_panels(dashboard()["panels"]):
        if panel["type"] == "row":
            assert not panel.get("targets")
            continue
        assert panel["datasource"] == expected, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == expected, panel["title"]


def test_every_panel_has_a_title_and_its_own_id():
    panels = list(all_panels(dashboard()["panels"]))
    assert all(isinstance(p.get("title"), str) and p["title"].strip() for p in panels)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))


def test_the_dashboard_is_in_the_pinned_grafana_version_schema():
    board = dashboard()
    version = services()["grafana"]["image"].rpartition(":")[2]
    minor = ".".join(version.split(".")[:2])
    assert board["schemaVersion"] == GRAFANA_SCHEMA_VERSION[minor]
    assert board["uid"]
    assert board["title"]


# --- Monitoring: the dashboard's PromQL -----------------------------------------------

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
# A name not inside another word, a $variable or a number, and not called (a function).
_NAMES = re.compile(r"(?<![\w$.:])[A-Za-z_:][\w:]*(?![\w:])(?!\s*\()")
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left"}
_KEYWORDS |= {"group_right", "offset", "bool", "inf", "nan", "atan2"}


def metric_names(expr: str) -> set[str]:
    """The metrics a PromQL expression reads, by base name (a histogram's series as the
    histogram)."""
    for pattern in (_STRINGS, _MATCHERS, _RANGES, _GROUPING):
        expr = pattern.sub(" ", expr)
    names = set()
    for name in _NAMES.findall(expr):
        if name.lower() in _KEYWORDS:
            continue
        for suffix in HISTOGRAM_SERIES:
            if name.endswith(suffix) and name.removesuffix(suffix) in HISTOGRAMS:
                name = name.removesuffix(suffix)
        names.add(name)
    return names


def test_metric_names_reads_promql():
    expr = (
        "histogram_quantile(0.95, sum by (type, le) (rate(jobsite_job_duration_seconds_bucket"
        '{status="failed", type=~"a|b"}[$__rate_interval])))'
    )
    assert metric_names(expr) == {"jobsite_job_duration_seconds"}
    assert metric_names("sum(rate(a_total[5m] offset 1h)) / on (type) group_left b > bool 0") == {
        "a_total",
        "b",
    }
    assert metric_names("up == 0 or absent(jobsite_broker_up)") == {"up", "jobsite_broker_up"}
    assert metric_names("max_over_time(x[1h:5m]) * 60 + 1e3") == {"x"}


def test_the_dashboard_reads_only_exported_metrics_and_shows_every_one():
    shown = set()
    queries = [
        (panel["title"], target["expr"])
        for panel in all_panels(dashboard()["panels"])
        for target in panel.get("targets", [])
    ]
    for title, expr in queries:
        names = metric_names(expr)
        assert names, (title, expr)
        assert names <= set(EXPORTED_METRICS), (title, names - set(EXPORTED_METRICS))
        shown |= names
    assert shown == set(EXPORTED_METRICS)
