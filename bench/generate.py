"""Synthetic data: ``python -m bench.generate [--db sqlite|postgresql] [--records N] [--seed S]
[--attachment-share F]``.

`generate(records)` fills the database of the current application context with `records` submitted testimonies,
written in bulk (SQLAlchemy Core, a few thousand rows per statement) instead of one interview at a time through the
wizard's operations, but each row is what those operations store: an anonymous person and a testimony, each with
its own data key wrapped under the keyring's primary KEK version; the narrative, the interview's details, every
incident's details and the consent's particulars sealed with `seal_value` under the testimony's key and bound to
their row; a consent version from the current script in the interview's language with every item confirmed (and
for some records a second version); one to three incidents with types from the vocabulary and places from the whole
gazetteer, as `intake.interviews.operations` validates and stores them (`incident_problems`, the same month and
region columns and sealed document). The interviews are in Armenian, Russian, English and Azerbaijani in fixed
shares, and every free text the person or the interviewer gave (the narrative, each incident's description, place,
victims and alleged perpetrators, the referral's note) is in the interview's language. A share of the records has
photos (JPEG or PNG) or scanned documents (PDF) of a few KB to 200 KB, stored through `store_attachment` as the
service stores them (sniffed, hashed, sealed as a chunked stream in the configured blob store, `attachment_stored`
audited), within the media the consent covers. Most records are assigned to the bench reviewer through rows like
`assign` writes; some consents are withdrawn, a few with erasure, through `record_withdrawal` itself, so those
records leave the queue exactly as in service. The records' own audit events (created, consent recorded, submitted)
are not written.

Two things differ from the service on purpose. The records' statuses are drawn from submitted, in_review, reviewed
and archived in fixed shares (`STATUSES`), because the reviewer pages show and filter by them, although no service
code moves a record past submitted. And the attachments are stored after the records were written as submitted,
through `store_attachment` directly: the service adds them through `store_interview_attachment`, only to a draft or
within the correction window, which most of these records are past.

The command line makes a throw-away instance (keyring, migrated database: SQLite in a temporary folder, or the
PostgreSQL database of ``--postgres-url``, dropped and recreated, and dropped at the end), fills it, and writes what
it made and how long each phase took to bench/results/generate-<UTC timestamp>.{md,json}. Exit status: 0 when the
database was filled, 2 when it could not be, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import secrets
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from types import FrameType
from typing import Any

import sqlalchemy as sa

from bench.databases import (
    POSTGRESQL,
    SQLITE,
    DatabaseError,
    drop_postgres_database,
    postgres_server_version,
    recreate_postgres_database,
    sqlite_url,
)
from bench.instance import PROJECT_ROOT
from bench.report import RESULTS_DIR, describe_machine, utc_now

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 2, 130
DEFAULT_RECORDS = 100_000
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/intake_bench_generate"
REVIEWER = "bench-reviewer"
REVIEWER_PASSWORD = "correct horse battery staple 42"
COORDINATOR = "bench-coordinator"
TEAMS = ("north", "south", "syunik", "lachin", "yerevan", "goris")
INTERVIEWERS_PER_TEAM = 4
BATCH = 2_000
SEED = 2023
KIB = 1024

# Shares of the records: assigned to the bench reviewer; consent withdrawn (wholly, for documentation, or only for
# another purpose, which leaves the record in the queue); erased at the person's request; with a second version;
# with attachments (of those, some with a second one).
ASSIGNED = 0.9
WITHDRAWN = 0.03
ERASED = 0.002
SECOND_VERSION = 0.05
ATTACHMENT_SHARE = 0.1
SECOND_ATTACHMENT = 0.25
# How many openable records `Generated.openable` lists, spread over the whole id range.
OPENED = 1_000

# The most frequent incident types first: the shares fall off like a survey's would (harmonic weights), so that
# shelling or displacement fill the queue and the rarest types are a few hundred records in 100,000.
COMMON_TYPES = ("shelling", "forced_displacement", "drone_strike", "destruction_of_home", "checkpoint_detention",
                "denial_of_food_medicine_fuel", "family_separation", "road_corridor_blockade", "small_arms_fire",
                "unlawful_killing_civilian", "arbitrary_detention", "looting_pillage", "threats_intimidation")
# The interviews' languages and their shares; every record's free text is in its interview's language.
LANGUAGES = (("hy", 70), ("ru", 20), ("en", 7), ("az", 3))
STATUSES = (("submitted", 70), ("in_review", 20), ("reviewed", 8), ("archived", 2))
# The periods most testimony is about: the 2020 war, the blockade of the Lachin corridor, the 2023 exodus.
PERIODS = ((date(2020, 9, 27), date(2020, 11, 10), 40), (date(2022, 12, 12), date(2023, 9, 18), 25),
           (date(2023, 9, 19), date(2023, 10, 15), 30), (date(2016, 4, 1), date(2022, 12, 11), 5))
# How often a place of each kind is named: towns and cities (where most people lived) far more than villages, the
# corridor and its checkpoint more than their size says; a whole region only when the person names no place in it.
KIND_WEIGHTS = {"city": 30.0, "town": 12.0, "corridor": 10.0, "checkpoint": 8.0, "road": 6.0, "district": 6.0,
                "crossing": 5.0, "village": 3.0, "region": 2.0}
# Incidents that happen on the road: mostly at a checkpoint, on a road or the corridor.
# Most testimony is about Nagorno-Karabakh, where the war, the blockade and the exodus happened.
REGION_WEIGHTS = {"nagorno-karabakh": 2.0, "armenia": 1.0, "azerbaijan": 1.0}
ROAD_TYPES = {"checkpoint_detention": ("checkpoint", "crossing", "road", "corridor"),
              "road_corridor_blockade": ("corridor", "road", "checkpoint")}
ROAD_SHARE = 0.7

# First-person testimony in each language: civilians' experiences, no one's real name.
SENTENCES: dict[str, tuple[str, ...]] = {
    "en": (
        "On the morning of the nineteenth the shelling started while we were at the market.",
        "We ran to the basement of the school with our neighbours and stayed there two days without water.",
        "When we came out our street was burnt and my brother's house was gone.",
        "On the road to Kornidzor men in uniform stopped our car at the bridge and took my husband's phone.",
        "They kept him for three hours before letting us go, and nobody told us why.",
        "There was no bread for weeks during the blockade; the children queued for it at dawn.",
        "The drone came twice over the village, the second time it hit the school yard.",
        "My father refused to leave the house, and we have not heard from him since October.",
        "We left with what we could carry, forty hours on the road to Goris.",
        "A neighbour saw soldiers take two men from the checkpoint into a car without plates.",
    ),
    "hy": (
        "Տասնիններորդ օրվա առավոտյան, երբ շուկայում էինք, սկսվեց հրետակոծությունը։",
        "Հարևանների հետ վազեցինք դպրոցի նկուղ և երկու օր մնացինք այնտեղ առանց ջրի։",
        "Երբ դուրս եկանք, մեր փողոցն այրված էր, իսկ եղբորս տունն այլևս չկար։",
        "Կոռնիձոր տանող ճանապարհին համազգեստով մարդիկ կամրջի մոտ կանգնեցրին մեր մեքենան և վերցրին ամուսնուս "
        "հեռախոսը։",
        "Նրան երեք ժամ պահեցին, հետո բաց թողեցին, և ոչ ոք չասաց, թե ինչու։",
        "Շրջափակման ժամանակ շաբաթներով հաց չկար, երեխաները լուսաբացին հերթ էին կանգնում։",
        "Անօդաչու սարքը երկու անգամ անցավ գյուղի վրայով, երկրորդ անգամ խոցեց դպրոցի բակը։",
        "Հայրս հրաժարվեց լքել տունը, և հոկտեմբերից ի վեր նրանից լուր չունենք։",
        "Հեռացանք այն ամենով, ինչ կարող էինք տանել, քառասուն ժամ ճանապարհին էինք մինչև Գորիս։",
        "Հարևանը տեսավ, թե ինչպես զինվորներն անցակետից երկու տղամարդու նստեցրին առանց համարանիշի մեքենա։",
    ),
    "ru": (
        "Утром девятнадцатого начался обстрел, когда мы были на рынке.",
        "Мы с соседями спустились в подвал школы и просидели там два дня без воды.",
        "Когда мы вышли, наша улица была сожжена, а дома моего брата больше не было.",
        "На дороге в Корнидзор люди в форме остановили нашу машину у моста и забрали телефон мужа.",
        "Его продержали три часа, потом отпустили, и никто не объяснил почему.",
        "Во время блокады неделями не было хлеба, дети с рассвета стояли в очереди.",
        "Беспилотник дважды пролетал над селом, во второй раз он попал во двор школы.",
        "Отец отказался уходить из дома, и с октября мы ничего о нём не знаем.",
        "Мы ушли с тем, что могли унести, и сорок часов ехали до Гориса.",
        "Соседка видела, как солдаты увели двух мужчин с блокпоста в машину без номеров.",
    ),
    "az": (
        "Səhər tezdən kəndimiz artilleriya atəşinə tutuldu, biz o vaxt bazarda idik.",
        "Qonşularla birlikdə məktəbin zirzəmisinə qaçdıq və iki gün susuz orada qaldıq.",
        "Çölə çıxanda küçəmiz yanmışdı, qardaşımın evi isə yerlə yeksan olmuşdu.",
        "Yolda hərbi geyimli adamlar maşınımızı körpünün yanında saxladılar və ərimin telefonunu aldılar.",
        "Onu üç saat saxladılar, sonra buraxdılar, heç kim səbəbini demədi.",
        "Yol bağlı olanda həftələrlə çörək yox idi, uşaqlar sübh çağı növbəyə dururdular.",
        "Pilotsuz uçan aparat kəndin üstündən iki dəfə keçdi, ikinci dəfə məktəbin həyətinə düşdü.",
        "Atam evdən çıxmaq istəmədi, oktyabrdan bəri ondan heç bir xəbər yoxdur.",
        "Götürə bildiyimiz əşyalarla evi tərk etdik, yolda qırx saat keçdi.",
        "Qonşumuz əsgərlərin iki kişini keçid məntəqəsindən nömrəsiz maşına mindirdiyini gördü.",
    ),
}

# What an incident's type is about, for its description.
THEMES = {
    **dict.fromkeys(("shelling", "rocket_missile_strike", "cluster_munition_strike", "drone_strike", "air_strike",
                     "small_arms_fire", "attack_on_medical", "attack_on_school", "attack_on_cultural_religious_site",
                     "attack_on_humanitarian", "landmine_uxo", "unlawful_killing_civilian"), "strike"),
    **dict.fromkeys(("arbitrary_detention", "checkpoint_detention", "hostage_taking", "torture",
                     "cruel_degrading_treatment", "threats_intimidation"), "detention"),
    **dict.fromkeys(("enforced_disappearance", "family_separation"), "missing"),
    **dict.fromkeys(("road_corridor_blockade", "denial_of_food_medicine_fuel", "denial_of_medical_evacuation",
                     "utilities_cut", "denial_of_humanitarian_access"), "blockade"),
    **dict.fromkeys(("forced_displacement", "deportation_forcible_transfer", "denial_of_return"), "displacement"),
    **dict.fromkeys(("destruction_of_home", "looting_pillage", "seizure_of_property"), "property"),
}
DESCRIPTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "strike": ("Shells fell on the houses near the school.",
                   "A drone hit the yard while the children were outside."),
        "detention": ("Our car was stopped at the checkpoint and my husband was taken away.",
                      "They held us for hours and took our phones."),
        "missing": ("My brother was taken and we have had no news since.",
                    "We lost each other on the road and I still do not know where my son is."),
        "blockade": ("The road was closed and no food or medicine came in.",
                     "There was no gas or electricity for weeks."),
        "displacement": ("We were told to leave the village within a day.",
                         "We left at night with the neighbours and could not go back."),
        "property": ("Our house was burnt and everything in it was taken.",
                     "When we came back the shop had been emptied."),
        "other": ("It happened in the house; I do not want to say more now.",
                  "I saw it myself and told the interviewer what I remember."),
    },
    "hy": {
        "strike": ("Արկերն ընկնում էին դպրոցի մոտ գտնվող տների վրա։",
                   "Անօդաչուն խոցեց բակը, երբ երեխաները դրսում էին։"),
        "detention": ("Մեր մեքենան կանգնեցրին անցակետում և տարան ամուսնուս։",
                      "Մեզ ժամերով պահեցին և վերցրին մեր հեռախոսները։"),
        "missing": ("Եղբորս տարան, և այդ օրվանից նրանից լուր չունենք։",
                    "Ճանապարհին իրար կորցրինք, և ես դեռ չգիտեմ, թե որտեղ է որդիս։"),
        "blockade": ("Ճանապարհը փակեցին, ոչ սնունդ կար, ոչ դեղ։",
                     "Շաբաթներով ոչ գազ կար, ոչ լույս։"),
        "displacement": ("Մեզ ասացին մեկ օրում լքել գյուղը։",
                         "Գիշերը հարևանների հետ հեռացանք և չկարողացանք վերադառնալ։"),
        "property": ("Մեր տունն այրեցին, իսկ ներսում եղած ամեն ինչ տարան։",
                     "Երբ վերադարձանք, խանութը դատարկված էր։"),
        "other": ("Դա տանը պատահեց, հիմա ավելին չեմ ուզում ասել։",
                  "Ինքս տեսա դա և պատմեցի այն, ինչ հիշում եմ։"),
    },
    "ru": {
        "strike": ("Снаряды падали на дома возле школы.",
                   "Беспилотник ударил во двор, когда дети были на улице."),
        "detention": ("Нашу машину остановили на блокпосту и увели мужа.",
                      "Нас держали несколько часов и забрали телефоны."),
        "missing": ("Брата увели, и с тех пор о нём нет вестей.",
                    "Мы потеряли друг друга на дороге, и я до сих пор не знаю, где мой сын."),
        "blockade": ("Дорогу закрыли, не было ни еды, ни лекарств.",
                     "Неделями не было ни газа, ни света."),
        "displacement": ("Нам сказали покинуть село за один день.",
                         "Мы ушли ночью вместе с соседями и не смогли вернуться."),
        "property": ("Наш дом сожгли, а всё, что в нём было, вывезли.",
                     "Когда мы вернулись, магазин был пуст."),
        "other": ("Это случилось в доме, больше я сейчас говорить не хочу.",
                  "Я видела это сама и рассказала всё, что помню."),
    },
    "az": {
        "strike": ("Mərmilər məktəbin yanındakı evlərin üstünə düşürdü.",
                   "Uşaqlar həyətdə olanda pilotsuz uçan aparat həyətə zərbə endirdi."),
        "detention": ("Maşınımızı keçid məntəqəsində saxladılar və ərimi apardılar.",
                      "Bizi saatlarla saxladılar və telefonlarımızı aldılar."),
        "missing": ("Qardaşımı apardılar, o vaxtdan ondan xəbər yoxdur.",
                    "Yolda bir-birimizi itirdik, oğlumun harada olduğunu hələ də bilmirəm."),
        "blockade": ("Yol bağlandı, nə ərzaq, nə də dərman gəlirdi.",
                     "Həftələrlə nə qaz, nə də işıq var idi."),
        "displacement": ("Bizə bir gün ərzində kəndi tərk etməyi dedilər.",
                         "Gecə qonşularla birlikdə çıxdıq və geri qayıda bilmədik."),
        "property": ("Evimizi yandırdılar, içindəki hər şeyi apardılar.",
                     "Qayıdanda dükan boşaldılmışdı."),
        "other": ("Bu evdə baş verdi, indi daha çox danışmaq istəmirəm.",
                  "Bunu öz gözlərimlə gördüm və xatırladıqlarımı danışdım."),
    },
}
# The other free text of an incident and of the referral ("" where the person said nothing more).
PLACE_DESCRIPTIONS = {
    "en": ("", "near the central market", "at the school", "on the road out of the village"),
    "hy": ("", "կենտրոնական շուկայի մոտ", "դպրոցի մոտ", "գյուղից դուրս եկող ճանապարհին"),
    "ru": ("", "возле центрального рынка", "у школы", "на дороге из села"),
    "az": ("", "mərkəzi bazarın yanında", "məktəbin yanında", "kənddən çıxan yolda"),
}
VICTIMS = {
    "en": ("", "two neighbours", "my brother", "an old woman from our street"),
    "hy": ("", "երկու հարևան", "եղբայրս", "մեր փողոցի մի տարեց կին"),
    "ru": ("", "двое соседей", "мой брат", "пожилая женщина с нашей улицы"),
    "az": ("", "iki qonşu", "qardaşım", "küçəmizdən yaşlı bir qadın"),
}
PERPETRATORS = {
    "en": ("men in uniform", "artillery from the east", "unknown"),
    "hy": ("համազգեստով մարդիկ", "արևելքից կրակող հրետանի", "անհայտ"),
    "ru": ("люди в форме", "артиллерия с востока", "неизвестно"),
    "az": ("hərbi geyimli adamlar", "şərqdən atəş açan artilleriya", "naməlum"),
}
REFERRAL_NOTES = {
    "en": ("Asked to be called back once the family has settled.",
           "Her mother needs a doctor; referred to the clinic."),
    "hy": ("Խնդրում է զանգահարել, երբ ընտանիքը տեղավորվի։", "Մորը բժիշկ է պետք, ուղղորդեցինք պոլիկլինիկա։"),
    "ru": ("Просит перезвонить, когда семья устроится.", "Матери нужен врач, направили в поликлинику."),
    "az": ("Ailə yerləşəndən sonra zəng edilməsini xahiş edir.", "Anasının həkimə ehtiyacı var, poliklinikaya "
           "göndərildi."),
}
REFERRAL_NOTE_SHARE = 0.2


def progress(message: str) -> None:
    print(f"[bench.generate] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# The attachments' bytes


def _png_head() -> bytes:
    import struct
    import zlib

    header = b"IHDR" + struct.pack(">IIBBBBB", 1600, 1200, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + header + struct.pack(">I", zlib.crc32(header))


@dataclass(frozen=True)
class MediaFormat:
    """A kind of file the generator attaches: its medium, the media type the service sniffs from its signature,
    the name a phone or a scanner gives it, and its sizes (log-uniform between the two, in bytes)."""

    medium: str
    media_type: str
    head: bytes
    filename: str
    smallest: int
    largest: int


JPEG = MediaFormat("photo", "image/jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00",
                   "IMG_{n:04d}.jpg", 8 * KIB, 200 * KIB)
PNG = MediaFormat("photo", "image/png", _png_head(), "Screenshot_{n:04d}.png", 8 * KIB, 200 * KIB)
PDF = MediaFormat("document", "application/pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "scan-{n:04d}.pdf",
                  3 * KIB, 160 * KIB)
# Mostly phone photos, some screenshots, some scanned documents.
FORMATS = ((JPEG, 60), (PNG, 15), (PDF, 25))
_HEADS = {"document": PDF.head, "photo": PNG.head}
_NAMES = {"document": "scan-{n}.pdf", "photo": "photo-{n}.png"}


def media_bytes(kind: MediaFormat, size: int, rng: random.Random | None = None) -> bytes:
    """`size` bytes that the service sniffs as `kind`: its signature, then random bytes (from `rng` if given, so
    that the same seed makes the same files)."""
    rest = size - len(kind.head)
    return kind.head + (rng.randbytes(rest) if rng is not None else os.urandom(rest))


def attachment_bytes(medium: str, size: int) -> bytes:
    """`size` bytes that the service sniffs as `medium` (a PDF document or a PNG photo)."""
    return media_bytes(PDF if medium == "document" else PNG, size)


def attachment_size(kind: MediaFormat, rng: random.Random) -> int:
    """A size between the format's smallest and largest, small files being the most common (log-uniform)."""
    return int(kind.smallest * (kind.largest / kind.smallest) ** rng.random())


