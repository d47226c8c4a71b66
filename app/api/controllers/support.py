from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.security.jwt import Token

from app.api.errors import problem_responses
from app.api.security import requires_role
from app.api.support_schemas import (
    AgentResponse,
    AgentSettingsRequest,
    AgentStatusRequest,
    ChatPage,
    ChatResponse,
    MarkReadRequest,
    MessagePageResponse,
    MessageResponse,
    OpenChatRequest,
    SendMessageRequest,
)
from app.domain.shared.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from app.domain.support.model import ChatStatus
from app.domain.support.service import SupportService
from app.domain.users.model import Principal, Role, User

Limit = Annotated[int, QueryParameter(ge=1, le=MAX_PAGE_SIZE)]
Offset = Annotated[int, QueryParameter(ge=0, le=1_000_000)]
Statuses = Annotated[list[ChatStatus] | None, QueryParameter(description="Only these statuses")]
Cursor = Annotated[
    str | None, QueryParameter(min_length=1, max_length=64, description="`next_cursor` of the previous page")
]


class SupportChatsController(Controller):
    """A user's chats with customer service; the assigned agent and admins use the same chat routes."""

    path = "/api/support/chats"
    tags = ["support"]

    @post(
        "/",
        operation_id="openSupportChat",
        summary="Open a chat with customer service; it waits for an agent",
        status_code=201,
        responses=problem_responses(400, 401, 409, 422, 503),
    )
    async def open_chat(
        self,
        request: Request[User, Token, Any],
        support: NamedDependency[SupportService],
        data: JSONBody[OpenChatRequest | None] = None,
    ) -> ChatResponse:
        """One open (waiting or assigned) chat per user: a second gets 409 `chat_already_open`. 422
        `invalid_chat` (subject), `invalid_message` (first message)."""
        body = data or OpenChatRequest()
        chat = await support.open_chat(Principal.of(request.user), body.subject, body.message)
        return ChatResponse.of(chat, request.user.id)

    @get(
        "/me",
        operation_id="listMySupportChats",
        summary="My chats with customer service, newest first",
        responses=problem_responses(400, 401, 503),
    )
    async def list_mine(
        self,
        request: Request[User, Token, Any],
        support: NamedDependency[SupportService],
        limit: Limit = DEFAULT_PAGE_SIZE,
        offset: Offset = 0,
        status: Statuses = None,
    ) -> ChatPage:
        """Each with its newest message and my unread count."""
        items, total = await support.list_my_chats(Principal.of(request.user), frozenset(status or ()), limit, offset)
        return ChatPage.of(items, total, limit, offset, request.user.id)

    @get(
        "/{chat_id:uuid}",
        operation_id="getSupportChat",
        summary="One chat (its user, its assigned agent, admins)",
        responses=problem_responses(400, 401, 404, 503),
    )
    async def get_chat(
        self, request: Request[User, Token, Any], chat_id: FromPath[UUID], support: NamedDependency[SupportService]
    ) -> ChatResponse:
        """Another user's chat, or a chat not assigned to you, is 404 `chat_not_found`, like an unknown one."""
        return ChatResponse.of(await support.get_chat(Principal.of(request.user), chat_id), request.user.id)

    @post(
        "/{chat_id:uuid}/messages",
        operation_id="sendSupportMessage",
        summary="Write in a chat (its user, or its assigned agent)",
        status_code=201,
        responses=problem_responses(400, 401, 403, 404, 409, 422, 503),
    )
    async def send(
        self,
        request: Request[User, Token, Any],
        chat_id: FromPath[UUID],
        data: JSONBody[SendMessageRequest],
        support: NamedDependency[SupportService],
    ) -> MessageResponse:
        """422 `invalid_message` (empty or over 4,000 characters after trimming); 409 `chat_closed` (its `errors`
        name the current `status`); 403 `not_participant` (an admin reading along); 404 `chat_not_found`."""
        return MessageResponse.of(await support.send_message(chat_id, Principal.of(request.user), data.body))

    @get(
        "/{chat_id:uuid}/messages",
        operation_id="listSupportMessages",
        summary="A chat's messages, newest first, by cursor",
        responses=problem_responses(400, 401, 404, 422, 503),
    )
    async def list_messages(
        self,
        request: Request[User, Token, Any],
        chat_id: FromPath[UUID],
        support: NamedDependency[SupportService],
        limit: Limit = DEFAULT_PAGE_SIZE,
        cursor: Cursor = None,
    ) -> MessagePageResponse:
        """Messages written while you page do not shift the older pages: no repeats, no gaps. 422
        `invalid_cursor`."""
        page = await support.list_messages(Principal.of(request.user), chat_id, cursor, limit)
        return MessagePageResponse.of(page, limit)

    @post(
        "/{chat_id:uuid}/read",
        operation_id="markSupportChatRead",
        summary="Move my read marker in a chat (default: to its newest message)",
        status_code=200,
        responses=problem_responses(400, 401, 403, 404, 422, 503),
    )
    async def mark_read(
        self,
        request: Request[User, Token, Any],
        chat_id: FromPath[UUID],
        support: NamedDependency[SupportService],
        data: JSONBody[MarkReadRequest | None] = None,
    ) -> ChatResponse:
        """Returns the chat with my new `unread_count`; the other participant is told live. 403
        `not_participant`."""
        up_to = None if data is None else data.up_to_seq
        chat = await support.mark_read(Principal.of(request.user), chat_id, up_to)
        return ChatResponse.of(chat, request.user.id)

    @post(
        "/{chat_id:uuid}/close",
        operation_id="closeSupportChat",
        summary="Close a chat (its user, its assigned agent, admins)",
        status_code=200,
        responses=problem_responses(400, 401, 403, 404, 409, 503),
    )
    async def close(
        self, request: Request[User, Token, Any], chat_id: FromPath[UUID], support: NamedDependency[SupportService]
    ) -> ChatResponse:
        """A system message records who closed it. 409 `chat_closed` when it is closed already."""
        return ChatResponse.of(await support.close_chat(Principal.of(request.user), chat_id), request.user.id)


