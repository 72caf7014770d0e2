"""Imports every model module so that `Base.metadata` is complete (for migrations and schema tests)."""

from intake.accounts import models as accounts_models  # noqa: F401
from intake.cases import models as cases_models  # noqa: F401
from intake.consents import models as consents_models  # noqa: F401
from intake.core.access import models as access_models  # noqa: F401
from intake.core.audit import models as audit_models  # noqa: F401
from intake.core.crypto import models as crypto_models  # noqa: F401
from intake.core.db import Base
from intake.core.sessions import WebSession  # noqa: F401
from intake.exports import models as exports_models  # noqa: F401
from intake.identities import models as identities_models  # noqa: F401
from intake.interviews import models as interviews_models  # noqa: F401
from intake.recipients import models as recipients_models  # noqa: F401
from intake.review import models as review_models  # noqa: F401
from intake.testimonies import models as testimonies_models  # noqa: F401

metadata = Base.metadata