# ---------------------------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class StoredAttachment:
    """An attachment the generator stored, and what its content was."""

    testimony_id: int
    attachment_id: int
    medium: str
    media_type: str
    size: int
    sha256: str


@dataclass
class Generated:
    """What `generate` made: the accounts, the records, and how long each phase took."""

    reviewer_id: int
    reviewer_secret: str
    records: int
    first_id: int
    last_id: int
    openable: list[int] = field(default_factory=list)  # assigned to the reviewer, consent standing, not erased
    counts: dict[str, int] = field(default_factory=dict)
    languages: dict[str, int] = field(default_factory=dict)
    incident_types: dict[str, int] = field(default_factory=dict)
    places: dict[str, int] = field(default_factory=dict)  # incidents per gazetteer id
    formats: dict[str, int] = field(default_factory=dict)  # attachments per media type
    attachments: list[StoredAttachment] = field(default_factory=list)
    withdrawals: dict[int, str] = field(default_factory=dict)  # testimony id -> whole, documentation, media, erasure
    seconds: dict[str, float] = field(default_factory=dict)


class _Row:
    """Stands for a row that is being built, so that `seal_value` binds what it seals to that row's table and id."""

    def __init__(self, table: sa.Table, row_id: int) -> None:
        self.__table__ = table
        self.id = row_id


