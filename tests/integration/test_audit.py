"""The hash-chained audit log: untouched logs verify; edits, deletions, reordering, and
records cut by a crash are found and named; several writers keep one chain."""

import itertools
import json
import multiprocessing
import subprocess
import sys
from pathlib import Path

import pytest

from responder.audit.log import AuditLog, record_hash, verify


def write_log(path: Path, count: int = 20, **kw) -> AuditLog:
    audit = AuditLog(path, **kw)
    for i in range(count):
        audit.write(
            "event.applied",
            token="ca-1",
            source="10.0.0.7",
            event={"type": "revoked", "issuer": "alpha", "serial": format(0x1000 + i, "x")},
        )
    return audit


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "responder", "audit", "verify", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_untouched_log_verifies(tmp_path):
    path = tmp_path / "audit.log"
    write_log(path)
    result = verify([path])
    assert result.ok and result.records == 20
    assert (result.first_seq, result.head_seq) == (0, 19)
    last = json.loads(lines(path)[-1])
    assert result.head_hash == last["hash"] == record_hash(last)
    assert json.loads(lines(path)[0])["prev"] == "0" * 64
    done = cli(str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"OK: 20 records, seq 0..19, head {last['hash']}" in done.stdout


def test_edited_record_is_named(tmp_path):
    path = tmp_path / "audit.log"
    write_log(path)
    text = lines(path)
    # Turn a revocation of serial 1007 into one of 1fff: the content no longer fits its hash.
    assert '"serial":"1007"' in text[7]
    text[7] = text[7].replace('"serial":"1007"', '"serial":"1fff"')
    path.write_text("".join(text))
    result = verify([path])
    assert not result.ok
    assert [(f.line, f.seq) for f in result.errors] == [(8, 7)]
    assert "edited" in result.errors[0].problem
    done = cli(str(path))
    assert done.returncode == 1
    assert f"TAMPERED {path}:8 seq 7: record edited" in done.stdout


def test_edited_and_rehashed_record_breaks_the_next_link(tmp_path):
    path = tmp_path / "audit.log"
    write_log(path)
    text = lines(path)
    record = json.loads(text[7])
    record["event"]["serial"] = "1fff"
    record["hash"] = record_hash(record)  # a forger recomputes this record's own hash
    text[7] = json.dumps(record, separators=(",", ":")) + "\n"
    path.write_text("".join(text))
    result = verify([path])
    assert [(f.seq, f.problem) for f in result.errors] == [
        (8, "prev does not match the record before (chain broken)")
    ]


def test_deleted_record_is_named(tmp_path):
    path = tmp_path / "audit.log"
    write_log(path)
    text = lines(path)
    del text[5]
    path.write_text("".join(text))
    result = verify([path])
    assert not result.ok
    assert [(f.line, f.seq) for f in result.errors] == [(6, 6)]
    assert result.errors[0].problem.startswith("records 5..5 missing")
    assert cli(str(path)).returncode == 1


def test_reordered_records_are_named(tmp_path):
    path = tmp_path / "audit.log"
    write_log(path)
    text = lines(path)
    text[10], text[11] = text[11], text[10]
    path.write_text("".join(text))
    result = verify([path])
    assert not result.ok
    problems = {f.seq: f.problem for f in result.errors}
    assert problems[11].startswith("records 10..10 missing here")
    assert problems[10] == "out of order: seq 10 after seq 11"


def test_records_cut_from_the_end_are_caught_by_the_kept_head(tmp_path):
    path = tmp_path / "audit.log"
    write_log(path)
    head = json.loads(lines(path)[-1])["hash"]
    path.write_text("".join(lines(path)[:-3]))
    assert verify([path]).ok  # a shorter chain is still a chain...
    done = cli(str(path), "--expect-head", head)
    assert done.returncode == 1 and "head differs from --expect-head" in done.stdout


def test_torn_record_from_a_crash_is_noted_and_the_chain_continues(tmp_path):
    path = tmp_path / "audit.log"
    write_log(path, 5)
    data = path.read_bytes()
    path.write_bytes(data + b'{"seq":5,"time":"2026-')  # the process died mid-write
    result = verify([path])
    # Unexplained, a torn tail looks like a cut or edited one: an error until noted.
    assert not result.ok and "no audit.torn_record explains" in result.errors[0].problem
    audit = AuditLog(path)  # a new process
    audit.write("service.started", role="serve")
    result = verify([path])
    assert result.ok, result.errors
    assert result.records == 7 and "torn record from a crash" in result.notes[0].problem
    kinds = [json.loads(line)["kind"] for line in lines(path) if line.endswith("}\n")]
    assert kinds[-2:] == ["audit.torn_record", "service.started"]
    # Someone replacing a torn line with other bytes is not excused.
    text = lines(path)
    text[5] = '{"seq":5,"time":"2027-\n'
    path.write_text("".join(text))
    assert not verify([path]).ok


def test_record_cut_just_before_its_newline_is_kept(tmp_path):
    path = tmp_path / "audit.log"
    write_log(path, 3)
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    AuditLog(path).write("service.started")
    result = verify([path])
    assert result.ok and result.records == 4 and not result.notes


def _writer(path: str, name: str, count: int) -> None:
    audit = AuditLog(path)
    for i in range(count):
        audit.write("event.applied", token=name, n=i)


def test_concurrent_writers_keep_one_chain(tmp_path):
    path = tmp_path / "audit.log"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), f"w{i}", 300)) for i in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    result = verify([path])
    assert result.ok, result.errors[:3]
    assert result.records == 900 and result.head_seq == 899


