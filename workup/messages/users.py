"""Users service commands and replies.

Every command acts on the *caller* of the envelope (``Caller.user_id``/``role``, set by the gateway
from the verified token), so the structs carry no user id and double as the HTTP request bodies:
the gateway decodes a body straight into one of these and forwards it. Format rules (email syntax,
password length, dates) live in the types, so nothing malformed reaches the service.

Partial updates use ``UNSET`` for "not given"; ``null`` clears an optional field.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from msgspec import UNSET, Meta, UnsetType

from ..cache import cache_key
from ._base import Message

__all__ = [
    "Email", "Password", "UserType",
    # accounts
    "RegisterClient", "RegisterFreelancer", "Login", "AuthAnswer", "GetMe", "Me", "DeleteMe",
    # profiles
    "GetClientProfile", "SetClientProfile", "ClientProfile",
    "GetClientPhoto", "SetClientPhoto", "GetFreelancerPhoto", "SetFreelancerPhoto", "PhotoLink",
    "GetFreelancerResume", "SetFreelancerResume", "ResumeLink",
    "GetFreelancerProfile", "SetFreelancerProfile", "FreelancerProfile",
    "GetFreelancerBrief", "FreelancerBrief", "GetPublicFreelancer", "PublicFreelancer",
    # lists
    "Achievement", "AddAchievement", "ListAchievements", "UpdateAchievement", "RemoveAchievement",
    "Education", "AddEducation", "ListEducation", "UpdateEducation", "RemoveEducation",
    "Experience", "AddExperience", "ListExperience", "UpdateExperience", "RemoveExperience",
    "AddSkill", "ListSkills", "RemoveSkill", "AddLanguage", "ListLanguages", "RemoveLanguage",
    "ITEM_KINDS", "CACHED_ME", "CACHED_CLIENT_PROFILE", "CACHED_FREELANCER_PROFILE", "CACHED_FREELANCER_PUBLIC",
    "CACHED_VIEWS", "user_cache_key",
]

# The cached views of a user (``workup:users:<view>:<user id>``): the service fills them and
# invalidates all of them after every committed change of the user; the gateway serves them
# (``routing.cached_forward``).
CACHED_ME = "me"
CACHED_CLIENT_PROFILE = "client_profile"
CACHED_FREELANCER_PROFILE = "freelancer_profile"
CACHED_FREELANCER_PUBLIC = "freelancer_public"
CACHED_VIEWS = (CACHED_ME, CACHED_CLIENT_PROFILE, CACHED_FREELANCER_PROFILE, CACHED_FREELANCER_PUBLIC)


def user_cache_key(view: str, user_id: str) -> str:
    """The cached ``view`` (one of :data:`CACHED_VIEWS`) of a user."""
    if view not in CACHED_VIEWS:
        raise ValueError(f"no cached view {view!r} of a user")
    return cache_key("users", view, user_id)

# A pragmatic address check (RFC 5321 lengths, one @, a dot in the domain, no spaces).
EMAIL_PATTERN = r"^[^@\s\x00-\x1f]{1,64}@[^@\s\x00-\x1f.]+(\.[^@\s\x00-\x1f.]+)+$"
Email = Annotated[str, Meta(pattern=EMAIL_PATTERN, max_length=254)]
Password = Annotated[str, Meta(min_length=8, max_length=1024)]
AnyPassword = Annotated[str, Meta(max_length=1024)]  # login: a short one is just wrong, not malformed
# Stored strings never hold NUL (MongoDB-wire servers such as FerretDB refuse it).
_NO_NUL = r"^[^\x00]*$"
Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=_NO_NUL)]
Text = Annotated[str, Meta(max_length=5000, pattern=_NO_NUL)]
Short = Annotated[str, Meta(max_length=200, pattern=_NO_NUL)]
Link = Annotated[str, Meta(max_length=2048, pattern=_NO_NUL)]
Tag = Annotated[str, Meta(min_length=1, max_length=100, pattern=_NO_NUL)]
ItemId = Annotated[str, Meta(min_length=1, max_length=100)]
UserId = Annotated[str, Meta(min_length=1, max_length=100)]
Count = Annotated[int, Meta(ge=0, le=10_000_000)]
UserType = Literal["CLIENT", "FREELANCER", "ADMIN"]


# --- accounts -----------------------------------------------------------------------------------

class RegisterClient(Message):
    email: Email
    password: Password
    client_name: Name
    industry: Short | None = None
    city: Short | None = None
    description: Text | None = None
    employee_count: Count | None = None


class RegisterFreelancer(Message):
    email: Email
    password: Password
    full_name: Name
    job_title: Short | None = None
    city: Short | None = None
    birth_date: dt.date | None = None


class Login(Message):
    email: Annotated[str, Meta(max_length=254)]
    password: AnyPassword


class AuthAnswer(Message):
    """Reply of register and login; the gateway adds ``authToken``."""
    user_id: str
    user_type: UserType


class TokenAnswer(Message):
    """What the gateway answers to register and login: :class:`AuthAnswer` plus the JWT."""
    auth_token: str
    user_id: str
    user_type: UserType


class GetMe(Message):
    pass


class Me(Message):
    user_id: str
    email: str
    user_type: UserType
    name: str


class DeleteMe(Message):
    password: AnyPassword


# --- profiles -----------------------------------------------------------------------------------

class GetClientProfile(Message):
    pass


class SetClientProfile(Message):
    name: Name | UnsetType = UNSET
    email: Email | UnsetType = UNSET
    city: Short | None | UnsetType = UNSET
    description: Text | None | UnsetType = UNSET
    industry: Short | None | UnsetType = UNSET
    employee_count: Count | None | UnsetType = UNSET


class ClientProfile(Message):
    name: str
    email: str
    city: str | None
    description: str | None
    industry: str | None
    employee_count: int | None
    photo_link: str | None


class GetClientPhoto(Message):
    pass


class SetClientPhoto(Message):
    photo_link: Link | None


class GetFreelancerPhoto(Message):
    pass


class SetFreelancerPhoto(Message):
    photo_link: Link | None


class PhotoLink(Message):
    photo_link: str | None


class GetFreelancerResume(Message):
    pass


class SetFreelancerResume(Message):
    resume_link: Link | None


class ResumeLink(Message):
    resume_link: str | None


class GetFreelancerProfile(Message):
    pass


class SetFreelancerProfile(Message):
    full_name: Name | UnsetType = UNSET
    email: Email | UnsetType = UNSET
    city: Short | None | UnsetType = UNSET
    job_title: Short | None | UnsetType = UNSET
    description: Text | None | UnsetType = UNSET
    birth_date: dt.date | None | UnsetType = UNSET


class FreelancerProfile(Message):
    full_name: str
    email: str
    city: str | None
    job_title: str | None
    description: str | None
    birth_date: dt.date | None
    skills: list[str]
    languages: list[str]
    photo_link: str | None
    resume_link: str | None


class GetFreelancerBrief(Message):
    pass


class FreelancerBrief(Message):
    full_name: str
    email: str


class GetPublicFreelancer(Message):
    freelancer_id: UserId


class PublicFreelancer(Message):
    id: str
    full_name: str
    city: str | None
    job_title: str | None
    description: str | None
    skills: list[str]
    languages: list[str]
    photo_link: str | None


# --- freelancer lists: items with server-assigned ids -------------------------------------------

class Achievement(Message):
    id: str
    achievement_name: str
    awarded_by: str | None = None
    achievement_description: str | None = None
    award_date: dt.date | None = None


class AddAchievement(Message):
    achievement_name: Name
    awarded_by: Short | None = None
    achievement_description: Text | None = None
    award_date: dt.date | None = None


class UpdateAchievement(Message):
    id: ItemId
    achievement_name: Name | UnsetType = UNSET
    awarded_by: Short | None | UnsetType = UNSET
    achievement_description: Text | None | UnsetType = UNSET
    award_date: dt.date | None | UnsetType = UNSET


class ListAchievements(Message):
    pass


class RemoveAchievement(Message):
    achievement_id: ItemId


class Education(Message):
    id: str
    school_name: str
    degree: str | None = None
    major: str | None = None
    city: str | None = None
    grade: str | None = None
    education_description: str | None = None
    education_start_date: dt.date | None = None
    end_date: dt.date | None = None


class AddEducation(Message):
    school_name: Name
    degree: Short | None = None
    major: Short | None = None
    city: Short | None = None
    grade: Short | None = None
    education_description: Text | None = None
    education_start_date: dt.date | None = None
    end_date: dt.date | None = None


class UpdateEducation(Message):
    id: ItemId
    school_name: Name | UnsetType = UNSET
    degree: Short | None | UnsetType = UNSET
    major: Short | None | UnsetType = UNSET
    city: Short | None | UnsetType = UNSET
    grade: Short | None | UnsetType = UNSET
    education_description: Text | None | UnsetType = UNSET
    education_start_date: dt.date | None | UnsetType = UNSET
    end_date: dt.date | None | UnsetType = UNSET


class ListEducation(Message):
    pass


class RemoveEducation(Message):
    education_id: ItemId


class Experience(Message):
    id: str
    company_name: str
    job_title: str | None = None
    city: str | None = None
    experience_description: str | None = None
    employment_start: dt.date | None = None
    employment_end: dt.date | None = None


class AddExperience(Message):
    company_name: Name
    job_title: Short | None = None
    city: Short | None = None
    experience_description: Text | None = None
    employment_start: dt.date | None = None
    employment_end: dt.date | None = None


class UpdateExperience(Message):
    id: ItemId
    company_name: Name | UnsetType = UNSET
    job_title: Short | None | UnsetType = UNSET
    city: Short | None | UnsetType = UNSET
    experience_description: Text | None | UnsetType = UNSET
    employment_start: dt.date | None | UnsetType = UNSET
    employment_end: dt.date | None | UnsetType = UNSET


class ListExperience(Message):
    pass


class RemoveExperience(Message):
    experience_id: ItemId


class AddSkill(Message):
    new_skill: Tag


class ListSkills(Message):
    pass


class RemoveSkill(Message):
    skill_to_remove: Tag


class AddLanguage(Message):
    new_language: Tag


class ListLanguages(Message):
    pass


class RemoveLanguage(Message):
    language_to_remove: Tag


# kind -> (item struct, add, update, list, remove, id field of remove)
ITEM_KINDS: dict[str, tuple[type[Message], ...]] = {
    "achievements": (Achievement, AddAchievement, UpdateAchievement, ListAchievements, RemoveAchievement),
    "education": (Education, AddEducation, UpdateEducation, ListEducation, RemoveEducation),
    "experience": (Experience, AddExperience, UpdateExperience, ListExperience, RemoveExperience),
}