class _Actor:
    """An account as `record_event` reads it, valid across the session's commits."""

    def __init__(self, account_id: int, roles: tuple[str, ...]) -> None:
        self.id = account_id
        self.role_names = roles


def _weighted(rng: random.Random, choices: Sequence[tuple[Any, int]]) -> Any:
    values = [c for c, _ in choices]
    return rng.choices(values, weights=[w for _, w in choices])[0]


def _allocate(total: int, choices: Sequence[tuple[Any, int]], rng: random.Random) -> list[Any]:
    """`total` values in exactly the shares of `choices` (largest remainders), in random order."""
    weight = sum(w for _, w in choices)
    exact = [(value, total * w / weight) for value, w in choices]
    counts = {value: int(share) for value, share in exact}
    by_remainder = sorted(exact, key=lambda item: item[1] - int(item[1]), reverse=True)
    for value, _ in by_remainder[:total - sum(counts.values())]:
        counts[value] += 1
    values = [value for value, _ in choices for _ in range(counts[value])]
    rng.shuffle(values)
    return values


def _type_weights() -> list[tuple[str, float]]:
    from intake.core import vocabulary

    ids = [t.id for t in vocabulary.incident_types()]
    ordered = [t for t in COMMON_TYPES if t in ids] + [t for t in ids if t not in COMMON_TYPES]
    return [(t, 1.0 / (rank + 1)) for rank, t in enumerate(ordered)]