def test_rotation_continues_the_chain_across_files(tmp_path):
    path = tmp_path / "audit.log"
    write_log(path, 400, max_bytes=64 * 1024, fsync=False)
    rotated = sorted(
        tmp_path.glob("audit.log.*-*"), key=lambda p: int(p.name.split(".")[-1].split("-")[0])
    )
    assert rotated, "nothing rotated"
    files = [*rotated, path]
    result = verify(files)
    # Each file after the first opens with a record naming the file it continues.
    assert result.ok and result.records == 400 + len(rotated)
    for before, after in itertools.pairwise(files):
        opening = json.loads(lines(after)[0])
        assert opening["kind"] == "audit.continued" and opening["previous_file"] == before.name
    # The newest file alone starts mid-chain: noted, and checkable against the older head.
    alone = verify([path])
    assert alone.ok and "continues an earlier file" in alone.notes[0].problem
    older_head = verify(rotated).head_hash
    assert verify([path], anchor=older_head).ok
    assert not verify([path], anchor="f" * 64).ok
    # A whole rotated file missing from the middle is found.
    if len(rotated) > 1:
        assert not verify([rotated[0], path]).ok


@pytest.mark.parametrize("junk", ["[]", '{"seq":"3","prev":"x","hash":"y"}', "not json"])
def test_junk_lines_are_errors(tmp_path, junk):
    path = tmp_path / "audit.log"
    write_log(path, 4)
    text = lines(path)
    text.insert(2, junk + "\n")
    path.write_text("".join(text))
    assert not verify([path]).ok


