# scripts/services/kubevalidate.sh: the Kubernetes manifest validator the
# catalogue's tests (tests/it/catalogue.rs) run on every rendered stack.
# Sourced by scripts/test.
#
# Installs kubernetes-validate (the Kubernetes OpenAPI schemas of every
# current version, checked with --strict) and jsonschema (for the custom
# resources' hand-written schemas in tests/schemas/) from PyPI into a
# virtualenv cached at target/kube-venv, only when it is missing, and exports
#   PLINTH_KUBE_VALIDATE  the kubernetes-validate executable; the venv's
#                         python beside it runs scripts/validate-manifests.py.
# Nothing is started, so there is nothing to stop.

KUBEVALIDATE_SERVICE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

service_kubevalidate_start() {
  local venv="$KUBEVALIDATE_SERVICE_ROOT/target/kube-venv"
  local tmp="${PLINTH_TEST_TMP:?PLINTH_TEST_TMP must be set}"
  local started=$SECONDS
  if [[ ! -x "$venv/bin/kubernetes-validate" ]] || ! "$venv/bin/python" -c 'import jsonschema, yaml' 2>/dev/null; then
    echo "kubevalidate: installing kubernetes-validate and jsonschema into $venv"
    mkdir -p "$KUBEVALIDATE_SERVICE_ROOT/target"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check kubernetes-validate jsonschema pyyaml >"$tmp/kubevalidate-pip.log" 2>&1 || {
      cat "$tmp/kubevalidate-pip.log" >&2
      echo "kubevalidate: pip install kubernetes-validate jsonschema failed" >&2
      rm -rf "$venv"
      return 1
    }
  fi
  export PLINTH_KUBE_VALIDATE="$venv/bin/kubernetes-validate"
  echo "kubevalidate: kubernetes-validate $("$PLINTH_KUBE_VALIDATE" --version 2>&1 | tr -d '\n'), jsonschema $("$venv/bin/python" -c 'import jsonschema, importlib.metadata as m; print(m.version("jsonschema"))') (ready in $((SECONDS - started)) s)"
}

service_kubevalidate_stop() {
  unset PLINTH_KUBE_VALIDATE
}
