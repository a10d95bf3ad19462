"""``heirloom verify`` and ``heirloom gc`` on a remote store (S3, XRootD).

    HEIRLOOM_STORE=s3://bucket/store heirloom verify --all         download and rehash every object
    HEIRLOOM_STORE=s3://bucket/store heirloom gc --config C --delete   remove what no config reaches

Objects are found by listing each task family once. ``verify`` downloads each object afresh
(not from the local cache) and checks every file against its record; a damaged one is taken
out of the store (its record kept under ``quarantine/`` with a note), so the next ``law run``
that needs it recomputes it. ``gc`` also removes the files of commits that never finished
(a crash before the record, a writer that lost the race), once they are a day old.
"""

from __future__ import annotations

import time

from analysis.store.backends import Listed
from analysis.store.remote import RemoteStore

#: files of unfinished commits younger than this are left alone (a commit may be under way)
ORPHAN_AGE_S = 86400.0


def verify(shared: RemoteStore, wanted: set | None, *, quarantine: bool,
           progress=print) -> tuple[int, list[tuple[str, str, list[str]]]]:
    """(objects checked, [(family, key, problems) of the damaged ones])."""
    objects = [(family, listed) for family, listed in shared.all_objects()
               if wanted is None or (family, listed.key) in wanted]
    damaged = []
    for number, (family, listed) in enumerate(objects, 1):
        problems = shared.damage(family, listed.key)
        if problems:
            where = f"; its record is kept in {shared.quarantine(family, listed.key, problems)}" if quarantine else ""
            progress(f"DAMAGED  {family}/{listed.key}: {'; '.join(problems)}{where}")
            damaged.append((family, listed.key, problems))
        elif number % 50 == 0:
            progress(f"... {number}/{len(objects)} objects checked")
    return len(objects), damaged


def collect(shared: RemoteStore, *, keep: set | None, older_than_days: float | None,
            orphan_age_s: float = ORPHAN_AGE_S) -> tuple[list[tuple[str, Listed]], list[str]]:
    """Objects to remove (not in ``keep`` when given, older than the age when given), and
    the files of unfinished commits older than a day."""
    now = time.time()
    cutoff = now - older_than_days * 86400 if older_than_days is not None else None
    chosen, orphans = [], []
    for family in shared.backend.families():
        listed = shared.listing(family, refresh=True)
        for key, item in sorted(listed.items()):
            if keep is not None and (family, key) in keep:
                continue
            if cutoff is not None and item.modified > cutoff:
                continue
            chosen.append((family, item))
        orphans += [path for path, modified in shared.backend.orphans(family, listed)
                    if modified <= now - orphan_age_s]
    return chosen, sorted(set(orphans))


def remove(shared: RemoteStore, chosen: list[tuple[str, Listed]], orphans: list[str]) -> int:
    """Delete the chosen objects (record first) and the unfinished commits' files."""
    for family, item in chosen:
        shared.remove(family, item.key)
    shared.backend.remove_paths(orphans)
    return len(chosen)
