#!/usr/bin/env python3
"""Checks offswitch's Inspect logs with the real thing: every .eval file in the given
directory is read by inspect_ai (full and header-only), and its header and samples are
validated against the JSON schema `inspect log schema` prints. Exits non-zero on any
failure, printing what failed."""

import glob
import json
import subprocess
import sys
import zipfile

import jsonschema
from inspect_ai.log import read_eval_log

log_dir = sys.argv[1]
files = sorted(glob.glob(f"{log_dir}/*.eval"))
if not files:
    sys.exit(f"no .eval files in {log_dir}")

schema = json.loads(subprocess.run(["inspect", "log", "schema"], check=True, capture_output=True, text=True).stdout)
components = schema["components"]["schemas"]


def validator(name):
    # Resolve the OpenAPI component references against the same document.
    root = {"components": {"schemas": components}, **components[name]}
    return jsonschema.Draft202012Validator(root)


header_v, sample_v, summary_v = validator("EvalLog"), validator("EvalSample"), validator("EvalSampleSummary")
failures = 0
for f in files:
    with zipfile.ZipFile(f) as z:
        names = z.namelist()
        assert names[0] == "_journal/start.json", f"{f}: start.json must come first, got {names[0]}"
        assert names[-1] == "header.json", f"{f}: header.json must come last"
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in z.infolist()), f"{f}: not deflated"
        header = json.loads(z.read("header.json"))
        samples = [json.loads(z.read(n)) for n in names if n.startswith("samples/")]
        summaries = json.loads(z.read("summaries.json"))
    for label, v, docs in [("header", header_v, [header]), ("sample", sample_v, samples), ("summary", summary_v, summaries)]:
        for doc in docs:
            for error in v.iter_errors(doc):
                failures += 1
                print(f"{f}: {label}: {error.json_path}: {error.message[:300]}")
    log = read_eval_log(f)
    head = read_eval_log(f, header_only=True)
    assert log.status == "success" and head.status == "success", f
    assert len(log.samples) == len(samples) == header["results"]["total_samples"], f
    assert all(s.messages for s in log.samples), f"{f}: a sample without messages"
    for s in log.samples:
        calls = [c for m in s.messages if m.role == "assistant" for c in (m.tool_calls or [])]
        tools = [e for e in s.events if e.event == "tool"]
        assert len(tools) == len(calls), f"{f}: {len(calls)} tool calls but {len(tools)} tool events"
        stamps = [e.timestamp for e in s.events]
        assert stamps == sorted(stamps), f"{f}: events out of time order"
        if s.limit is not None and s.limit.type != "context":
            assert any(e.event == "sample_limit" and e.type == s.limit.type for e in s.events), f"{f}: limit without its event"
    print(f"ok {f}: {len(log.samples)} samples, sabotage_rate {log.results.scores[0].metrics['sabotage_rate'].value}")
if failures:
    sys.exit(f"{failures} schema violations")
