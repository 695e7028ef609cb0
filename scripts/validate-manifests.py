#!/usr/bin/env python3
"""Validate every Kubernetes manifest under one or more directories.

usage: validate-manifests.py [--kube-version X.Y.Z] DIR [DIR ...]

Walks each DIR for *.yaml / *.yml files, splits multi-document YAML, and
checks every document:

- built-in kinds (Deployment, ConfigMap, Namespace, StorageClass, ...) with
  `kubernetes-validate --strict -k <version>` (the executable named by
  $PLINTH_KUBE_VALIDATE, else the one beside this Python interpreter; one
  call for all documents);
- custom resources (Argo CD Application, cert-manager ClusterIssuer,
  CloudNativePG Cluster, Grafana operator kinds) with the hand-written JSON
  Schemas in tests/schemas/<group>_<kind>.json (Python `jsonschema`), since
  kubernetes-validate has no schemas for CRDs;
- Helm values: every Helm values file (values.yaml, *-values.yaml,
  *.values.yaml, or any file under a values/ directory) must parse as YAML
  into a mapping, and so must an Argo CD Application's inline Helm values
  (spec.source.helm.values as text, valuesObject as an object).

A document that does not parse, is not a Kubernetes object, has a kind no
schema knows, or is invalid fails the run: exit 1, each failure naming the
file and the document's index (0-based) and kind/name. Exit 0 when every
document is valid; exit 2 on usage errors.

scripts/services/kubevalidate.sh installs kubernetes-validate and jsonschema
into target/kube-venv and exports PLINTH_KUBE_VALIDATE; run this script with
that venv's Python (target/kube-venv/bin/python).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

try:
    import yaml
except ImportError:  # pragma: no cover - environment problem
    sys.exit("validate-manifests: PyYAML is missing; run it with target/kube-venv/bin/python (scripts/services/kubevalidate.sh installs it)")

try:
    import jsonschema
except ImportError:  # pragma: no cover - environment problem
    sys.exit("validate-manifests: jsonschema is missing; run it with target/kube-venv/bin/python (scripts/services/kubevalidate.sh installs it)")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA_DIR = os.path.join(ROOT, "tests", "schemas")
DEFAULT_KUBE_VERSION = "1.33.0"


def load_crd_schemas():
    """(apiVersion, kind) -> (schema path, validator) for tests/schemas/*.json."""
    table = {}
    for entry in sorted(os.listdir(SCHEMA_DIR)):
        if not entry.endswith(".json"):
            continue
        path = os.path.join(SCHEMA_DIR, entry)
        with open(path, encoding="utf-8") as f:
            schema = json.load(f)
        ident = schema.get("x-kubernetes-group-version-kind")
        if not ident:
            sys.exit(f"validate-manifests: {path} lacks x-kubernetes-group-version-kind")
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        for gvk in ident:
            api_version = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
            table[(api_version, gvk["kind"])] = (os.path.relpath(path, ROOT), cls(schema))
    return table


def is_values_file(rel):
    parts = rel.split(os.sep)
    name = parts[-1]
    return (
        name in ("values.yaml", "values.yml")
        or re.search(r"[-.]values\.ya?ml$", name) is not None
        or "values" in parts[:-1]
    )


def describe(doc):
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    ns = meta.get("namespace")
    name = meta.get("name", "?")
    return f"{doc.get('kind', '?')} {ns + '/' if ns else ''}{name}"


def error_path(err):
    return ".".join(str(p) for p in err.absolute_path) or "(root)"


def kubernetes_validate_executable():
    exe = os.environ.get("PLINTH_KUBE_VALIDATE")
    if exe:
        return exe
    beside = os.path.join(os.path.dirname(sys.executable), "kubernetes-validate")
    if os.path.exists(beside):
        return beside
    sys.exit("validate-manifests: PLINTH_KUBE_VALIDATE is not set and no kubernetes-validate is beside this Python; source scripts/services/kubevalidate.sh")


def check_helm_values(doc, where, failures):
    """An Application's inline Helm values must be a mapping (or YAML text of one)."""
    spec = doc.get("spec") or {}
    sources = list(spec.get("sources") or [])
    if spec.get("source"):
        sources.append(spec["source"])
    for source in sources:
        helm = (source or {}).get("helm") or {}
        if "values" in helm:
            try:
                values = yaml.safe_load(helm["values"]) if isinstance(helm["values"], str) else None
            except yaml.YAMLError as e:
                failures.append(f"{where}: spec.source.helm.values is not YAML: {e}")
                continue
            if values is not None and not isinstance(values, dict):
                failures.append(f"{where}: spec.source.helm.values is not a YAML mapping")
        if "valuesObject" in helm and not isinstance(helm["valuesObject"], dict):
            failures.append(f"{where}: spec.source.helm.valuesObject is not a mapping")


def main():
    parser = argparse.ArgumentParser(description="Validate the Kubernetes manifests and Helm values under directories.")
    parser.add_argument("--kube-version", default=os.environ.get("PLINTH_KUBE_VERSION", DEFAULT_KUBE_VERSION),
                        help=f"Kubernetes version of the built-in schemas (default {DEFAULT_KUBE_VERSION}, or $PLINTH_KUBE_VERSION)")
    parser.add_argument("dirs", nargs="+", metavar="DIR")
    args = parser.parse_args()

    crds = load_crd_schemas()
    failures = []
    builtin = []  # (where, doc)
    counts = {"documents": 0, "crd": 0, "builtin": 0, "values": 0}

    for top in args.dirs:
        if not os.path.isdir(top):
            print(f"validate-manifests: {top} is not a directory", file=sys.stderr)
            return 2
        files = []
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            for name in sorted(filenames):
                if name.endswith((".yaml", ".yml")):
                    files.append(os.path.join(dirpath, name))
        if not files:
            failures.append(f"{top}: no YAML files")
        for path in files:
            rel = os.path.relpath(path, top)
            shown = os.path.join(top, rel)
            try:
                with open(path, encoding="utf-8") as f:
                    docs = list(yaml.safe_load_all(f))
            except (yaml.YAMLError, UnicodeDecodeError) as e:
                failures.append(f"{shown}: not valid YAML: {e}")
                continue
            if is_values_file(rel):
                counts["values"] += 1
                for i, doc in enumerate(docs):
                    if doc is not None and not isinstance(doc, dict):
                        failures.append(f"{shown} document {i}: Helm values must be a mapping, found {type(doc).__name__}")
                continue
            for i, doc in enumerate(docs):
                if doc is None:
                    continue  # an empty document (comments only, or a disabled template)
                counts["documents"] += 1
                where = f"{shown} document {i}"
                if not isinstance(doc, dict) or not doc.get("apiVersion") or not doc.get("kind"):
                    failures.append(f"{where}: not a Kubernetes object (no apiVersion/kind)")
                    continue
                where = f"{where} ({describe(doc)})"
                meta = doc.get("metadata")
                if not isinstance(meta, dict) or not meta.get("name"):
                    failures.append(f"{where}: metadata.name is missing")
                    continue
                key = (doc["apiVersion"], doc["kind"])
                if key in crds:
                    counts["crd"] += 1
                    schema_path, validator = crds[key]
                    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
                    for err in errors:
                        failures.append(f"{where}: {error_path(err)}: {err.message} (schema {schema_path})")
                    if doc["kind"] == "Application":
                        check_helm_values(doc, where, failures)
                else:
                    counts["builtin"] += 1
                    builtin.append((where, doc))

    if builtin:
        exe = kubernetes_validate_executable()
        with tempfile.TemporaryDirectory(prefix="validate-manifests.") as tmp:
            by_file = {}
            for n, (where, doc) in enumerate(builtin):
                name = os.path.join(tmp, f"doc{n:04d}.yaml")
                with open(name, "w", encoding="utf-8") as f:
                    yaml.safe_dump(doc, f, sort_keys=False)
                by_file[name] = where
            cmd = [exe, "--strict", "-k", args.kube_version, *by_file.keys()]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            passed = set()
            for line in (proc.stdout + proc.stderr).splitlines():
                m = re.match(r"^(INFO|WARN|ERROR)\s+(\S+)\s+(.*)$", line)
                if not m or m.group(2) not in by_file:
                    if line.strip():
                        failures.append(f"kubernetes-validate: {line.strip()}")
                    continue
                level, name, message = m.groups()
                if level == "INFO" and " passed " in f" {message} ":
                    passed.add(name)
                elif "Couldn't find schema" in message:
                    failures.append(f"{by_file[name]}: unknown kind: no schema in Kubernetes {args.kube_version} and none in tests/schemas ({message})")
                else:
                    failures.append(f"{by_file[name]}: {message}")
            for name, where in by_file.items():
                if name not in passed and not any(f.startswith(where) for f in failures):
                    failures.append(f"{where}: kubernetes-validate did not report it as valid (exit {proc.returncode})")

    if failures:
        for f in failures:
            print(f"INVALID {f}")
        print(f"validate-manifests: {len(failures)} problem(s) in {counts['documents']} document(s)", file=sys.stderr)
        return 1
    print(
        f"validate-manifests: {counts['documents']} document(s) valid "
        f"({counts['builtin']} built-in against Kubernetes {args.kube_version} --strict, "
        f"{counts['crd']} custom resources against tests/schemas), {counts['values']} Helm values file(s) parse"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
