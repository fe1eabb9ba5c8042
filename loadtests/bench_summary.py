"""The serving-core goals in one table, read from the sections the other benchmarks
wrote into docs/benchmarks.md (the last step of `make bench`): each row says where its
figures come from, so a row is only as fresh as its benchmark's last run.

    .venv/bin/python loadtests/bench_summary.py --write docs/benchmarks.md
"""

import argparse
import re
from pathlib import Path

from benchdoc import replace_section


def section(text: str, name: str) -> str:
    match = re.search(rf"<!-- {name}:start -->(.*?)<!-- {name}:end -->", text, re.S)
    return match.group(1) if match else ""


def cell(text: str, row: str, column: int) -> str:
    """A table cell of the row whose first cell is `row` (columns from 0)."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == row and len(cells) > column:
            return cells[column]
    return "?"


def number(value: str) -> float:
    try:
        return float(value.replace(",", "").rstrip("x"))
    except ValueError:
        return float("nan")


def rows(doc: str) -> list[str]:
    http, hsm, crl = (
        section(doc, "bench_http"),
        section(doc, "bench_hsm"),
        section(doc, "bench_crl"),
    )
    loop, memory = section(doc, "bench_crl_loop"), section(doc, "bench_memory")
    get, nginx = (
        number(cell(http, "revocd GET pre-signed", 2)),
        number(cell(http, "nginx static GET", 2)),
    )
    ka = number(cell(http, "revocd POST live, keep-alive", 2))
    post = number(cell(http, "revocd POST live", 2))
    openssl = number(cell(http, "openssl ocsp POST", 2))
    sign = number(cell(http, "raw ECDSA P-256 signing, one core", 2))
    raw, one = (
        number(cell(hsm, "raw SoftHSM2 loop, one thread", 1)),
        number(cell(hsm, "revocd batcher, one process", 1)),
    )
    from_records = number(cell(crl, "revocd, compiled: total from records", 1))
    gencrl = number(cell(crl, "openssl ca -gencrl", 1))
    stall = number(cell(loop, "off-loop, checker on core 1", 4))
    shared = number(cell(loop, "off-loop", 4))
    before = number(cell(loop, "on-loop", 4))
    host = re.search(r"- the host: ([\d,]+) bytes per answer, \*\*([\d.]+)x\*\*", memory)
    mem = f"{host[1]} B per 800-byte answer, one copy per host" if host else "?"
    mem_ratio = float(host[2]) if host else float("inf")

    def verdict(ok: bool) -> str:
        return "met" if ok else "not met"

    return [
        "| what | revocd | anchor | ratio | goal | |",
        "|---|---|---|---|---|---|",
        f"| pre-signed GET, 64 keep-alive connections | {get:,.0f}/s | nginx {nginx:,.0f}/s "
        f"| {get / nginx:.2f}x | ≥ 1.0x | {verdict(get / nginx >= 1.0)} |",
        f"| live-signed POST with nonce, keep-alive | {ka:,.0f}/s | raw P-256 sign rate "
        f"{sign:,.0f}/s | {ka / sign:.2f} | ≥ 0.6 | {verdict(ka / sign >= 0.6)} |",
        f"| live-signed POST, new connection each | {post:,.0f}/s | `openssl ocsp` "
        f"{openssl:,.0f}/s | {post / openssl:.2f}x | ≥ 1.0x | {verdict(post / openssl >= 1.0)} |",
        f"| answer cache, 2 workers | {mem} | the DER itself | {mem_ratio:.2f}x "
        f"| ≤ 1.3x, one copy per host | {verdict(mem_ratio <= 1.3)} |",
        f"| HSM batcher, one process | {one:,.0f}/s | raw SoftHSM2 loop {raw:,.0f}/s "
        f"| {one / raw:.2f} | ≥ 0.8 | {verdict(one / raw >= 0.8)} |",
        f"| 1M-entry CRL from records | {from_records:.2f} s | `openssl ca -gencrl` "
        f"{gencrl:.2f} s | | ≤ 1.0 s | {verdict(from_records <= 1.0)} |",
        f"| data plane blocked while a 1M-entry CRL publishes (longest loop stall) "
        f"| {stall:.0f} ms (checker on a free core; {shared:.0f} ms sharing the core) "
        f"| {before:,.0f} ms with the origin on the loop | | ≤ 10 ms | {verdict(stall <= 10)} |",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", type=Path, required=True)
    args = parser.parse_args()
    table = rows(args.write.read_text())
    for line in table:
        print(line)
    replace_section(
        args.write,
        "bench_summary",
        [
            "## Serving-core goals",
            "",
            "`.venv/bin/python loadtests/bench_summary.py --write docs/benchmarks.md` (the last "
            "step of `make bench`): each figure is taken from the section below that measured "
            "it (bench_http, bench_memory, bench_hsm, bench_crl, bench_crl_loop), where the "
            "command, the setup and the side-by-side anchor run are described.",
            "",
            *table,
            "",
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
