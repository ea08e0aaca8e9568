"""Checks deploy/kubernetes/ as far as a machine without a cluster can.

    check.py OFFSWITCH_BINARY

1. Every manifest validates against the Kubernetes API's own JSON schemas (the
   kubernetes-validate package, strict: an unknown field fails) at the oldest and newest
   Kubernetes versions we name; the study's Job also with each optional runtimeClassName.
   The checker is shown to reject a misspelt field and a wrongly typed one first, so a
   pass means something.
2. The manifests agree with each other: the Secret and the claim they name exist, SHARDS
   equals the Job's completions and parallelism, the shard and store of a pod come from
   its completion index.
3. The commands the pods run use only flags that OFFSWITCH_BINARY has, and run: the
   study's command for each completion index (JOB_COMPLETION_INDEX and SHARDS as the Job
   sets them; /results a temporary folder; the model a scripted test fixture and 2 runs
   per cell instead of the study's), then the merge job's command; the merged store must
   hold the whole grid once. They run from a folder holding only the binaries the
   Dockerfile copies into the image, so an image missing one (the sandbox helper) fails
   here.
4. The Dockerfile copies the binaries a build makes.

Not checked here (no cluster, no registry, no VMs on these machines): that a cluster
accepts and schedules the Job, that the image builds, that the sandbox works inside a
privileged pod, under gVisor or under Kata Containers.
"""

import copy
import glob
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile

import kubernetes_validate
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
VERSIONS = ["1.30.0", "1.37.0"]
failures = []


def fail(message):
    failures.append(message)
    print("FAIL:", message)


def validate(doc, what):
    for version in VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            where = ".".join(str(p) for p in e.absolute_path) or "(top)"
            fail(f"{what} at Kubernetes {version}: {where}: {e.message}")
        except Exception as e:  # no schema for the kind at that version, and the like
            fail(f"{what} at Kubernetes {version}: {e}")


def rejects(doc, what):
    try:
        kubernetes_validate.validate(doc, VERSIONS[-1], strict=True)
    except kubernetes_validate.ValidationError:
        return
    fail(f"the schema check accepted {what}: it cannot fail, so its passes mean nothing")


