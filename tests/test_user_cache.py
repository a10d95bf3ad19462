"""The user's cache (analysis/store/user_cache.py): a new store reuses the code identities,
the passed type checks and the input files' schemas that another store on the machine
computed, and nothing else."""

from analysis.store.code_cache import CodeCache
from analysis.store.user_cache import cache_file, cache_folder


def test_a_new_store_reads_code_identities_from_the_users_cache_and_keeps_a_copy(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    roots, user = {"pkg": tmp_path / "pkg"}, tmp_path / "home-cache" / "code.json"
    first = CodeCache(tmp_path / "store1" / "code.json", roots, fallback=user)
    first.put("pkg.a:x", {"identity": "abc", "units": {}})
    first.save()
    assert user.exists() and (tmp_path / "store1" / "code.json").exists()
    second = CodeCache(tmp_path / "store2" / "code.json", roots, fallback=user)
    assert second.get("pkg.a:x") == {"identity": "abc", "units": {}}
    second.save()                                            # the new store gets its own copy
    assert CodeCache(tmp_path / "store2" / "code.json", roots).get("pkg.a:x") is not None
    (tmp_path / "pkg" / "a.py").write_text("x = 22\n")       # an edit: neither copy holds
    assert CodeCache(tmp_path / "store3" / "code.json", roots, fallback=user).get("pkg.a:x") is None


def test_an_unwritable_users_cache_costs_only_time(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would be")
    cache = CodeCache(tmp_path / "store" / "code.json", {"pkg": tmp_path / "pkg"}, fallback=blocker / "code.json")
    cache.put("pkg.a:x", {"identity": "abc", "units": {}})
    cache.save()
    assert CodeCache(tmp_path / "store" / "code.json", {"pkg": tmp_path / "pkg"}).get("pkg.a:x") is not None


def test_the_folder_follows_the_environment():
    assert cache_folder({"HOME": "/home/me"}).as_posix() == "/home/me/.cache/heirloom"
    assert cache_folder({}) is None and cache_file("x", {"HEIRLOOM_CACHE_DIR": "OFF"}) is None


def test_a_new_store_takes_an_input_files_schema_from_the_users_cache(tmp_path, monkeypatch):
    """The schema is a fact about a file's content: a second store does not open the file
    again, and a file with other content is read."""
    from analysis.io import schema
    from analysis.io.fileid import Manifest
    from analysis.io.generate import generate_file

    monkeypatch.setenv("HEIRLOOM_CACHE_DIR", str(tmp_path / "home-cache"))
    events = tmp_path / "events.root"
    generate_file(events, "ttbar", 500, seed=5)
    read: list = []
    real = schema.file_types
    monkeypatch.setattr(schema, "file_types", lambda *args: read.append(args[0]) or real(*args))

    def types_in(store):
        ident = Manifest(store).identify(events)
        return schema._cached(store / "manifests" / "schemas.json", ident, "Events")

    first = types_in(tmp_path / "store1")
    assert first["Jet_pt"] == "var * float32" and len(read) == 1
    assert types_in(tmp_path / "store2") == first and len(read) == 1         # from the user's cache
    assert (tmp_path / "store2" / "manifests" / "schemas.json").exists()      # and the store keeps a copy
    generate_file(events, "ttbar", 500, seed=6)                               # other content: read again
    assert types_in(tmp_path / "store3") == first and len(read) == 2