class PlacePicker:
    """Draws an incident's place from the whole gazetteer, a place as often as its kind's weight (`KIND_WEIGHTS`)
    times its region's (`REGION_WEIGHTS`) says, and an incident on the road (`ROAD_TYPES`) mostly at one of the
    road's places."""

    def __init__(self, places: Sequence[Any] | None = None) -> None:
        from intake.core import gazetteer

        self.places = list(places if places is not None else gazetteer.places())
        self._all = self._table(self.places)
        self._road = {kind: self._table([p for p in self.places if p.kind in kinds])
                      for kind, kinds in ROAD_TYPES.items()}

    @staticmethod
    def _table(places: list[Any]) -> tuple[list[Any], list[float]]:
        return places, list(accumulate(KIND_WEIGHTS.get(p.kind, 1.0) * REGION_WEIGHTS.get(p.region, 1.0)
                                       for p in places))

    def pick(self, rng: random.Random, incident_type: str = "") -> Any:
        places, cumulative = self._all
        road = self._road.get(incident_type)
        if road is not None and road[0] and rng.random() < ROAD_SHARE:
            places, cumulative = road
        return rng.choices(places, cum_weights=cumulative)[0]


def _day(rng: random.Random) -> date:
    start, end, _ = rng.choices(PERIODS, weights=[p[2] for p in PERIODS])[0]
    return start + timedelta(days=rng.randrange((end - start).days + 1))


def _incident(rng: random.Random, types: list[tuple[str, float]], places: Sequence[Any] | PlacePicker,
              language: str = "en") -> Any:
    """One incident as an interviewer records it, its free text in `language`; its place drawn by a `PlacePicker`
    or, from a plain list of places, evenly."""
    from intake.interviews.operations import INVOLVEMENT, SOURCE_RELATIONS, IncidentInput, Perpetrator

    kind = rng.choices([t for t, _ in types], weights=[w for _, w in types])[0]
    place = places.pick(rng, kind) if isinstance(places, PlacePicker) else rng.choice(places)
    day = _day(rng)
    precision = rng.choices(("day", "month", "range", "approximate", "unknown"), weights=(55, 20, 10, 10, 5))[0]
    start = {"day": day.isoformat(), "approximate": day.isoformat(), "range": day.isoformat(),
             "month": day.isoformat()[:7], "unknown": ""}[precision]
    end = (day + timedelta(days=rng.randrange(1, 5))).isoformat() if precision == "range" else ""
    return IncidentInput(
        type=kind, description=rng.choice(DESCRIPTIONS[language][THEMES.get(kind, "other")]),
        date_precision=precision, date_start=start, date_end=end, place_id=place.id,
        place_description=rng.choice(PLACE_DESCRIPTIONS[language]), victims_count=rng.randrange(0, 6),
        victims_description=rng.choice(VICTIMS[language]),
        perpetrators=(Perpetrator(description=rng.choice(PERPETRATORS[language]), unit="",
                                  involvement=rng.choice(INVOLVEMENT)),),
        source_relation=rng.choice(SOURCE_RELATIONS),
        declined=frozenset(rng.sample(("perpetrators", "victims"), rng.choice((0, 0, 0, 1)))))


