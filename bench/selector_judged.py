"""Hand-judged picks: would a hobbyist who typed the prompt want each LoRA the selector picked?

The prompts and the judgements live in ``bench/data/selector_judged.json`` (our own prompts;
per pick only the adapter's file stem, its Civitai model id and a one-line judgement — no
Civitai text). The library is the retrieval-bench's Civitai library written as a user's disk
holds it (:func:`bench.selector_data.write_library`) and indexed by the curator, queried with the
WebUI's defaults for an SD1.5 checkpoint. Reports:

- the share of picks judged acceptable (target ≥ 80 %), borderline and rejected;
- picks not judged yet, listed (a changed selector shows what to judge);
- the character-on-generic-noun share: picks whose kind is character bound to a phrase that
  holds neither its name nor its title's noun, a word many of the library's adapters hold
  being no name (target ≤ 2 %), here and over real dev prompts.

    python -m bench.selector_judged [--data DIR] [--work DIR] [--dev N] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sqlite3
import sys
import tempfile
from pathlib import Path

from bench.needs import DATA_FILES, DEFAULT_DATA, missing_data

JUDGED = Path(__file__).parent / "data" / "selector_judged.json"
VERDICTS = ("acceptable", "borderline", "reject")
TARGET_ACCEPTABLE = 0.80
TARGET_CHARACTER_ON_GENERIC = 0.02


def build_library(data: Path, work: Path):
    """The Civitai library on disk and its index, reused from ``work`` when already built."""
    from bench.selector_data import write_library
    from pixtention.curator.indexer import index_folder
    from pixtention.curator.library import open_library

    folder, store = work / "Lora", work / "store"
    labels_file = work / "labels.json"
    if not labels_file.exists():
        labels = write_library(data, folder, None, None)
        index_folder(folder, store, captions=False)
        labels_file.write_text(json.dumps(labels), encoding="utf-8")
    labels = json.loads(labels_file.read_text(encoding="utf-8"))
    reclassify(store / "catalog.sqlite")
    return open_library(store), labels


def reclassify(catalog: Path) -> None:
    """Store the current classifier's kinds in a reused index (a kind is stored when a file is
    indexed, so a changed classifier would otherwise be measured on the old kinds)."""
    from pixtention.curator.kinds import classify_record
    from pixtention.curator.serial import record_from_json, record_to_json

    with sqlite3.connect(catalog) as db:
        for table, key in (("adapters", "path"), ("snapshot", "row")):
            rows = db.execute(f"SELECT {key}, record FROM {table}").fetchall()
            for k, text in rows:
                record = record_from_json(text)
                kind = classify_record(record)
                if kind != record.concept_kind:
                    fresh = record_to_json(dataclasses.replace(record, concept_kind=kind))
                    db.execute(f"UPDATE {table} SET record=? WHERE {key}=?", (fresh, k))


def webui_picks(prompt: str, library) -> list:
    """select() as the WebUI calls it for an SD1.5 checkpoint, with its default settings."""
    from pixtention.selector.select import select
    from pixtention.webui.args import WebuiArgs

    return select(prompt, library, **WebuiArgs().select_options(), base_model="sd1")


def judge_key(name: str, model_id: int | None) -> str:
    return f"{name}#{model_id}" if model_id is not None else name


def character_on_generic(library, prompt: str, picks) -> int:
    """Automatic character picks bound to a phrase that does not name them, a word many of the
    library's adapters hold naming no one."""
    from pixtention.selector.binding import character_on_generic as on_generic
    from pixtention.selector.candidates import common_words

    common = common_words(library, prompt)
    auto = (p for p in picks if p.source == "auto")
    return sum(on_generic(library.find(p.name), p.phrase, common) for p in auto)


