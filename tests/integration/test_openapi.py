"""The OpenAPI document is a contract: the frontend's TypeScript client is generated from it."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from openapi_spec_validator import validate

from app.openapi_export import openapi_document, render
from tests.support import BIN, ROOT, make_settings, running_app

CONTRACT_OPERATIONS = {
    "registerUser",
    "login",
    "refreshToken",
    "refreshTokenLegacy",
    "logout",
    "getMyProfile",
    "updateMyProfile",
    "changeMyPassword",
    "getUser",
    "changeUserRole",
    "getLiveness",
    "getReadiness",
    "getMyPoints",
    "listMyPointTransactions",
    "grantPoints",
    "createCouponTemplate",
    "listCouponTemplates",
    "updateCouponTemplate",
    "closeCouponTemplate",
    "listAvailableCoupons",
    "claimCoupon",
    "listMyCoupons",
    "redeemCoupon",
    "createInvitation",
    "listMyInvitations",
    "revokeInvitation",
    "createTask",
    "listTasks",
    "getTask",
    "takeTask",
    "completeTask",
    "cancelTask",
    "consentToTaskCancellation",
    "listMyNotifications",
    "markNotificationRead",
    "markAllNotificationsRead",
    "createMyExpertProfile",
    "updateMyExpertProfile",
    "listExperts",
    "getExpert",
    "openSupportChat",
    "listMySupportChats",
    "getSupportChat",
    "sendSupportMessage",
    "listSupportMessages",
    "markSupportChatRead",
    "closeSupportChat",
    "getMyAgentStatus",
    "setMyAgentStatus",
    "listMyAgentChats",
    "updateSupportAgent",
    "listSupportChats",
    "createActivity",
    "listActivities",
    "getActivity",
    "joinActivity",
    "leaveActivity",
    "cancelActivity",
    "getUserStats",
}
PUBLIC_OPERATIONS = {
    "registerUser",
    "login",
    "refreshToken",
    "refreshTokenLegacy",
    "logout",
    "getUser",
    "listExperts",
    "getExpert",
    "getLiveness",
    "getReadiness",
}
HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def test_committed_openapi_document_is_current() -> None:
    committed = (ROOT / "openapi.json").read_text(encoding="utf-8")
    assert committed == render(openapi_document()), "openapi.json is stale: run `make openapi` and commit it"


def test_document_is_valid_openapi() -> None:
    validate(openapi_document())


def test_every_operation_has_a_unique_camel_case_id_and_a_tag() -> None:
    operations = _operations(openapi_document())
    ids = [operation["operationId"] for _, _, operation in operations]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z][a-zA-Z0-9]*", operation_id) for operation_id in ids), ids
    assert all(operation.get("tags") for _, _, operation in operations)
    assert set(ids) == CONTRACT_OPERATIONS


def test_public_operations_are_marked_public_and_the_rest_need_the_bearer_token() -> None:
    document = openapi_document()
    assert document["security"] == [{"BearerToken": []}]
    assert document["components"]["securitySchemes"]["BearerToken"]["scheme"] == "Bearer"
    for _, _, operation in _operations(document):
        if operation["operationId"] in PUBLIC_OPERATIONS:
            assert operation["security"] == [{}], operation["operationId"]
        else:
            assert "security" not in operation, operation["operationId"]
            assert "401" in operation["responses"], operation["operationId"]


def test_every_error_response_uses_the_problem_details_schema() -> None:
    for _, _, operation in _operations(openapi_document()):
        for status, response in operation["responses"].items():
            if int(status) < 400 or (operation["operationId"] == "getReadiness" and status == "503"):
                continue
            schema = response["content"]["application/problem+json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ProblemDetail"}, (operation["operationId"], status)
        assert "500" in operation["responses"]


async def test_served_document_matches_the_committed_one(sqlite_url: str) -> None:
    async with running_app(make_settings(sqlite_url)) as (_, client):
        served = await client.get("/schema/openapi.json")
        assert served.status_code == 200
        assert served.json() == json.loads((ROOT / "openapi.json").read_text(encoding="utf-8"))
        assert (await client.get("/schema")).status_code == 200


def test_a_real_client_generator_accepts_every_operation(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("post_hooks: []\n", encoding="utf-8")
    result = subprocess.run(
        [
            str(BIN / "openapi-python-client"),
            "generate",
            "--path",
            str(ROOT / "openapi.json"),
            "--output-path",
            str(tmp_path / "client"),
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Warning" not in output, output
    generated = {path.stem for path in (tmp_path / "client").rglob("*.py")}
    assert {"register_user", "login", "refresh_token", "get_my_profile", "change_user_role"} <= generated
