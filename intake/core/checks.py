"""Configuration that is acceptable for development but not for protecting real testimony.

`intake doctor` prints these warnings, and the application logs them when it starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa


def configuration_warnings(config: Any) -> list[str]:
    """Settings that are acceptable for development but not for protecting real testimony."""
    warnings = []
    passphrase_file = config.get("KEYRING_PASSPHRASE_FILE")
    if passphrase_file:
        pf = Path(passphrase_file).resolve()
        near = {Path(config["INSTANCE_PATH"]).resolve(), Path(config["KEYRING_PATH"]).resolve().parent}
        url = sa.engine.make_url(config["DATABASE_URL"])
        if url.get_backend_name() == "sqlite" and url.database:
            near.add(Path(url.database).resolve().parent)
        if pf.parent in near:
            warnings.append(f"the keyring passphrase file {pf} sits beside the data: this is for development "
                            "only; anyone who copies the folder can read everything.")
    if not config["SECURE_COOKIES"]:
        warnings.append("secure cookies are off (INTAKE_SECURE_COOKIES); serve over HTTPS in production.")
    if config["ENV"] == "development":
        warnings.append("INTAKE_ENV is development.")
    if config["AUDIT_ORIGIN"] == "intake.invalid/audit" and config["ENV"] != "development":
        warnings.append("INTAKE_AUDIT_ORIGIN is the default: name the audit log after this deployment (e.g. "
                        "docs.example.org/audit) before its first checkpoints are shared, since notes carry it.")
    checkpoint_file = Path(config["AUDIT_CHECKPOINT_FILE"]).resolve()
    if checkpoint_file.parent == Path(config["INSTANCE_PATH"]).resolve():
        warnings.append(f"the audit checkpoint file {checkpoint_file} is kept beside the database: copy it off "
                        "the server regularly (or point INTAKE_AUDIT_CHECKPOINT_FILE elsewhere), since it is what "
                        "proves a truncated or rewritten log wrong.")
    if not config["REDIS_URL"]:
        warnings.append("no INTAKE_REDIS_URL: rate limits are kept per worker process; with several workers or "
                        "hosts, configure Redis.")
    return warnings
