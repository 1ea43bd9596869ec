from app.models.access_control import AccessControl
from app.models.activity import ActivityLog
from app.models.base import Base
from app.models.cohort import Cohort
from app.models.dashboard import Dashboard, DashboardTile
from app.models.element import Element
from app.models.definitions import EventDefinition, PropertyDefinition
from app.models.environment import Environment
from app.models.organization import Organization, OrganizationMembership
from app.models.person import Group, GroupTypeMapping, Person, PersonDistinctId, PersonlessDistinctId
from app.models.personal_api_key import PersonalAPIKey
from app.models.insight import Insight, InsightViewed
from app.models.user import User

__all__ = ["AccessControl", "ActivityLog", "Cohort", "Element", "Dashboard", "DashboardTile", "Insight", "InsightViewed",
           "Base", "EventDefinition", "PropertyDefinition", "Environment", "Organization", "OrganizationMembership", "PersonalAPIKey", "User",
           "Group", "GroupTypeMapping", "Person", "PersonDistinctId", "PersonlessDistinctId"]
