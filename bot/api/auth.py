"""Staff log in and out; the login page for the agent console and the KB editor."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from bot.auth import SESSION_COOKIE, SESSION_TTL_S, StaffUser, request_token, verify_password
from bot.deps import CurrentUser, SessionDep

router = APIRouter(tags=["auth"])


class LoginRequest(BaseModel):
    login: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=256)


class Me(BaseModel):
    login: str
    display_name: str
    roles: list[str]
    agent_id: int | None


@router.post("/api/v1/auth/login", response_model=Me)
async def login(body: LoginRequest, request: Request, response: Response, session: SessionDep) -> Me:
    from handoff.models import Agent

    agent = (await session.execute(select(Agent).where(Agent.login == body.login))).scalar_one_or_none()
    if agent is None or not agent.active or not verify_password(body.password, agent.password_hash):
        raise HTTPException(401, "wrong login or password")
    user = StaffUser(login=agent.login, display_name=agent.display_name, roles=tuple(agent.roles),
                     agent_id=agent.id, skills={"languages": list(agent.languages), "channels": list(agent.channels)})
    token = await request.app.state.staff_sessions.open(user)
    response.set_cookie(SESSION_COOKIE, token, max_age=SESSION_TTL_S, httponly=True, samesite="lax")
    response.headers["x-session-token"] = token
    return Me(login=user.login, display_name=user.display_name, roles=list(user.roles), agent_id=user.agent_id)


@router.post("/api/v1/auth/logout", status_code=204)
async def logout(request: Request, response: Response) -> None:
    token = request_token(request)
    if token:
        await request.app.state.staff_sessions.close(token)
    response.delete_cookie(SESSION_COOKIE)


@router.get("/api/v1/auth/me", response_model=Me)
async def me(user: CurrentUser) -> Me:
    return Me(login=user.login, display_name=user.display_name, roles=list(user.roles), agent_id=user.agent_id)