class SupportAgentsController(Controller):
    """An agent's own availability and chats."""

    path = "/api/support/agents"
    tags = ["support"]
    guards = [requires_role(Role.AGENT)]

    @get(
        "/me",
        operation_id="getMyAgentStatus",
        summary="My status, maximum and current load (agents)",
        responses=problem_responses(401, 403, 503),
    )
    async def get_me(
        self, request: Request[User, Token, Any], support: NamedDependency[SupportService]
    ) -> AgentResponse:
        return AgentResponse.of(await support.get_agent(Principal.of(request.user)))

    @put(
        "/me/status",
        operation_id="setMyAgentStatus",
        summary="Go online or offline (agents)",
        responses=problem_responses(400, 401, 403, 503),
    )
    async def set_status(
        self,
        request: Request[User, Token, Any],
        data: JSONBody[AgentStatusRequest],
        support: NamedDependency[SupportService],
    ) -> AgentResponse:
        """Online: the assignment job gives you waiting chats up to your maximum, least-loaded agents first.
        Offline: your open chats go back to the queue, at their original places, at the job's next run."""
        return AgentResponse.of(await support.set_agent_status(Principal.of(request.user), data.status))

    @get(
        "/me/chats",
        operation_id="listMyAgentChats",
        summary="Chats assigned to me, newest first (agents)",
        responses=problem_responses(400, 401, 403, 503),
    )
    async def list_chats(
        self,
        request: Request[User, Token, Any],
        support: NamedDependency[SupportService],
        limit: Limit = DEFAULT_PAGE_SIZE,
        offset: Offset = 0,
        status: Statuses = None,
    ) -> ChatPage:
        """Open ones and those closed while assigned to me; each with its newest message and my unread count."""
        items, total = await support.list_agent_chats(
            Principal.of(request.user), frozenset(status or ()), limit, offset
        )
        return ChatPage.of(items, total, limit, offset, request.user.id)


class AdminSupportController(Controller):
    path = "/api/admin/support"
    tags = ["admin"]
    guards = [requires_role(Role.ADMIN)]

    @put(
        "/agents/{user_id:uuid}",
        operation_id="updateSupportAgent",
        summary="Set an agent's own maximum of concurrent chats (admins only)",
        responses=problem_responses(400, 401, 403, 404, 422, 503),
    )
    async def update_agent(
        self,
        request: Request[User, Token, Any],
        user_id: FromPath[UUID],
        data: JSONBody[AgentSettingsRequest],
        support: NamedDependency[SupportService],
    ) -> AgentResponse:
        """`max_chats: null` returns to the default of the settings. 404 `agent_not_found` when the user is no
        agent."""
        agent = await support.set_agent_max_chats(Principal.of(request.user), user_id, data.max_chats)
        return AgentResponse.of(agent)

    @get(
        "/chats",
        operation_id="listSupportChats",
        summary="Every chat, newest first (admins only)",
        responses=problem_responses(400, 401, 403, 503),
    )
    async def list_chats(
        self,
        request: Request[User, Token, Any],
        support: NamedDependency[SupportService],
        limit: Limit = DEFAULT_PAGE_SIZE,
        offset: Offset = 0,
        status: Statuses = None,
    ) -> ChatPage:
        items, total = await support.list_all_chats(Principal.of(request.user), frozenset(status or ()), limit, offset)
        return ChatPage.of(items, total, limit, offset, request.user.id)