def narrative(rng: random.Random, language: str) -> str:
    """Three to ten of the language's sentences, in a person's order."""
    bank = SENTENCES[language]
    return " ".join(rng.sample(bank, rng.randrange(3, len(bank) + 1)))


def _ids_from(conn: sa.Connection, table: sa.Table) -> int:
    return int(conn.scalar(sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0))) or 0) + 1


def _accounts(rng: random.Random) -> tuple[int, int, str, list[int]]:
    """The reviewer (who signs in: a password and a two-factor seed), a coordinator (who assigns and records
    withdrawals) and the interviewers of each team (who never sign in here); their ids and the reviewer's seed."""
    import pyotp

    from intake.accounts import operations as accounts
    from intake.core.db import db

    secret = pyotp.random_base32()
    reviewer = accounts.create_account(username=REVIEWER, roles=["reviewer"], password=REVIEWER_PASSWORD,
                                       totp_secret=secret)
    coordinator = accounts.create_account(username=COORDINATOR, roles=["coordinator"])
    interviewers = []
    for team in TEAMS:
        for n in range(INTERVIEWERS_PER_TEAM):
            account = accounts.create_account(username=f"bench-{team}-{n + 1}", roles=["interviewer"])
            account.team = team
            interviewers.append(account)
    db.session.flush()
    ids = [a.id for a in interviewers]
    rng.shuffle(ids)
    return reviewer.id, coordinator.id, secret, ids


def _pseudonyms(rng: random.Random, prefix: str, count: int) -> list[str]:
    from intake.identities.operations import PSEUDONYM_ALPHABET

    seen: set[str] = set()
    while len(seen) < count:
        chars = "".join(rng.choice(PSEUDONYM_ALPHABET) for _ in range(6))
        seen.add(f"{prefix}-{chars[:4]}-{chars[4:]}")
    codes = sorted(seen)
    rng.shuffle(codes)
    return codes


def _batches(total: int, size: int) -> Iterator[range]:
    for start in range(0, total, size):
        yield range(start, min(total, start + size))


