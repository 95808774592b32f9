"""IAM: the directory (users, groups, memberships), privilege-change events and the
change-management platform's approvals."""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import Field

from handrail.tools.http import LabHTTP, ToolModel, seg

EventStatus = Literal["new", "processed"]


class Disabled(ToolModel):
    reason: str = ""
    at: str


class User(ToolModel):
    username: str
    display_name: str = ""
    email: str = ""
    department: str = ""
    title: str = ""
    manager: str | None = None
    enabled: bool = True
    disabled: Disabled | None = None
    groups: list[str] = Field(default_factory=list)
    aliases: list[str] = Field(default_factory=list)


class Group(ToolModel):
    name: str
    description: str = ""
    privileged: bool = False
    members: list[str] = Field(default_factory=list)


class Membership(ToolModel):
    group: str
    member: str
    member_type: Literal["user", "device"] = "user"


class EventProcessing(ToolModel):
    by: str
    outcome: str = ""
    at: str


class PrivilegeEvent(ToolModel):
    id: str
    kind: Literal["group_member_added", "group_member_removed"]
    principal: str
    principal_type: Literal["user", "device"]
    group: str
    privileged: bool
    actor: str
    change_ticket: str | None = None
    at: str
    status: EventStatus
    processing: EventProcessing | None = None


class ChangeTicket(ToolModel):
    ticket: str
    status: Literal["approved", "pending", "rejected"]
    summary: str = ""
    requested_by: str | None = None
    approved_by: str | None = None
    window_start: str | None = None
    window_end: str | None = None


class Iam(Protocol):
    async def list_users(self, *, department: str | None = None,
                         group: str | None = None, email: str | None = None) -> list[User]: ...
    async def get_user(self, username: str) -> User: ...
    async def disable_user(self, username: str, *, reason: str = "",
                           idempotency_key: str | None = None) -> User: ...
    async def enable_user(self, username: str, *, idempotency_key: str | None = None) -> User: ...
    async def list_groups(self, *, privileged: bool | None = None) -> list[Group]: ...
    async def privileged_groups(self) -> list[Group]: ...
    async def get_group(self, group: str) -> Group: ...
    async def is_member(self, group: str, member: str) -> bool: ...
    async def grant(self, group: str, member: str, *,
                    idempotency_key: str | None = None) -> Membership: ...
    async def revoke(self, group: str, member: str, *,
                     idempotency_key: str | None = None) -> None: ...
    async def list_events(self, status: EventStatus | None = None) -> list[PrivilegeEvent]: ...
    async def get_event(self, event_id: str) -> PrivilegeEvent: ...
    async def mark_event_processed(self, event_id: str, *, by: str, outcome: str = "",
                                   idempotency_key: str | None = None) -> PrivilegeEvent: ...
    async def reopen_event(self, event_id: str, *,
                           idempotency_key: str | None = None) -> PrivilegeEvent: ...
    async def get_change(self, ticket: str) -> ChangeTicket | None: ...


class LabIam:
    def __init__(self, http: LabHTTP) -> None:
        self.http = http

    async def list_users(self, *, department: str | None = None,
                         group: str | None = None, email: str | None = None) -> list[User]:
        data = await self.http.json("GET", "/iam/users",
                                    params={"department": department, "group": group, "email": email})
        return [User.model_validate(u) for u in data["users"]]

    async def get_user(self, username: str) -> User:
        return User.model_validate(await self.http.json("GET", f"/iam/users/{seg(username)}"))

    async def disable_user(self, username: str, *, reason: str = "",
                           idempotency_key: str | None = None) -> User:
        data = await self.http.json("POST", f"/iam/users/{seg(username)}/disable",
                                    json={"reason": reason}, idempotency_key=idempotency_key)
        return User.model_validate(data)

    async def enable_user(self, username: str, *, idempotency_key: str | None = None) -> User:
        data = await self.http.json("POST", f"/iam/users/{seg(username)}/enable",
                                    idempotency_key=idempotency_key)
        return User.model_validate(data)

    async def list_groups(self, *, privileged: bool | None = None) -> list[Group]:
        data = await self.http.json("GET", "/iam/groups", params={"privileged": privileged})
        return [Group.model_validate(g) for g in data["groups"]]

    async def privileged_groups(self) -> list[Group]:
        return await self.list_groups(privileged=True)

    async def get_group(self, group: str) -> Group:
        return Group.model_validate(await self.http.json("GET", f"/iam/groups/{seg(group)}"))

    async def is_member(self, group: str, member: str) -> bool:
        return member in (await self.get_group(group)).members

    async def grant(self, group: str, member: str, *,
                    idempotency_key: str | None = None) -> Membership:
        data = await self.http.json("PUT", f"/iam/groups/{seg(group)}/members/{seg(member)}",
                                    idempotency_key=idempotency_key)
        return Membership.model_validate(data)

    async def revoke(self, group: str, member: str, *,
                     idempotency_key: str | None = None) -> None:
        await self.http.request("DELETE", f"/iam/groups/{seg(group)}/members/{seg(member)}",
                                idempotency_key=idempotency_key)

    async def list_events(self, status: EventStatus | None = None) -> list[PrivilegeEvent]:
        data = await self.http.json("GET", "/iam/events", params={"status": status})
        return [PrivilegeEvent.model_validate(e) for e in data["events"]]

    async def get_event(self, event_id: str) -> PrivilegeEvent:
        return PrivilegeEvent.model_validate(
            await self.http.json("GET", f"/iam/events/{seg(event_id)}"))

    async def mark_event_processed(self, event_id: str, *, by: str, outcome: str = "",
                                   idempotency_key: str | None = None) -> PrivilegeEvent:
        data = await self.http.json("POST", f"/iam/events/{seg(event_id)}/processed",
                                    json={"by": by, "outcome": outcome},
                                    idempotency_key=idempotency_key)
        return PrivilegeEvent.model_validate(data)

    async def reopen_event(self, event_id: str, *,
                           idempotency_key: str | None = None) -> PrivilegeEvent:
        data = await self.http.json("POST", f"/iam/events/{seg(event_id)}/reopen",
                                    idempotency_key=idempotency_key)
        return PrivilegeEvent.model_validate(data)

    async def get_change(self, ticket: str) -> ChangeTicket | None:
        data = await self.http.get_or_none(f"/iam/changes/{seg(ticket)}")
        return ChangeTicket.model_validate(data) if data is not None else None
