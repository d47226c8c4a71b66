"""Settings come from the environment and are validated at startup (SPEC section 5)."""

from __future__ import annotations

import msgspec
import pytest

from app.config import (
    DEFAULT_DATABASE_URL,
    DEFAULT_JWT_SECRET,
    SETTINGS_DOC,
    Environment,
    Settings,
    SettingsError,
    load_settings,
)

OWN_SECRET = "a-production-secret-of-our-own-0123456789abcdef"
POSTGRES_URL = "postgresql+asyncpg://taskmarket:pw@db.internal/taskmarket"


def production(**extra: str) -> dict[str, str]:
    return {"ENVIRONMENT": "production", "JWT_SECRET": OWN_SECRET, "DATABASE_URL": POSTGRES_URL, **extra}


def test_defaults_load_from_an_empty_environment() -> None:
    settings = load_settings({})
    assert settings == Settings()
    assert settings.environment is Environment.DEVELOPMENT
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.jwt_secret == DEFAULT_JWT_SECRET
    assert settings.redis_url is None
    assert settings.json_logs is False


def test_every_setting_is_documented() -> None:
    assert {f.name for f in msgspec.structs.fields(Settings)} == set(SETTINGS_DOC)


def test_variables_are_read_by_their_upper_case_name_and_converted() -> None:
    settings = load_settings(
        {
            "ENVIRONMENT": " Test ",
            "DATABASE_POOL_SIZE": "25",
            "DATABASE_POOL_TIMEOUT_SECONDS": "0.5",
            "DATABASE_ECHO": "yes",
            "REDIS_URL": "redis://localhost:6379/0",
            "LOG_JSON": "off",
            "database_pool_size": "99",  # lower case is not the variable's name
        }
    )
    assert settings.environment is Environment.TEST
    assert settings.database_pool_size == 25
    assert settings.database_pool_timeout_seconds == 0.5
    assert settings.database_echo is True
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.log_json is False
    assert settings.json_logs is False


def test_empty_optional_variables_mean_unset() -> None:
    settings = load_settings({"REDIS_URL": "", "LOG_JSON": ""})
    assert settings.redis_url is None
    assert settings.log_json is None


def test_overrides_win_over_the_environment() -> None:
    settings = load_settings({"DATABASE_POOL_SIZE": "25"}, database_pool_size=3)
    assert settings.database_pool_size == 3


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_POOL_SIZE", "x"),
        ("DATABASE_POOL_SIZE", "2.5"),
        ("DATABASE_POOL_TIMEOUT_SECONDS", "soon"),
        ("DATABASE_POOL_TIMEOUT_SECONDS", "nan"),
        ("SHUTDOWN_STEP_TIMEOUT_SECONDS", "inf"),
        ("DATABASE_ECHO", "maybe"),
        ("DATABASE_ECHO", ""),
        ("LOG_JSON", "sometimes"),
        ("ENVIRONMENT", "staging"),
        ("DATABASE_URL", "mysql://localhost/taskmarket"),
        ("REDIS_URL", "http://localhost:6379"),
        ("LOG_LEVEL", "LOUD"),
        ("JWT_SECRET", "too-short"),
        ("DATABASE_POOL_SIZE", "0"),
        ("DATABASE_MAX_OVERFLOW", "-1"),
        ("LOOP_BRIDGE_TIMEOUT_SECONDS", "-1"),
        ("ARGON2_MEMORY_COST_KIB", "16"),
    ],
)
def test_malformed_variable_is_refused_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        load_settings({variable: value})


def test_settings_error_is_a_value_error() -> None:
    assert issubclass(SettingsError, ValueError)


def test_production_refuses_the_default_jwt_secret() -> None:
    env = production()
    del env["JWT_SECRET"]
    with pytest.raises(SettingsError, match="JWT_SECRET"):
        load_settings(env)
    with pytest.raises(SettingsError, match="JWT_SECRET"):
        load_settings(production(JWT_SECRET=DEFAULT_JWT_SECRET))


def test_production_refuses_sqlite_unless_allowed() -> None:
    with pytest.raises(SettingsError, match="ALLOW_SQLITE_IN_PRODUCTION"):
        load_settings(production(DATABASE_URL=DEFAULT_DATABASE_URL))
    settings = load_settings(production(DATABASE_URL=DEFAULT_DATABASE_URL, ALLOW_SQLITE_IN_PRODUCTION="true"))
    assert settings.is_sqlite
    assert settings.is_production


def test_production_refuses_test_routes() -> None:
    with pytest.raises(SettingsError, match="ENABLE_TEST_ROUTES"):
        load_settings(production(ENABLE_TEST_ROUTES="true"))


def test_development_allows_the_default_secret_sqlite_and_test_routes() -> None:
    settings = load_settings({"ENABLE_TEST_ROUTES": "1"})
    assert settings.enable_test_routes is True
    assert settings.is_sqlite


def test_proper_production_config_loads_with_json_logs() -> None:
    settings = load_settings(production())
    assert settings.is_production
    assert not settings.is_sqlite
    assert settings.jwt_secret == OWN_SECRET
    assert settings.json_logs is True


def test_json_logs_can_be_forced_either_way() -> None:
    assert load_settings(production(LOG_JSON="false")).json_logs is False
    assert load_settings({"LOG_JSON": "true"}).json_logs is True


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0.0])
def test_non_finite_or_non_positive_override_is_refused(value: float) -> None:
    with pytest.raises(SettingsError, match="SHUTDOWN_STEP_TIMEOUT_SECONDS"):
        load_settings({}, shutdown_step_timeout_seconds=value)


def test_gc_thresholds_are_three_positive_integers_or_empty_for_pythons_defaults() -> None:
    assert load_settings({}).collector_thresholds == (2000, 10, 100)
    assert load_settings({"GC_THRESHOLDS": " 2000, 20 ,30"}).collector_thresholds == (2000, 20, 30)
    assert load_settings({"GC_THRESHOLDS": ""}).collector_thresholds is None
    for bad in ("10000,50", "10000,50,100,1", "0,10,10", "-1,10,10", "a,b,c", "10000;50;100"):
        with pytest.raises(SettingsError, match="GC_THRESHOLDS"):
            load_settings({"GC_THRESHOLDS": bad})