def generate(records: int = DEFAULT_RECORDS, *, seed: int = SEED, batch: int = BATCH,
             attachment_share: float = ATTACHMENT_SHARE, report: Callable[[str], None] | None = None) -> Generated:
    """Fill the current application's database with `records` submitted testimonies (see the module docstring),
    `attachment_share` of them with attachments; commits as it goes. The database must hold no bench accounts."""
    from flask import current_app

    from consent import scripts
    from consent.records import Purpose, ScriptItem
    from intake.accounts.models import Account
    from intake.consents.models import ConsentRecord
    from intake.consents.operations import ConsentInput, consent_problems, record_withdrawal
    from intake.core.access.models import Assignment
    from intake.core.crypto import keyring_holding
    from intake.core.crypto.datakeys import primary_kek_version
    from intake.core.crypto.envelope import OpenDataKey, new_data_key, wrap_data_key
    from intake.core.crypto.fields import seal_value
    from intake.core.crypto.models import DataKey
    from intake.core.db import db
    from intake.identities.models import Person
    from intake.interviews.operations import _incident_columns, _incident_document, incident_problems
    from intake.testimonies.models import Incident, Testimony
    from intake.testimonies.operations import store_attachment

    if not 0.0 <= attachment_share <= 1.0:
        raise ValueError("attachment_share must be between 0 and 1")
    say = report or (lambda text: None)
    began = time.perf_counter()
    seconds: dict[str, float] = {}
    rng = random.Random(seed)
    content_rng = random.Random(seed + 1)
    config = current_app.config
    reviewer_id, coordinator_id, secret, interviewers = _accounts(rng)
    db.session.commit()

    types = _type_weights()
    picker = PlacePicker()
    version = primary_kek_version(db.session(), lock=False)
    kek = keyring_holding(version).kek(version)
    script_of = {language: scripts.latest(language) for language, _ in LANGUAGES}
    items = sorted(i.value for i in ScriptItem)
    media = ["document", "photo"]
    allowed_media = frozenset(media)
    tables: dict[str, sa.Table] = {name: model.__table__ for name, model in (  # type: ignore[misc]
        ("keys", DataKey), ("persons", Person), ("testimonies", Testimony), ("incidents", Incident),
        ("consents", ConsentRecord), ("assignments", Assignment))}
    named = {t.name: t for t in tables.values()}
    conn = db.session.connection()
    next_id = {name: _ids_from(conn, tables[name]) for name in ("persons", "testimonies", "incidents", "consents")}
    first_id = next_id["testimonies"]
    pseudonyms = _pseudonyms(rng, config["PSEUDONYM_PREFIX"], records)
    languages = _allocate(records, LANGUAGES, rng)
    today = datetime.now(UTC).date()
    # Submissions spread over the last three years, in id order as they would have arrived.
    now = datetime.now(UTC).replace(microsecond=0)
    span = timedelta(days=3 * 365)
    used_key_ids: set[int] = set()
    counts = {"incidents": 0, "assigned": 0, "second_versions": 0, "attachments": 0, "photos": 0, "documents": 0,
              "attachment_bytes": 0, "records_with_attachments": 0}
    language_counts: Counter[str] = Counter()
    type_counts: Counter[str] = Counter()
    place_counts: Counter[str] = Counter()
    format_counts: Counter[str] = Counter()
    stored_attachments: list[StoredAttachment] = []
    consents_checked: set[tuple[str, int]] = set()  # (script language, version) whose consent passed the checks
    seconds["accounts"] = time.perf_counter() - began
    record_seconds = attachment_seconds = 0.0

    def data_key(owner: str, made: datetime) -> tuple[dict[str, Any], OpenDataKey]:
        key_id = secrets.randbits(63) or 1
        while key_id in used_key_ids:
            key_id = secrets.randbits(63) or 1
        used_key_ids.add(key_id)
        key = new_data_key()
        return ({"id": key_id, "owner": owner, "kek_version": version, "created_at": made,
                 "wrapped": wrap_data_key(kek, version, key, key_id=key_id, owner=owner)}, OpenDataKey(key_id, key))

    def sealed(table: str, row_id: int, column: str, value: Any, key: OpenDataKey) -> bytes:
        row = _Row(named[table], row_id)
        seal_value(row, column, value, key=key)
        return bytes(getattr(row, column))

    for chunk in _batches(records, batch):
        started_batch = time.perf_counter()
        keys, persons, testimonies, incidents, consents, assignments = [], [], [], [], [], []
        # The attachments of this batch's records: testimony id -> (interviewer, interview time, formats, sizes).
        planned: dict[int, tuple[int, datetime, list[tuple[MediaFormat, int]]]] = {}
        for n in chunk:
            submitted = now - span + span * (n + 1) / (records + 1) - timedelta(minutes=rng.randrange(60))
            started = submitted - timedelta(minutes=rng.randrange(40, 180))
            language = languages[n]
            language_counts[language] += 1
            interviewer = interviewers[n % len(interviewers)]
            person_key, _ = data_key("person", started)
            person_id = next_id["persons"]
            next_id["persons"] += 1
            keys.append(person_key)
            persons.append({"id": person_id, "pseudonym": pseudonyms[n], "data_key_id": person_key["id"],
                            "identity": None, "name_tag": None, "other_name_tag": None, "created_at": started,
                            "created_by_id": interviewer})
            testimony_key, open_key = data_key("testimony", started)
            keys.append(testimony_key)
            testimony_id = next_id["testimonies"]
            next_id["testimonies"] += 1
            told = [_incident(rng, types, picker, language)
                    for _ in range(rng.choices((1, 2, 3), weights=(50, 35, 15))[0])]
            for given in told:
                problems = incident_problems(given, today=today)
                if problems:
                    raise RuntimeError(f"generated incident refused: {problems}")
                month, region = _incident_columns(given)
                incident_id = next_id["incidents"]
                next_id["incidents"] += 1
                type_counts[given.type] += 1
                place_counts[given.place_id] += 1
                incidents.append({"id": incident_id, "testimony_id": testimony_id, "type": given.type,
                                  "month": month, "region": region, "created_at": started,
                                  "details": sealed("incidents", incident_id, "details",
                                                    _incident_document(given), open_key)})
            note = rng.choice(REFERRAL_NOTES[language]) if rng.random() < REFERRAL_NOTE_SHARE else ""
            details = {"readiness": {"private_place": True, "no_observers": True, "interpreter": "not_needed",
                                     "support_available": True, "risk": "low", "risk_mitigated": False},
                       "declined": [], "pauses": [],
                       "referral": {"outcome": "accepted", "services": ["psychosocial"], "wellbeing": "settled",
                                    "note": note}}
            testimonies.append({
                "id": testimony_id, "pseudonym": pseudonyms[n], "interviewer_id": interviewer,
                "data_key_id": testimony_key["id"], "status": _weighted(rng, STATUSES), "language": language,
                "region": None, "interviewed_on": started.date(), "revision": 4 + len(told),
                "submitted_at": submitted, "idempotency_key": None, "submission_digest": None,
                "submission_key": secrets.token_hex(12), "created_at": started, "updated_at": submitted,
                "narrative": sealed("testimonies", testimony_id, "narrative", narrative(rng, language), open_key),
                "details": sealed("testimonies", testimony_id, "details", details, open_key)})
            script = script_of[language]
            versions = 2 if rng.random() < SECOND_VERSION else 1
            counts["second_versions"] += versions - 1
            for number in range(1, versions + 1):
                consent_id = next_id["consents"]
                next_id["consents"] += 1
                grants = {Purpose.DOCUMENTATION.value: "pseudonymous", Purpose.UN_MECHANISMS.value: "anonymous"}
                if number == 2:
                    grants[Purpose.INTERNATIONAL_JUSTICE.value] = "confidential"
                given = ConsentInput(script_language=script.language, items_confirmed=frozenset(items),
                                     method="written", capacity_confirmed=True, voluntariness_confirmed=True,
                                     grants=grants, media=allowed_media, exclusions=(("authorities_of", "AZ"),))
                if (script.language, number) not in consents_checked:
                    problems = consent_problems(given, today=today)
                    if problems:
                        raise RuntimeError(f"generated consent refused: {problems}")
                    consents_checked.add((script.language, number))
                # The row record_consent would store for it.
                consents.append({
                    "id": consent_id, "testimony_id": testimony_id, "number": number,
                    # A later version is never dated after now: a consent not yet given permits nothing.
                    "recorded_at": started if number == 1
                    else min(submitted + timedelta(days=rng.randrange(1, 60)), now - timedelta(minutes=1)),
                    "recorded_by_id": interviewer, "script_language": script.language, "script_hash": script.hash,
                    "method": given.method, "items": sorted(given.items_confirmed),
                    "capacity_confirmed": given.capacity_confirmed,
                    "voluntariness_confirmed": given.voluntariness_confirmed,
                    "witness_present": bool(given.witness.strip()),
                    "interpreter_present": bool(given.interpreter.strip()), "is_minor": given.is_minor,
                    "guardian_consented": False, "child_assented": False, "best_interests_given": False,
                    "grants": dict(sorted(given.grants.items())), "media": sorted(given.media),
                    "exclusions": [[k, v] for k, v in sorted(set(given.exclusions))],
                    "follow_up_permitted": given.follow_up_permitted, "review_date": given.review_date,
                    "particulars": sealed("consent_versions", consent_id, "particulars",
                                          {"witness": "", "interpreter": "", "best_interests_note": "",
                                           "follow_up": None}, open_key)})
            if rng.random() < ASSIGNED:
                assignments.append({"testimony_id": testimony_id, "reviewer_id": reviewer_id,
                                    "assigned_at": submitted + timedelta(hours=rng.randrange(1, 72)),
                                    "assigned_by_id": coordinator_id})
            if rng.random() < attachment_share:
                files = [_weighted(rng, FORMATS) for _ in range(2 if rng.random() < SECOND_ATTACHMENT else 1)]
                planned[testimony_id] = (interviewer, started, [(kind, attachment_size(kind, rng)) for kind in files])
        for name, rows in (("keys", keys), ("persons", persons), ("testimonies", testimonies),
                           ("incidents", incidents), ("consents", consents), ("assignments", assignments)):
            if rows:
                conn.execute(tables[name].insert(), rows)
        counts["incidents"] += len(incidents)
        counts["assigned"] += len(assignments)
        middle = time.perf_counter()
        record_seconds += middle - started_batch
        if planned:
            stored = {t.id: t for t in db.session.scalars(sa.select(Testimony)
                                                          .where(Testimony.id.in_(list(planned))))}
            for testimony_id, (interviewer, started, files) in planned.items():
                testimony = stored[testimony_id]
                actor = _Actor(interviewer, ("interviewer",))
                for number, (kind, size) in enumerate(files, start=1):
                    content = media_bytes(kind, size, content_rng)
                    name = kind.filename.format(n=content_rng.randrange(1, 10_000))
                    attachment = store_attachment(testimony, io.BytesIO(content), filename=name, actor=actor,
                                                  config=config, allowed_media=allowed_media,
                                                  declared_medium=kind.medium)
                    attachment.created_at = started + timedelta(minutes=10 * number)
                    stored_attachments.append(StoredAttachment(testimony_id, attachment.id, kind.medium,
                                                               kind.media_type, size,
                                                               hashlib.sha256(content).hexdigest()))
                    format_counts[kind.media_type] += 1
                    counts["attachments"] += 1
                    counts["photos" if kind.medium == "photo" else "documents"] += 1
                    counts["attachment_bytes"] += size
            counts["records_with_attachments"] += len(planned)
        db.session.commit()
        db.session.expunge_all()
        conn = db.session.connection()
        attachment_seconds += time.perf_counter() - middle
        say(f"{chunk.stop:,} of {records:,} records, {counts['attachments']:,} attachments")
    last_id = next_id["testimonies"] - 1
    seconds["records"] = record_seconds
    seconds["attachments"] = attachment_seconds

    began_phase = time.perf_counter()
    if conn.dialect.name == "postgresql":
        for name in ("persons", "testimonies", "incidents", "consents"):
            table = tables[name].name
            conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                 f"(SELECT max(id) FROM {table}))")
        db.session.commit()
        conn = db.session.connection()

    coordinator = db.session.get(Account, coordinator_id)
    withdrawn = rng.sample(range(first_id, last_id + 1), int(records * WITHDRAWN))
    erased = set(withdrawn[:int(records * ERASED)])
    withdrawals: dict[int, str] = {}
    for at, testimony_id in enumerate(withdrawn):
        which = at % 3
        purposes = [] if which == 0 or testimony_id in erased else (
            ["documentation"] if which == 1 else ["media"])
        withdrawals[testimony_id] = "erasure" if testimony_id in erased else ("whole", "documentation", "media")[which]
        record_withdrawal(db.session.get(Testimony, testimony_id), purposes=purposes,
                          received_how=rng.choice(("in_person", "phone", "message")),
                          erasure=testimony_id in erased, actor=coordinator, config=config)
        if at % 200 == 199:
            db.session.commit()
    db.session.commit()
    stopped = {t for t, kind in withdrawals.items() if kind != "media"}
    counts.update({"records": records, "withdrawn": len(withdrawn), "erased": len(erased),
                   "withdrawn_for_documentation": len(stopped)})
    seconds["withdrawals"] = time.perf_counter() - began_phase
    began_phase = time.perf_counter()
    if conn.dialect.name == "postgresql":
        db.session.remove()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as raw:
            raw.exec_driver_sql("VACUUM ANALYZE")
    seconds["analyze"] = time.perf_counter() - began_phase

    assigned = set(db.session.scalars(sa.select(Assignment.testimony_id)
                                      .where(Assignment.reviewer_id == reviewer_id)))
    openable = sorted(assigned - stopped)
    step = max(1, len(openable) // OPENED)
    seconds["total"] = time.perf_counter() - began
    return Generated(
        reviewer_id=reviewer_id, reviewer_secret=secret, records=records, first_id=first_id, last_id=last_id,
        openable=openable[::step][:OPENED], counts=counts,
        languages={language: language_counts[language] for language, _ in LANGUAGES if language_counts[language]},
        incident_types=dict(type_counts.most_common()), places=dict(place_counts.most_common()),
        formats=dict(format_counts.most_common()), attachments=stored_attachments, withdrawals=withdrawals,
        seconds={name: round(value, 2) for name, value in seconds.items()})


# ---------------------------------------------------------------------------------------------------------------
# The command line: a throw-away instance, filled, and a report of what it holds


@dataclass
class Run:
    started_at: datetime
    machine: dict[str, Any]
    settings: dict[str, Any]
    figures: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def figures_of(generated: Generated, gazetteer_places: int) -> dict[str, Any]:
    """What the report shows of a run: counts, shares, places touched, attachments and times."""
    total = generated.seconds.get("total", 0.0)
    return {
        "records": generated.records, "counts": generated.counts, "languages": generated.languages,
        "incident_types_top10": dict(list(generated.incident_types.items())[:10]),
        "incident_types": len(generated.incident_types),
        "places_touched": len(generated.places), "gazetteer_places": gazetteer_places,
        "rarest_places": dict(list(generated.places.items())[-5:]),
        "commonest_places": dict(list(generated.places.items())[:5]),
        "attachment_formats": generated.formats, "seconds": generated.seconds,
        "records_per_s": round(generated.records / total, 1) if total else None,
    }


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "—"


def render_markdown(run: Run) -> str:
    figures = run.figures
    counts = figures["counts"]
    seconds = figures["seconds"]
    machine = run.machine
    records = figures["records"]
    lines = [f"# Data generator {run.started_at:%Y-%m-%d %H:%M:%S} UTC", "",
             f"{records:,} submitted records on {run.settings['database']} in {seconds['total']:.1f} s: "
             f"{figures['records_per_s']:,.0f} records/s.", "",
             "| phase | seconds |", "| --- | ---: |"]
    lines += [f"| {name} | {value:.2f} |" for name, value in seconds.items() if name != "total"]
    lines += [f"| total | {seconds['total']:.2f} |", "",
              "| language | records | share |", "| --- | ---: | ---: |"]
    lines += [f"| {language} | {n:,} | {_share(n, records)} |" for language, n in figures["languages"].items()]
    lines += ["", f"{counts['incidents']:,} incidents of {figures['incident_types']} types; the ten commonest:", "",
              "| incident type | incidents | share |", "| --- | ---: | ---: |"]
    lines += [f"| {kind} | {n:,} | {_share(n, counts['incidents'])} |"
              for kind, n in figures["incident_types_top10"].items()]
    lines += ["", f"Places: {figures['places_touched']} of the gazetteer's {figures['gazetteer_places']} touched; "
              "commonest " + ", ".join(f"{p} {n:,}" for p, n in figures["commonest_places"].items())
              + "; rarest " + ", ".join(f"{p} {n:,}" for p, n in figures["rarest_places"].items()) + ".", "",
              f"Attachments: {counts['attachments']:,} on {counts['records_with_attachments']:,} records "
              f"({counts['photos']:,} photos, {counts['documents']:,} documents; "
              + ", ".join(f"{t} {n:,}" for t, n in figures["attachment_formats"].items())
              + f"), {counts['attachment_bytes']:,} bytes ({counts['attachment_bytes'] / (1 << 20):,.1f} MiB), "
              "stored through store_attachment.", "",
              f"Access: {counts['assigned']:,} assigned to the bench reviewer; {counts['withdrawn']:,} withdrawals "
              f"({counts['withdrawn_for_documentation']:,} stopping documentation, {counts['erased']:,} with "
              f"erasure); {counts['second_versions']:,} second consent versions.", ""]
    if run.notes:
        lines += ["Notes:", *(f"- {note}" for note in run.notes), ""]
    settings = run.settings
    lines += [
        f"Settings: seed {settings['seed']}, {settings['batch']:,} records per batch, attachment share "
        f"{settings['attachment_share']}, blob storage {settings['blob_storage']}", "",
        "Machine:",
        f"- CPU: {machine['cpu_model']}, {machine['usable_cores']} usable of {machine['cores']} cores",
        f"- memory: {machine['memory_gib']} GiB",
        f"- load average (1 min): {settings.get('load_average_start', float('nan')):.2f} at the start, "
        f"{settings.get('load_average_end', float('nan')):.2f} at the end",
        f"- OS: {machine['os']}",
        f"- Python {machine['python']}, Flask {machine['flask']}, SQLAlchemy {machine['sqlalchemy']}",
        f"- PostgreSQL {machine['postgresql']}, SQLite {machine['sqlite']}",
        f"- revision: {machine['git_revision']}",
    ]
    return "\n".join(lines) + "\n"


def write_results(run: Run, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = run.started_at.strftime("%Y%m%dT%H%M%SZ")
    markdown = directory / f"generate-{stamp}.md"
    data = directory / f"generate-{stamp}.json"
    markdown.write_text(render_markdown(run), encoding="utf-8")
    data.write_text(json.dumps({**asdict(run), "started_at": run.started_at.isoformat(timespec="seconds")},
                               indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return markdown, data


def fill(args: argparse.Namespace, database: str, work_dir: Path) -> Generated:
    """A fresh keyring and migrated database in `work_dir` (or at --postgres-url), filled by `generate`."""
    from intake import create_app
    from intake.core.db import db, make_engine
    from intake.core.keys import Keyring
    from intake.core.migrate import upgrade

    keyring_path = work_dir / "keyring.sealed"
    keyring = Keyring.create(keyring_path, secrets.token_urlsafe(24), scrypt_n=2**10)
    url = sqlite_url(work_dir) if database == SQLITE else args.postgres_url
    settings: dict[str, Any] = {
        "ENV": "production", "SECURE_COOKIES": "false", "BASE_URL": "http://127.0.0.1",
        "DATABASE_URL": url, "INSTANCE_PATH": str(work_dir / "instance"), "KEYRING_PATH": str(keyring_path),
        "LOG_LEVEL": "ERROR", "AUDIT_ORIGIN": "bench.invalid/generate", "BLOB_STORAGE": args.blob_storage,
        "BLOB_PATH": str(work_dir / "blobs"),
        "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 1024, "ARGON2_PARALLELISM": 1,
    }
    engine = make_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    app = create_app(settings, keyring=keyring)
    try:
        with app.app_context():
            generated = generate(args.records, seed=args.seed, batch=args.batch,
                                 attachment_share=args.attachment_share, report=progress)
            db.session.remove()
    finally:
        app.extensions["intake.db"].dispose()
    return generated


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=[SQLITE, POSTGRESQL],
                        help="database (default: postgresql if it answers at --postgres-url, else sqlite)")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL,
                        help="SQLAlchemy URL of the scratch database, dropped and recreated (default: %(default)s)")
    parser.add_argument("--records", type=int, default=DEFAULT_RECORDS, help="records to make (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=SEED, help="seed of the random choices (default: %(default)s)")
    parser.add_argument("--attachment-share", type=float, default=ATTACHMENT_SHARE,
                        help="share of the records with attachments, 0 to 1 (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=BATCH, help="records per transaction (default: %(default)s)")
    parser.add_argument("--blob-storage", choices=["database", "files"], default="database",
                        help="where the attachments' ciphertext is stored (default: %(default)s, the service's)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.records < 1 or args.batch < 1:
        parser.error("--records and --batch must be positive")
    if not 0.0 <= args.attachment_share <= 1.0:
        parser.error("--attachment-share must be between 0 and 1")
    return args


def _load_average() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


def _interrupt_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    from intake.core import gazetteer

    args = parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    notes: list[str] = []
    try:
        version = postgres_server_version(args.postgres_url)
        database = args.db
        if database is None:
            database = POSTGRESQL if version is not None else SQLITE
            if version is None:
                notes.append(f"PostgreSQL is not reachable at {args.postgres_url}: filled SQLite.")
        if database == POSTGRESQL and version is None:
            raise DatabaseError(f"PostgreSQL is not reachable at {args.postgres_url}")
        machine = describe_machine(wrk_version="not used", postgres_version=version if database == POSTGRESQL
                                   else None, project_root=PROJECT_ROOT)
        for key in ("wrk", "gunicorn"):
            machine.pop(key, None)
        run = Run(utc_now(), machine, {"database": database, "records": args.records, "seed": args.seed,
                                       "batch": args.batch, "attachment_share": args.attachment_share,
                                       "blob_storage": args.blob_storage,
                                       "load_average_start": _load_average()}, notes=notes)
        progress(f"filling {args.records:,} records ({database})")
        with tempfile.TemporaryDirectory(prefix="bench-generate-") as tmp:
            if database == POSTGRESQL:
                recreate_postgres_database(args.postgres_url)
            try:
                generated = fill(args, database, Path(tmp))
            finally:
                if database == POSTGRESQL:
                    drop_postgres_database(args.postgres_url)
    except KeyboardInterrupt:
        progress("interrupted: scratch database dropped, temporary files removed")
        return EXIT_INTERRUPTED
    except (DatabaseError, RuntimeError) as error:
        progress(f"FAILED: {error}")
        return EXIT_FAILED
    finally:
        signal.signal(signal.SIGTERM, previous)
    run.settings["load_average_end"] = _load_average()
    run.figures = figures_of(generated, len(gazetteer.places()))
    markdown, data = write_results(run, args.results_dir)
    print(render_markdown(run), end="")
    progress(f"results written to {markdown} and {data}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