def main():
    binary = os.path.abspath(sys.argv[1])
    docs = {}
    for path in sorted(glob.glob(os.path.join(HERE, "*.yaml"))):
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                what = f"{os.path.basename(path)}: {doc['kind']} {doc['metadata']['name']}"
                validate(doc, what)
                docs[(doc["kind"], doc["metadata"]["name"])] = doc
    print(f"validated {len(docs)} objects against Kubernetes {' and '.join(VERSIONS)} (strict)")

    job = docs[("Job", "offswitch-study")]
    merge = docs[("Job", "offswitch-merge")]
    classes = [name for (kind, name) in docs if kind == "RuntimeClass"]
    if not classes:
        fail("no RuntimeClass offered")
    for name in classes:
        with_class = copy.deepcopy(job)
        with_class["spec"]["template"]["spec"]["runtimeClassName"] = name
        validate(with_class, f"the study's Job with runtimeClassName {name}")

    misspelt = copy.deepcopy(job)
    misspelt["spec"]["completionz"] = 4
    rejects(misspelt, "a Job with a misspelt field")
    mistyped = copy.deepcopy(job)
    mistyped["spec"]["completions"] = "four"
    rejects(mistyped, "a Job whose completions is a string")

    spec = job["spec"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    if spec.get("completionMode") != "Indexed":
        fail("the study's Job is not an Indexed Job")
    if not (str(spec["completions"]) == str(spec["parallelism"]) == env.get("SHARDS")):
        fail(f"SHARDS {env.get('SHARDS')}, completions {spec['completions']} and parallelism {spec['parallelism']} differ")
    for ref in container.get("envFrom", []):
        name = ref["secretRef"]["name"]
        if ("Secret", name) not in docs:
            fail(f"the Job reads Secret {name}, which no manifest makes")
    for j in (job, merge):
        for volume in j["spec"]["template"]["spec"]["volumes"]:
            claim = volume["persistentVolumeClaim"]["claimName"]
            if ("PersistentVolumeClaim", claim) not in docs:
                fail(f"{j['metadata']['name']} mounts claim {claim}, which no manifest makes")
    command = " ".join(container["args"])
    for needed in ['--shard "$((JOB_COMPLETION_INDEX + 1))/$SHARDS"', '--db "/results/shard-$JOB_COMPLETION_INDEX.db"']:
        if needed not in command:
            fail(f"the study's command lacks {needed}")

    merge_command = " ".join(merge["spec"]["template"]["spec"]["containers"][0]["args"])
    for text in (command, merge_command):
        for sub in re.findall(r"offswitch (\w[\w-]*)", text):
            help_text = subprocess.run([binary, sub, "--help"], capture_output=True, text=True)
            if help_text.returncode != 0:
                fail(f"offswitch has no subcommand {sub}")
                continue
        for flag in set(re.findall(r"(--[a-z][a-z-]+)", text)):
            sub = re.findall(r"offswitch (\w[\w-]*)[^&]*" + re.escape(flag), text)
            if not sub:
                continue
            help_text = subprocess.run([binary, sub[-1], "--help"], capture_output=True, text=True).stdout
            if flag not in help_text:
                fail(f"`offswitch {sub[-1]}` has no flag {flag}")

    # The image's /usr/local/bin: only what the Dockerfile copies (hard links: offswitch
    # finds its helper beside the file it was started as).
    image_bin = tempfile.mkdtemp(prefix="offswitch-image-bin-")
    with open(os.path.join(HERE, "Dockerfile")) as f:
        copied = re.findall(r"/src/target/release/([\w-]+)", f.read())
    for name in copied:
        source = os.path.join(os.path.dirname(binary), name)
        if not os.path.exists(source):
            fail(f"the Dockerfile copies {name}, which the build does not make")
            continue
        try:
            os.link(source, os.path.join(image_bin, name))
        except OSError:
            shutil.copy2(source, os.path.join(image_bin, name))

    with tempfile.TemporaryDirectory() as results:
        shards = int(env["SHARDS"])
        local = (
            command.replace("/results", results)
            .replace("--model openai/o3", "--model scripted/comply,scripted/overwrite")
            .replace("--runs 1000", "--runs 2")
            .replace("--concurrency 64", "--concurrency 4")
        )
        if local == command.replace("/results", results):
            fail("could not turn the study's command into a small fixture run")
        bindir = image_bin
        for index in range(shards):
            run = subprocess.run(
                ["/bin/sh", "-c", local],
                env={"PATH": f"{bindir}:/usr/bin:/bin", "JOB_COMPLETION_INDEX": str(index), "SHARDS": str(shards)},
                capture_output=True,
                text=True,
                cwd=results,
            )
            if run.returncode != 0:
                fail(f"completion index {index}: exit {run.returncode}: {run.stderr[-2000:]}")
        merged = subprocess.run(
            ["/bin/sh", "-c", merge_command.replace("/results", results)],
            env={"PATH": f"{bindir}:/usr/bin:/bin"},
            capture_output=True,
            text=True,
            cwd=results,
        )
        if merged.returncode != 0:
            fail(f"the merge job's command: exit {merged.returncode}: {merged.stderr[-2000:]}")
        else:
            db = sqlite3.connect(os.path.join(results, "study.db"))
            keys = db.execute(
                "SELECT c.model, c.variant, e.epoch FROM episodes e JOIN cells c ON e.cell_id = c.id"
            ).fetchall()
            expected = {(m, v, e) for m in ("scripted/comply", "scripted/overwrite") for v in ("A", "B") for e in (1, 2)}
            if len(keys) != len(expected) or set(keys) != expected:
                fail(f"the merged store holds {sorted(keys)}, not the grid once")
            else:
                print(f"ran the study's command for indexes 0-{shards - 1} and the merge job's: {len(keys)} episodes, the grid once")

    shutil.rmtree(image_bin, ignore_errors=True)

    if failures:
        print(f"{len(failures)} failures")
        sys.exit(1)
    print("deploy/kubernetes: all checks passed")


if __name__ == "__main__":
    main()