def test_a_flood_of_refused_tokens_is_summed_up_not_written_one_by_one(tmp_path):
    """Anyone who can reach the control plane can cause auth failures; the log keeps ten
    a minute per source and one record with the count of the rest."""
    import trio

    from responder.audit.trail import AuditTrail

    trail = AuditTrail(AuditLog(tmp_path / "audit.log", fsync=False))
    now = [1000.0]
    trail.clock = lambda: now[0]

    async def main():
        for _ in range(500):
            await trail.anomaly_limited("auth_failure", "10.9.9.9", source="10.9.9.9")
        await trail.anomaly_limited("auth_failure", "10.1.1.1", source="10.1.1.1")
        now[0] += 61  # the next minute: the first failure closes the old window
        await trail.anomaly_limited("auth_failure", "10.9.9.9", source="10.9.9.9")

    trio.run(main)
    kinds = [json.loads(line) for line in lines(tmp_path / "audit.log")]
    flood = [r for r in kinds if r.get("source") == "10.9.9.9"]
    assert len(flood) == 11  # ten in the first minute, one in the next
    summary = [r for r in kinds if r["kind"] == "anomaly.auth_failure_suppressed"]
    assert [(r["key"], r["suppressed"]) for r in summary] == [("10.9.9.9", 490)]
    assert sum(r.get("source") == "10.1.1.1" for r in kinds) == 1
    assert verify([tmp_path / "audit.log"]).ok


MUTATIONS = ["delete", "swap", "edit", "duplicate", "rehash_edit", "insert_forged"]


@pytest.fixture(scope="module")
def clean_log(tmp_path_factory):
    path = tmp_path_factory.mktemp("clean") / "audit.log"
    write_log(path, 30, fsync=False)
    return lines(path)


def test_any_tampering_is_found(clean_log, tmp_path_factory):
    """Property: every deletion, move, edit (with or without a recomputed hash),
    duplication or forged insertion anywhere but at the very end is reported."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    directory = tmp_path_factory.mktemp("tampered")

    @settings(max_examples=300, deadline=None)
    @given(
        mutation=st.sampled_from(MUTATIONS),
        i=st.integers(0, len(clean_log) - 2),
        j=st.integers(0, len(clean_log) - 1),
        value=st.text(min_size=1, max_size=8),
    )
    def check(mutation, i, j, value):
        text = list(clean_log)
        if mutation == "delete":
            del text[i]
        elif mutation == "swap":
            if i == j:
                j = i + 1
            text[i], text[j] = text[j], text[i]
        elif mutation == "duplicate":
            text.insert(j, text[i])
        elif mutation in ("edit", "rehash_edit"):
            record = json.loads(text[i])
            record["event"]["serial"] = record["event"]["serial"] + value
            if mutation == "rehash_edit":
                record["hash"] = record_hash(record)
            text[i] = json.dumps(record, separators=(",", ":")) + "\n"
        else:  # a forged record that claims to continue record i
            prev = json.loads(text[i])
            forged = {"seq": prev["seq"] + 1, "kind": "event.applied", "note": value}
            forged["prev"] = prev["hash"]
            forged["hash"] = record_hash(forged)
            text.insert(i + 1, json.dumps(forged) + "\n")
        path = directory / "audit.log"
        path.write_text("".join(text))
        result = verify([path])
        assert not result.ok, (mutation, i, j)
        assert all(f.line > 0 for f in result.errors)

    check()


def test_unreadable_input_is_a_clear_error(tmp_path):
    done = cli(str(tmp_path / "no-such.log"))
    assert done.returncode == 2 and "no-such.log" in done.stderr
    path = tmp_path / "audit.log"
    write_log(path, 2)
    bad = subprocess.run(
        [sys.executable, "-m", "responder", "audit", "export-events", str(path), "--since", "soon"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "--since: not a time: 'soon'" in bad.stderr


def test_a_record_with_a_duplicated_key_is_an_edit(tmp_path):
    """json keeps the last of two equal keys; verify refuses the record instead."""
    path = tmp_path / "audit.log"
    write_log(path, 3)
    text = lines(path)
    record = json.loads(text[1])
    # the same hash, so only the duplicated key can be what verify objects to
    text[1] = text[1].rstrip("}\n") + ', "kind": ' + json.dumps(record["kind"]) + "}\n"
    path.write_text("".join(text))
    result = verify([path])
    assert not result.ok
    assert any("key 'kind' appears twice" in f.problem for f in result.errors), result.errors
