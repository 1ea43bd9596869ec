from app.models.base import Base
from app.models.definitions import EventDefinition, PropertyDefinition
from app.models.environment import Environment
from app.models.organization import Organization, OrganizationMembership
from app.models.personal_api_key import PersonalAPIKey
from app.models.user import User

__all__ = ["Base", "Environment", "EventDefinition", "Organization", "OrganizationMembership", "PersonalAPIKey",
           "PropertyDefinition", "User"]
