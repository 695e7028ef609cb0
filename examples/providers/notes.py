#!/usr/bin/env python3
"""notes: an external Plinth provider (exec protocol 1), standard library only.

Manages "notes": one JSON file per note, `<dir>/<id>.json`, where `dir` is
the `dir` of the configuration or else the NOTES_DIR environment variable.
Resource type `note`, configuration `{dir?, title, body?}`.

Plinth runs this program once per operation, writes ONE JSON request on
stdin and reads ONE JSON answer on stdout. See docs/providers/exec.md.
"""
import json
import os
import sys
import uuid

PROTOCOL = 1


class Failure(Exception):
    def __init__(self, code, message, retryable=False):
        super().__init__(message)
        self.code, self.message, self.retryable = code, message, retryable


def note_dir(config):
    d = (config or {}).get("dir") or os.environ.get("NOTES_DIR")
    if not d:
        raise Failure("no_dir", "set `dir` in the config or NOTES_DIR in the provider's env")
    return d


def note_path(d, note_id):
    if not note_id or "/" in note_id or note_id.startswith("."):
        raise Failure("bad_id", f"not a note id: {note_id!r}")
    return os.path.join(d, note_id + ".json")


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def save(path, note):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(note, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)  # atomic: the old note or the new one, never half


def answer(d, note, config):
    """What Plinth records: the id, the state, and the configuration as the
    note really is (so that edits made outside Plinth show up as drift)."""
    seen = dict(config or {})
    for key in ("title", "body"):
        if key in seen or note.get(key):
            seen[key] = note.get(key, "")
    state = {"path": note_path(d, note["id"]), "title": note["title"], "body": note["body"]}
    return {"protocol": PROTOCOL, "id": note["id"], "state": state, "config": seen}


def write(d, note_id, token, config):
    if not isinstance(config.get("title"), str) or not config["title"]:
        raise Failure("invalid_config", "a note needs a non-empty string `title`")
    note = {"id": note_id, "token": token, "title": config["title"], "body": str(config.get("body", ""))}
    save(note_path(d, note_id), note)
    return answer(d, note, config)


def notes_in(d):
    try:
        names = sorted(os.listdir(d))
    except FileNotFoundError:
        return
    for name in names:
        if name.endswith(".json") and not name.startswith("."):
            note = load(os.path.join(d, name))
            if isinstance(note, dict) and "id" in note:
                yield note


def handle(req):
    op, rtype = req.get("operation"), req.get("type")
    config = req.get("config") or {}
    if op == "schema":
        return {"protocol": PROTOCOL, "types": {"note": {"attributes": {
            "dir": {"type": "string", "required": False},
            "title": {"type": "string", "required": True},
            "body": {"type": "string", "required": False}}}}}
    if rtype != "note":
        raise Failure("unknown_type", f"this provider manages `note`, not {rtype!r}")
    if op == "create":
        return write(note_dir(config), str(uuid.uuid4()), req.get("token"), config)
    if op == "read":
        d = note_dir(config)
        if req.get("id"):
            note = load(note_path(d, req["id"]))
        else:  # an interrupted create: find the note by its idempotency token
            note = next((n for n in notes_in(d) if n.get("token") and n.get("token") == req.get("token")), None)
        if note is None:
            return {"protocol": PROTOCOL, "exists": False}
        return answer(d, note, config)
    if op == "update":
        d = note_dir(config)
        old = load(note_path(d, req["id"])) or {}
        prior_path = (req.get("prior") or {}).get("path")
        result = write(d, req["id"], old.get("token") or req.get("token"), config)
        if prior_path and os.path.abspath(prior_path) != os.path.abspath(note_path(d, req["id"])):
            try:
                os.remove(prior_path)  # the note moved to another directory
            except FileNotFoundError:
                pass
        return result
    if op == "delete":
        path = (req.get("prior") or {}).get("path") or note_path(note_dir(config), req["id"])
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        return {"protocol": PROTOCOL}
    if op == "list":
        dirs = {note_dir(c) for c in req.get("managed") or [config]}
        return {"protocol": PROTOCOL, "objects": [n["id"] for d in sorted(dirs) for n in notes_in(d)]}
    raise Failure("unsupported", f"operation {op!r} is not supported")


def main():
    try:
        req = json.load(sys.stdin)
        if req.get("protocol") != PROTOCOL:
            raise Failure("protocol", f"this program speaks protocol {PROTOCOL}, not {req.get('protocol')!r}")
        out, status = handle(req), 0
    except Failure as e:
        out = {"protocol": PROTOCOL, "error": {"code": e.code, "message": e.message, "retryable": e.retryable}}
        status = 1
    except OSError as e:
        out = {"protocol": PROTOCOL, "error": {"code": "io", "message": str(e), "retryable": False}}
        status = 1
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