def judged_run(library, labels: dict, cases: list[dict]) -> dict:
    """Every prompt's picks with their judgement (None: not judged yet) and the shares."""
    counts = dict.fromkeys(VERDICTS, 0)
    by_set: dict[str, dict[str, int]] = {}
    unjudged, rows, on_generic, n_picks = [], [], 0, 0
    for case in cases:
        picks = webui_picks(case["prompt"], library)
        on_generic += character_on_generic(library, case["prompt"], picks)
        n_picks += len(picks)
        for pick in picks:
            key = judge_key(pick.name, labels.get(pick.name, {}).get("model_id"))
            verdict = case.get("picks", {}).get(key)
            row = {"prompt": case["prompt"], "pick": key, "kind": pick.concept_kind,
                   "phrase": pick.phrase, "scope": pick.scope, "score": round(pick.score, 3)}  # fmt: skip
            if verdict is None:
                unjudged.append(row)
            else:
                counts[verdict["judgement"]] += 1
                tally = by_set.setdefault(case.get("set", "tuning"), dict.fromkeys(VERDICTS, 0))
                tally[verdict["judgement"]] += 1
                row["judgement"] = verdict["judgement"]
            rows.append(row)
    judged = sum(counts.values())
    return {
        "prompts": len(cases),
        "picks": n_picks,
        "prompts_without_picks": sum(
            not any(r["prompt"] == c["prompt"] for r in rows) for c in cases
        ),
        "judged": judged,
        "shares": {v: counts[v] / judged if judged else 0.0 for v in VERDICTS},
        "acceptable_by_set": {
            name: [t["acceptable"], sum(t.values())] for name, t in sorted(by_set.items())
        },
        "unjudged": unjudged,
        "character_on_generic": on_generic,
        "character_on_generic_share": on_generic / n_picks if n_picks else 0.0,
        "rows": rows,
    }


def dev_character_on_generic(data: Path, library, labels: dict, n: int) -> dict:
    """The character-on-generic share over ``n`` real dev prompts (tags and trained words
    stripped, as ``bench selector`` reads them)."""
    from bench.selector_data import load_prompts, strip_prompt

    trained = {v["model_id"]: v["trained"] for v in labels.values() if v["model_id"] is not None}
    on_generic = n_picks = 0
    for row in load_prompts(data, n, 0):
        prompt = strip_prompt(row["prompt"], trained.get(row["model_id"], []))
        picks = webui_picks(prompt, library)
        on_generic += character_on_generic(library, prompt, picks)
        n_picks += len(picks)
    return {"prompts": n, "picks": n_picks, "character_on_generic": on_generic,
            "share": on_generic / n_picks if n_picks else 0.0}  # fmt: skip


def report(result: dict) -> list[str]:
    """The figures in a few lines, then the picks still to judge."""
    s = result["shares"]
    lines = [
        f"hand-judged set: {result['prompts']} prompts, {result['picks']} picks "
        f"({result['prompts_without_picks']} prompts got none), {result['judged']} judged",
        f"  acceptable {s['acceptable']:.1%} (target ≥ {TARGET_ACCEPTABLE:.0%}), "
        f"borderline {s['borderline']:.1%}, reject {s['reject']:.1%}",
        "  acceptable by set: "
        + ", ".join(f"{k} {a}/{n}" for k, (a, n) in result["acceptable_by_set"].items()),
        f"  character on a generic phrase: {result['character_on_generic']} "
        f"({result['character_on_generic_share']:.1%}, target ≤ {TARGET_CHARACTER_ON_GENERIC:.0%})",
    ]
    dev = result.get("dev")
    if dev:
        lines.append(
            f"  dev prompts ({dev['prompts']}): character on a generic phrase "
            f"{dev['character_on_generic']} of {dev['picks']} picks ({dev['share']:.1%})"
        )
    if result["unjudged"]:
        lines.append(f"  not judged yet ({len(result['unjudged'])}):")
        lines += [
            f"    {r['prompt']!r} → {r['pick']} [{r['kind']}] on {r['phrase']!r} {r['score']}"
            for r in result["unjudged"]
        ]
    return lines


def checks(result: dict) -> dict[str, bool]:
    """The issue-14 targets on the judged set, for the bench's exit status."""
    shares = result["shares"]
    return {
        f"judged_acceptable_{TARGET_ACCEPTABLE:.0%}": shares["acceptable"] >= TARGET_ACCEPTABLE,
        f"character_on_generic_at_most_{TARGET_CHARACTER_ON_GENERIC:.0%}": (
            result["character_on_generic_share"] <= TARGET_CHARACTER_ON_GENERIC
        ),
    }


def run(data: Path, work: Path, dev: int = 0) -> dict:
    library, labels = build_library(data, work)
    cases = json.loads(JUDGED.read_text(encoding="utf-8"))["prompts"]
    result = judged_run(library, labels, cases)
    if dev:
        result["dev"] = dev_character_on_generic(data, library, labels, dev)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.selector_judged", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, help="where the library is written and kept")
    parser.add_argument("--dev", type=int, default=300, help="dev prompts for the share (0: none)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    missing = missing_data("selector_judged", args.data, tuple(DATA_FILES))
    if missing:
        print(missing, file=sys.stderr)
        return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="pixtention-judged-"))
    result = run(args.data, work, args.dev)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
    else:
        print("\n".join(report(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
