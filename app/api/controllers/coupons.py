from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.security.jwt import Token

from app.api.coupon_schemas import (
    AvailableCouponPage,
    AvailableCouponResponse,
    ClaimCouponRequest,
    CouponPage,
    CouponResponse,
    CouponTemplatePage,
    CouponTemplateResponse,
    CreateCouponTemplateRequest,
    RedemptionResponse,
    UpdateCouponTemplateRequest,
)
from app.api.errors import problem_responses
from app.api.security import requires_role
from app.domain.coupons.model import CouponFilter, CouponKind, CouponStatus, TemplateFilter, TemplateStatus
from app.domain.coupons.service import CouponService
from app.domain.shared.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from app.domain.users.model import Principal, Role, User

Limit = Annotated[int, QueryParameter(ge=1, le=MAX_PAGE_SIZE)]
Offset = Annotated[int, QueryParameter(ge=0, le=1_000_000)]
Kinds = Annotated[list[CouponKind] | None, QueryParameter(description="Only these kinds")]


class CouponsController(Controller):
    path = "/api/coupons"
    tags = ["coupons"]

    @get(
        "/available",
        operation_id="listAvailableCoupons",
        summary="Coupons open for claims now, those ending first first",
        responses=problem_responses(400, 401, 503),
    )
    async def available(
        self,
        request: Request[User, Token, Any],
        coupons: NamedDependency[CouponService],
        limit: Limit = DEFAULT_PAGE_SIZE,
        offset: Offset = 0,
        kind: Kinds = None,
    ) -> AvailableCouponPage:
        """Each item says how many of it the caller holds already and whether they may claim another."""
        items, total = await coupons.available(request.user.id, frozenset(kind or ()), limit, offset)
        return AvailableCouponPage(
            items=[AvailableCouponResponse.of(item) for item in items], total=total, limit=limit, offset=offset
        )

    @post(
        "/claim",
        operation_id="claimCoupon",
        summary="Claim a coupon of a template",
        status_code=201,
        responses=problem_responses(400, 401, 404, 409, 503),
    )
    async def claim(
        self,
        request: Request[User, Token, Any],
        data: JSONBody[ClaimCouponRequest],
        coupons: NamedDependency[CouponService],
    ) -> CouponResponse:
        """Refusals (409): `not_claimable` (closed, not open yet or window over), `sold_out`, `limit_reached`;
        404 `template_not_found`."""
        return CouponResponse.of(await coupons.claim(request.user.id, data.template_id))

    @get(
        "/me",
        operation_id="listMyCoupons",
        summary="My coupons, newest claim first",
        responses=problem_responses(400, 401, 503),
    )
    async def mine(
        self,
        request: Request[User, Token, Any],
        coupons: NamedDependency[CouponService],
        limit: Limit = DEFAULT_PAGE_SIZE,
        offset: Offset = 0,
        status: Annotated[list[CouponStatus] | None, QueryParameter(description="Only these statuses")] = None,
        kind: Kinds = None,
    ) -> CouponPage:
        """A claimed coupon past its expiry is listed (and filtered) as `expired`."""
        filters = CouponFilter(statuses=frozenset(status or ()), kinds=frozenset(kind or ()))
        items, total = await coupons.my_coupons(request.user.id, filters, limit, offset)
        return CouponPage(items=[CouponResponse.of(item) for item in items], total=total, limit=limit, offset=offset)

    @post(
        "/{coupon_id:uuid}/redeem",
        operation_id="redeemCoupon",
        summary="Redeem a points_bonus coupon for its points",
        status_code=200,
        responses=problem_responses(400, 401, 404, 409, 503),
    )
    async def redeem(
        self,
        request: Request[User, Token, Any],
        coupon_id: FromPath[UUID],
        coupons: NamedDependency[CouponService],
    ) -> RedemptionResponse:
        """Single use: of simultaneous redeems exactly one succeeds. Refusals (409): `already_used`, `expired`,
        `wrong_kind`; another user's coupon is 404 `coupon_not_found`, like an unknown one."""
        return RedemptionResponse.of(await coupons.redeem(request.user.id, coupon_id))


class AdminCouponTemplatesController(Controller):
    path = "/api/admin/coupon-templates"
    tags = ["admin"]
    guards = [requires_role(Role.ADMIN)]

    @post(
        "/",
        operation_id="createCouponTemplate",
        summary="Publish a coupon template (admins only)",
        status_code=201,
        responses=problem_responses(400, 401, 403, 422, 503),
    )
    async def create(
        self,
        request: Request[User, Token, Any],
        data: JSONBody[CreateCouponTemplateRequest],
        coupons: NamedDependency[CouponService],
    ) -> CouponTemplateResponse:
        """A template breaking a rule is refused with 422 `invalid_template`, every broken rule listed."""
        template = await coupons.create_template(Principal.of(request.user), data.to_draft())
        return CouponTemplateResponse.of(template)

    @get(
        "/",
        operation_id="listCouponTemplates",
        summary="Coupon templates, newest first (admins only)",
        responses=problem_responses(400, 401, 403, 503),
    )
    async def list_templates(
        self,
        request: Request[User, Token, Any],
        coupons: NamedDependency[CouponService],
        limit: Limit = DEFAULT_PAGE_SIZE,
        offset: Offset = 0,
        status: Annotated[list[TemplateStatus] | None, QueryParameter(description="Only these statuses")] = None,
        kind: Kinds = None,
    ) -> CouponTemplatePage:
        filters = TemplateFilter(statuses=frozenset(status or ()), kinds=frozenset(kind or ()))
        items, total = await coupons.list_templates(Principal.of(request.user), filters, limit, offset)
        return CouponTemplatePage(
            items=[CouponTemplateResponse.of(item) for item in items], total=total, limit=limit, offset=offset
        )

    @patch(
        "/{template_id:uuid}",
        operation_id="updateCouponTemplate",
        summary="Change an active coupon template (admins only)",
        responses=problem_responses(400, 401, 403, 404, 409, 422, 503),
    )
    async def update(
        self,
        request: Request[User, Token, Any],
        template_id: FromPath[UUID],
        data: JSONBody[UpdateCouponTemplateRequest],
        coupons: NamedDependency[CouponService],
    ) -> CouponTemplateResponse:
        """A closed template cannot change (409 `template_closed`); the total cannot drop below the claimed
        count (422 `invalid_template` with `below_claimed`)."""
        template = await coupons.update_template(Principal.of(request.user), template_id, data.to_changes())
        return CouponTemplateResponse.of(template)

    @post(
        "/{template_id:uuid}/close",
        operation_id="closeCouponTemplate",
        summary="Stop claims of a coupon template (admins only; idempotent)",
        status_code=200,
        responses=problem_responses(400, 401, 403, 404, 503),
    )
    async def close(
        self,
        request: Request[User, Token, Any],
        template_id: FromPath[UUID],
        coupons: NamedDependency[CouponService],
    ) -> CouponTemplateResponse:
        """Coupons claimed already stay usable until they expire."""
        template = await coupons.close_template(Principal.of(request.user), template_id)
        return CouponTemplateResponse.of(template)
