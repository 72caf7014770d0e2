"""Every setting the service understands, with its type, default and meaning.

This list is the single source of truth: the loader validates against it, `intake doctor` reads it, and a test
checks that the README's settings table says the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

SettingType = Literal["str", "int", "bool", "path", "choice", "rate", "url"]


@dataclass(frozen=True)
class Setting:
    """One configuration setting: `INTAKE_<NAME>` in the environment, `<name>` in the TOML file."""

    name: str
    type: SettingType
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    secret: bool = False

    @property
    def env_name(self) -> str:
        return f"INTAKE_{self.name}"

    @property
    def toml_name(self) -> str:
        return self.name.lower()


LOCALES = ("en", "hy", "ru", "az")

SETTINGS: tuple[Setting, ...] = (
    Setting("ENV", "choice", "production", "`development` turns off secure cookies for plain-HTTP local use.",
            choices=("production", "development")),
    Setting("INSTANCE_PATH", "path", "instance",
            "Folder for the SQLite database, the keyring and the development passphrase file "
            "(relative paths are resolved against the working directory)."),
    Setting("DATABASE_URL", "url", "",
            "SQLAlchemy URL. Empty means SQLite at `<instance>/intake.sqlite3`; PostgreSQL as "
            "`postgresql+psycopg://user@host/db`."),
    Setting("KEYRING_PATH", "path", "", "The sealed keyring file. Empty means `<instance>/keyring.sealed`."),
    Setting("KEYRING_PASSPHRASE", "str", "", "Passphrase that unseals the keyring.", secret=True),
    Setting("KEYRING_PASSPHRASE_FILE", "path", "",
            "File holding the keyring passphrase (instead of `INTAKE_KEYRING_PASSPHRASE`)."),
    Setting("REDIS_URL", "url", "",
            "Redis for rate limits and sessions shared by several workers or hosts. Empty means rate limits "
            "in memory and sessions in the database."),
    Setting("SECURE_COOKIES", "choice", "auto",
            "`true` sends cookies only over HTTPS with the `__Host-` prefix; `auto` means true unless "
            "`ENV` is development.", choices=("auto", "true", "false")),
    Setting("BASE_URL", "url", "http://127.0.0.1:5000", "Public address used in printed setup and enrolment links."),
    Setting("SESSION_IDLE_MINUTES", "int", 15, "A session ends after this long without a request.",
            minimum=1, maximum=240),
    Setting("SESSION_ABSOLUTE_HOURS", "int", 8, "A session ends this long after sign-in, whatever happens.",
            minimum=1, maximum=24),
    Setting("STEP_UP_MINUTES", "int", 5, "How long a fresh two-factor code counts for sensitive actions.",
            minimum=1, maximum=30),
    Setting("SETUP_LINK_MINUTES", "int", 30, "Lifetime of the one-time link that creates the first admin.",
            minimum=5, maximum=240),
    Setting("INVITATION_HOURS", "int", 72, "Lifetime of an enrolment or two-factor reset link.",
            minimum=1, maximum=336),
    Setting("API_TOKEN_DEFAULT_DAYS", "int", 90, "Lifetime of a personal API token unless another is chosen.",
            minimum=1, maximum=365),
    Setting("MAX_REQUEST_BYTES", "int", 1_048_576, "Largest request body accepted (larger gets 413).",
            minimum=1024),
    Setting("ATTACHMENT_MAX_BYTES", "int", 209_715_200,
            "Largest attachment accepted, in bytes (200 MiB); larger files are refused and nothing is kept.",
            minimum=1024, maximum=4_294_967_296),
    Setting("BLOB_STORAGE", "choice", "database",
            "Where encrypted attachments are stored: `database` (in the database, backed up with it) or `files` "
            "(generated names under `BLOB_PATH`).", choices=("database", "files")),
    Setting("BLOB_PATH", "path", "", "Folder for encrypted attachments when `BLOB_STORAGE` is `files`. Empty means "
            "`<instance>/blobs`."),
    Setting("CORRECTION_HOURS", "int", 72,
            "How long after submitting an interview its interviewer may still correct it; then it locks for them.",
            minimum=0, maximum=720),
    Setting("REVIEW_ASSIGNMENT_POLICY", "choice", "assigned",
            "Which submitted testimonies a reviewer may open: `assigned` (those assigned or granted to them) or "
            "`team` (also every one recorded by their team).", choices=("assigned", "team")),
    Setting("EXPORT_PATH", "path", "",
            "Folder where built case files wait to be downloaded (encrypted to their recipient). Empty means "
            "`<instance>/exports`."),
    Setting("EXPORT_KEEP_HOURS", "int", 72,
            "How long a built case file can be downloaded; then it is deleted.", minimum=1, maximum=720),
    Setting("EXPORT_RUNNER", "choice", "thread",
            "How case files are built: `thread` (in the background of the web process that was asked), `worker` "
            "(by `intake export work`, run as a service of its own) or `inline` (before the answer; for tests and "
            "small deployments).", choices=("thread", "worker", "inline")),
    Setting("RETENTION_DRAFT_DAYS", "int", 30,
            "An interview never submitted is shredded, with its person, this many days after its last change "
            "(`intake retention run`); 0 keeps drafts until someone acts.", minimum=0, maximum=36_500),
    Setting("RETENTION_WITHDRAWN_DAYS", "int", 90,
            "A record whose consent to documentation was withdrawn without erasure is shredded, with its person, "
            "this many days after the withdrawal, whatever case holds it; 0 keeps it until someone acts.",
            minimum=0, maximum=36_500),
    Setting("RETENTION_REVIEW_LAPSED_DAYS", "int", 0,
            "A record is shredded, with its person, this many days after its consent's review date passed, unless "
            "a case holds it; 0 keeps it until someone acts.", minimum=0, maximum=36_500),
    Setting("RETENTION_TESTIMONY_DAYS", "int", 0,
            "A submitted testimony is shredded, with its person, this many days after its submission, unless a "
            "case holds it; 0 keeps it until someone acts.", minimum=0, maximum=36_500),
    Setting("PSEUDONYM_PREFIX", "str", "KB",
            "Letters (1 to 4, A to Z) that begin every pseudonym code, e.g. `KB-7F3Q-2K`."),
    Setting("AUDIT_ORIGIN", "str", "intake.invalid/audit",
            "Name of this audit log in its signed checkpoints and of the key that signs them (C2SP origin): set it "
            "to something unique to the deployment, e.g. `docs.example.org/audit`."),
    Setting("AUDIT_CHECKPOINT_EVERY", "int", 1000, "A signed audit checkpoint is made after this many events.",
            minimum=1, maximum=1_000_000),
    Setting("AUDIT_CHECKPOINT_MINUTES", "int", 60,
            "A signed audit checkpoint is made with the first event appended this long after the previous one "
            "(run `intake audit checkpoint` from a timer to cover a quiet log).", minimum=1, maximum=10_080),
    Setting("AUDIT_CHECKPOINT_FILE", "path", "",
            "File outside the database to which every signed checkpoint is appended. Empty means "
            "`<instance>/audit-checkpoints.jsonl`; keep a copy of it elsewhere too."),
    Setting("SIGN_IN_LIMIT_PER_ADDRESS", "rate", "30 per 10 minutes",
            "Rate limit on each sign-in, enrolment and step-up step per client address."),
    Setting("SIGN_IN_LIMIT_PER_ACCOUNT", "rate", "10 per 10 minutes",
            "Rate limit on each sign-in step per account name (known or not)."),
    Setting("API_LIMIT", "rate", "1200 per minute", "Rate limit on API calls per client address."),
    Setting("LOCKOUT_THRESHOLD", "int", 5, "Failed sign-ins for one account name before a temporary lockout.",
            minimum=1, maximum=100),
    Setting("LOCKOUT_BASE_SECONDS", "int", 60, "First lockout; it doubles with each further failure.",
            minimum=1),
    Setting("LOCKOUT_MAX_SECONDS", "int", 3600, "Longest lockout.", minimum=1),
    Setting("PASSWORD_MIN_LENGTH", "int", 12, "Shortest password accepted.", minimum=12, maximum=128),
    Setting("ARGON2_TIME_COST", "int", 3, "Argon2id passes.", minimum=1, maximum=20),
    Setting("ARGON2_MEMORY_KIB", "int", 65536, "Argon2id memory in KiB.", minimum=8, maximum=4_194_304),
    Setting("ARGON2_PARALLELISM", "int", 4, "Argon2id lanes.", minimum=1, maximum=16),
    Setting("TOTP_ISSUER", "str", "Intake",
            "Name authenticator apps show beside the username. Pick one that draws no attention if a phone is "
            "searched."),
    Setting("DEFAULT_LOCALE", "choice", "en", "Language used when neither the person nor the browser chose one.",
            choices=LOCALES),
    Setting("TRUSTED_PROXY_HOPS", "int", 0,
            "Number of reverse proxies in front whose `X-Forwarded-*` headers are trusted.", minimum=0, maximum=5),
    Setting("LOG_LEVEL", "choice", "INFO", "Log level of the JSON logs on standard error.",
            choices=("DEBUG", "INFO", "WARNING", "ERROR")),
)

SETTINGS_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
