//! Human and JSON renderings of plans, states and outputs. Sensitive values
//! render as `(sensitive)` everywhere; unknown ones as `(known after apply)`.

use crate::plan::{Action, Change, Plan};
use crate::providers::ContentPreview;
use crate::value::{escape_line, quoted, Map, Value};
use std::fmt::Write;

#[derive(Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }
    pub fn action(&self, action: Action, cbd: bool) -> String {
        let sym = action.symbol(cbd);
        match action {
            Action::Create => self.paint("32", sym),
            Action::Update => self.paint("33", sym),
            Action::Replace => self.paint("35", sym),
            Action::Delete => self.paint("31", sym),
            Action::NoOp => sym.to_string(),
        }
    }
    pub fn red(&self, text: &str) -> String {
        self.paint("31", text)
    }
    pub fn green(&self, text: &str) -> String {
        self.paint("32", text)
    }
}

fn is_multiline(v: &Value) -> bool {
    matches!(v, Value::String(s) if s.contains('\n'))
}

/// Column width of the attribute names that will be shown (null ones are not).
fn width(map: &Map) -> usize {
    map.iter().filter(|(_, v)| !matches!(v, Value::Null)).map(|(k, _)| k.chars().count()).max().unwrap_or(0)
}

/// The human plan: one block per changed instance, then the summary.
pub fn plan_text(plan: &Plan, style: Style) -> String {
    let mut out = String::new();
    let changed: Vec<&Change> = plan.changes.iter().filter(|c| c.action != Action::NoOp).collect();
    if changed.is_empty() && !plan.outputs_changed() {
        out.push_str("No changes. The recorded state matches the configuration.\n");
        return out;
    }
    if !changed.is_empty() {
        let _ = writeln!(out, "Plinth will perform these actions:\n");
    }
    if plan.components.is_empty() {
        changes_text(&mut out, &changed, style);
    } else {
        // Grouped by component, the innermost one that holds the address,
        // in the order they first change.
        let mut groups: Vec<(Option<usize>, Vec<&Change>)> = Vec::new();
        for c in &changed {
            let owner = plan
                .components
                .iter()
                .enumerate()
                .filter(|(_, (a, _, _))| crate::plan::in_component(a, &c.address))
                .max_by_key(|(_, (a, _, _))| a.len())
                .map(|(i, _)| i);
            match groups.iter_mut().find(|(o, _)| *o == owner) {
                Some((_, list)) => list.push(c),
                None => groups.push((owner, vec![c])),
            }
        }
        for (owner, list) in groups {
            let title = match owner {
                Some(i) => {
                    let (address, kind, source) = &plan.components[i];
                    format!("{address} ({kind} from {source})")
                }
                None => "root module".to_string(),
            };
            let mut parts = Vec::new();
            for (a, word) in [(Action::Create, "to create"), (Action::Update, "to update"), (Action::Replace, "to replace"), (Action::Delete, "to destroy")] {
                let n = list.iter().filter(|c| c.action == a).count();
                if n > 0 {
                    parts.push(format!("{n} {word}"));
                }
            }
            let _ = writeln!(out, "  {} {}\n", style.bold(&format!("# {title}:")), parts.join(", "));
            changes_text(&mut out, &list, style);
        }
    }
    let s = plan.summary();
    let _ = writeln!(out, "{} {} to create, {} to update, {} to replace, {} to destroy.", style.bold("Plan:"), s.create, s.update, s.replace, s.delete);
    let mut changed_outputs: Vec<_> = plan
        .outputs
        .iter()
        .filter(|o| match &o.before {
            None => true,
            Some(b) => o.after.is_unknown_deep() || &o.after.to_json() != b,
        })
        .collect();
    // Outputs print in one order everywhere: by name.
    changed_outputs.sort_by(|a, b| a.name.cmp(&b.name));
    if !changed_outputs.is_empty() {
        let _ = writeln!(out, "\nChanges to outputs:");
        for o in changed_outputs {
            let shown = if o.sensitive { "(sensitive)".to_string() } else { o.after.to_string() };
            let sym = if o.before.is_some() { style.action(Action::Update, false) } else { style.action(Action::Create, false) };
            let _ = writeln!(out, "  {sym} {} = {shown}", o.name);
        }
    }
    out
}

fn changes_text(out: &mut String, changed: &[&Change], style: Style) {
    for c in changed {
        let header = match c.action {
            Action::Replace => {
                let why = if c.replace_because.is_empty() {
                    String::new()
                } else {
                    format!(" (changing {} forces replacement)", c.replace_because.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", "))
                };
                format!("{} will be replaced{}{why}", c.address, if c.create_before_destroy { ", new object first" } else { "" })
            }
            Action::Delete if !c.deposed.is_empty() => format!("{} (deposed object {}) will be destroyed", c.address, c.deposed),
            a => format!("{} will be {}", c.address, a.verb()),
        };
        let _ = writeln!(*out, "  {} {}", style.action(c.action, c.create_before_destroy), style.bold(&escape_line(&header)));
        match c.action {
            Action::Create => {
                if let Some(after) = &c.after {
                    let w = width(after);
                    for (k, v) in after {
                        if matches!(v, Value::Null) || k == plinth_sdk::BOOKKEEPING {
                            continue;
                        }
                        attr_line(out, w, k, None, v, style, "+");
                    }
                }
            }
            Action::Update | Action::Replace => {
                let empty = Map::default();
                let before = c.before.as_ref().unwrap_or(&empty);
                if let Some(after) = &c.after {
                    let w = width(after);
                    for (k, v) in after {
                        let old = before.get(k).unwrap_or(&Value::Null);
                        if (old == v && !v.is_unknown_deep()) || k == plinth_sdk::BOOKKEEPING {
                            continue;
                        }
                        if matches!(v, Value::Unknown) && matches!(old, Value::Null) {
                            attr_line(out, w, k, None, v, style, "+");
                            continue;
                        }
                        if let (Value::Map(a), Value::Map(b)) = (old, v) {
                            // Per entry: which files of a `file.tree` change,
                            // as line diffs where the content is known.
                            let previews: Vec<&ContentPreview> = c.previews.iter().filter(|p| p.attribute == *k).collect();
                            map_lines(out, k, a, b, &previews, style);
                            continue;
                        }
                        attr_line(out, w, k, Some(old), v, style, "~");
                    }
                }
            }
            Action::Delete | Action::NoOp => {}
        }
        out.push('\n');
    }
}

/// The entries of a map attribute that differ: `~ k["key"] = old → new`,
/// `+` for added and `-` for removed keys; nested maps entry by entry
/// (`~ vars["charts"]["argocd"] = …`), so a long object shows what changed.
/// An entry with a preview (a rendered file) shows its line diff instead of
/// hashes; a sensitive one only that it changes.
fn map_lines(out: &mut String, k: &str, old: &Map, new: &Map, previews: &[&ContentPreview], style: Style) {
    let preview = |key: &str| previews.iter().find(|p| p.key == key);
    let diff = |out: &mut String, sym: &str, path: &str, p: &ContentPreview| -> bool {
        if p.sensitive {
            let _ = writeln!(out, "      {sym} {path} = (sensitive content)");
            return true;
        }
        match (&p.before, &p.after) {
            (Some(a), Some(b)) => {
                let _ = writeln!(out, "      {sym} {path}:");
                line_diff(out, a, b, style);
                true
            }
            (None, Some(b)) if sym != "~" => {
                let _ = writeln!(out, "      {sym} {path}:");
                line_diff(out, "", b, style);
                true
            }
            _ => false,
        }
    };
    for (key, v) in new {
        let path = format!("{k}[{}]", quoted(key));
        match old.get(key) {
            Some(o) if o == v => {}
            Some(Value::Map(a)) if matches!(v, Value::Map(_)) => {
                if let Value::Map(b) = v {
                    map_lines(out, &path, a, b, &[], style);
                }
            }
            Some(o) => {
                if preview(key).is_some_and(|p| diff(out, "~", &path, p)) {
                    continue;
                }
                match (o, v) {
                    // A multi-line text (a rendered manifest in `vars`) as a
                    // line diff, as a multi-line attribute is shown.
                    (Value::String(a), Value::String(b)) if is_multiline(o) || is_multiline(v) => {
                        let _ = writeln!(out, "      ~ {path}:");
                        line_diff(out, a, b, style);
                    }
                    _ => {
                        let _ = writeln!(out, "      ~ {path} = {o} → {v}");
                    }
                }
            }
            None => {
                if !preview(key).is_some_and(|p| diff(out, &style.green("+"), &path, p)) {
                    let _ = writeln!(out, "      {} {path} = {v}", style.green("+"));
                }
            }
        }
    }
    for (key, o) in old {
        if !new.contains_key(key) {
            let _ = writeln!(out, "      {} {k}[{}] = {o}", style.red("-"), quoted(key));
        }
    }
}

/// Lines of `a` → `b`, changed ones with two lines of context.
fn line_diff(out: &mut String, a: &str, b: &str, style: Style) {
    let diff = similar::TextDiff::from_lines(a, b);
    for group in diff.grouped_ops(2) {
        for op in group {
            for change in diff.iter_changes(&op) {
                let line = escape_line(change.value().trim_end_matches('\n'));
                match change.tag() {
                    similar::ChangeTag::Delete => {
                        let _ = writeln!(out, "          {}", style.red(&format!("- {line}")));
                    }
                    similar::ChangeTag::Insert => {
                        let _ = writeln!(out, "          {}", style.green(&format!("+ {line}")));
                    }
                    similar::ChangeTag::Equal => {
                        let _ = writeln!(out, "            {line}");
                    }
                }
            }
        }
    }
}

/// One-line renderings longer than this print a map one key per line.
const LONG_LINE: usize = 80;

/// `k = {` then one `key = value` line per entry (nested long maps the
/// same way, further indented), then `}`.
fn long_map(out: &mut String, indent: usize, head: &str, map: &Map) {
    let pad = " ".repeat(indent);
    let _ = writeln!(out, "{pad}{head} = {{");
    let w = map.keys().map(|k| k.chars().count()).max().unwrap_or(0);
    for (key, v) in map {
        let name = crate::value::display_key(key);
        match v {
            Value::Map(m) if !m.is_empty() && v.to_string().chars().count() > LONG_LINE => long_map(out, indent + 4, &name, m),
            _ => {
                let gap = " ".repeat(w.saturating_sub(key.chars().count()));
                let _ = writeln!(out, "{pad}    {name}{gap} = {v}");
            }
        }
    }
    let _ = writeln!(out, "{pad}  }}");
}

fn attr_line(out: &mut String, w: usize, k: &str, old: Option<&Value>, new: &Value, style: Style, sym: &str) {
    let pad = " ".repeat(w.saturating_sub(k.chars().count()));
    match old {
        Some(old) if is_multiline(old) || is_multiline(new) => {
            if let (Value::String(a), Value::String(b)) = (old, new) {
                let _ = writeln!(out, "      {sym} {k}:");
                line_diff(out, a, b, style);
            } else {
                let _ = writeln!(out, "      {sym} {k}{pad} = {old} → {new}");
            }
        }
        Some(old) => {
            let _ = writeln!(out, "      {sym} {k}{pad} = {old} → {new}");
        }
        None if is_multiline(new) => {
            let Value::String(s) = new else { return };
            let _ = writeln!(out, "      {sym} {k}{pad} = <<EOT");
            for line in s.lines() {
                let _ = writeln!(out, "            {}", escape_line(line));
            }
            let _ = writeln!(out, "          EOT");
        }
        None => match new {
            Value::Map(m) if !m.is_empty() && new.to_string().chars().count() > LONG_LINE => long_map(out, 6, &format!("{sym} {k}{pad}"), m),
            _ => {
                let _ = writeln!(out, "      {sym} {k}{pad} = {new}");
            }
        },
    }
}

/// JSON with secrets and unknowns replaced by markers.
pub fn redacted_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Sensitive(_) => serde_json::Value::String("(sensitive)".into()),
        Value::Unknown => serde_json::Value::String("(known after apply)".into()),
        Value::List(items) => serde_json::Value::Array(items.iter().map(redacted_json).collect()),
        Value::Map(m) => serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), redacted_json(v))).collect()),
        other => other.to_json(),
    }
}

fn names_where(map: &Map, pred: impl Fn(&Value) -> bool) -> Vec<String> {
    map.iter().filter(|(_, v)| pred(v)).map(|(k, _)| k.clone()).collect()
}

pub fn plan_json(plan: &Plan) -> serde_json::Value {
    let s = plan.summary();
    let changes: Vec<serde_json::Value> = plan
        .changes
        .iter()
        .map(|c| {
            serde_json::json!({
                "address": c.address,
                "resource": c.resource,
                "provider": c.provider,
                "type": format!("{}.{}", c.provider_name, c.rtype),
                "action": c.action,
                "deposed": if c.deposed.is_empty() { None } else { Some(&c.deposed) },
                "create_before_destroy": c.create_before_destroy,
                "replace_because": c.replace_because,
                "before": c.before.as_ref().map(|m| redacted_json(&Value::Map(m.clone()))),
                "after": c.after.as_ref().map(|m| redacted_json(&Value::Map(m.clone()))),
                "after_unknown": c.after.as_ref().map(|m| names_where(m, Value::is_unknown_deep)).unwrap_or_default(),
                "sensitive": c.after.as_ref().or(c.before.as_ref()).map(|m| names_where(m, Value::is_sensitive_deep)).unwrap_or_default(),
            })
        })
        .collect();
    let mut sorted: Vec<_> = plan.outputs.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let outputs: Vec<serde_json::Value> = sorted
        .into_iter()
        .map(|o| {
            serde_json::json!({
                "name": o.name,
                "sensitive": o.sensitive,
                "value": if o.sensitive { serde_json::Value::String("(sensitive)".into()) } else { redacted_json(&o.after) },
                "known": !o.after.is_unknown_deep(),
            })
        })
        .collect();
    serde_json::json!({
        "format_version": 1,
        "env": plan.env,
        "prior_serial": plan.prior_serial,
        "destroy": plan.destroy,
        "has_changes": plan.has_changes(),
        "summary": { "create": s.create, "update": s.update, "replace": s.replace, "destroy": s.delete, "unchanged": plan.unchanged },
        "changes": changes,
        "outputs": outputs,
    })
}

// ---------------------------------------------------------------- drift

use crate::plan::drift::{ObjectDrift, Status};

/// The drift report as text.
pub fn drift_text(
    env: &str,
    serial: i64,
    drift: &[ObjectDrift],
    unmanaged: &[(String, String)],
    remediation: Option<&crate::plan::Summary>,
    style: Style,
) -> String {
    let mut out = String::new();
    let drifted: Vec<&ObjectDrift> = drift.iter().filter(|d| d.status != Status::InSync).collect();
    let _ = writeln!(out, "Drift in `{env}` (state serial {serial}): {} object(s) read back.\n", drift.len());
    for d in &drifted {
        let name = if d.deposed.is_empty() { d.address.clone() } else { format!("{} (deposed {})", d.address, d.deposed) };
        match d.status {
            Status::Deleted => {
                let _ = writeln!(out, "  {} {} was deleted outside Plinth", style.action(Action::Delete, false), style.bold(&name));
            }
            _ => {
                let _ = writeln!(out, "  {} {} was changed outside Plinth", style.action(Action::Update, false), style.bold(&name));
                let w = d.attributes.iter().map(|a| a.name.chars().count()).max().unwrap_or(0);
                for a in &d.attributes {
                    let recorded = Value::from_json(&a.recorded);
                    let actual = Value::from_json(&a.actual);
                    let recorded = if a.sensitive { Value::Sensitive(Box::new(recorded)) } else { recorded };
                    let actual = if a.sensitive { Value::Sensitive(Box::new(actual)) } else { actual };
                    attr_line(&mut out, w, &a.name, Some(&recorded), &actual, style, "~");
                }
            }
        }
        out.push('\n');
    }
    for (kind, what) in unmanaged {
        let _ = writeln!(out, "  {} {what} is not managed by Plinth ({kind})", style.red("?"));
    }
    if !unmanaged.is_empty() {
        out.push('\n');
    }
    let in_sync = drift.len() - drifted.len();
    let _ = write!(out, "{} {} drifted, {in_sync} in sync, {} unmanaged.", style.bold("Drift:"), drifted.len(), unmanaged.len());
    if let Some(r) = remediation {
        if r.create + r.update + r.replace + r.delete > 0 {
            let _ = write!(
                out,
                " Restoring the configuration (`plinth drift --fix`): {} to create, {} to update, {} to replace, {} to destroy; keeping reality instead: `plinth drift --accept`.",
                r.create, r.update, r.replace, r.delete
            );
        }
    }
    out.push('\n');
    out
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML for CI systems: one test case per managed object (a failure
/// when it drifted) and one failing case per unmanaged object.
pub fn drift_junit(env: &str, at: &str, drift: &[ObjectDrift], unmanaged: &[(String, String)]) -> String {
    let failures = drift.iter().filter(|d| d.status != Status::InSync).count() + unmanaged.len();
    let tests = drift.len() + unmanaged.len();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(out, "<testsuites name=\"plinth drift\" tests=\"{tests}\" failures=\"{failures}\">");
    let _ = writeln!(out, "  <testsuite name=\"drift: {}\" tests=\"{tests}\" failures=\"{failures}\" timestamp=\"{}\">", xml_escape(env), xml_escape(at));
    for d in drift {
        let class = d.address.splitn(3, '.').take(2).collect::<Vec<_>>().join(".");
        let name = xml_escape(&d.address);
        match d.status {
            Status::InSync => {
                let _ = writeln!(out, "    <testcase classname=\"{}\" name=\"{name}\"/>", xml_escape(&class));
            }
            Status::Deleted => {
                let _ = writeln!(
                    out,
                    "    <testcase classname=\"{}\" name=\"{name}\">\n      <failure type=\"deleted\" message=\"deleted outside Plinth\"/>\n    </testcase>",
                    xml_escape(&class)
                );
            }
            Status::Changed => {
                let detail: Vec<String> = d.attributes.iter().map(|a| format!("{}: {} -> {}", a.name, a.recorded, a.actual)).collect();
                let _ = writeln!(
                    out,
                    "    <testcase classname=\"{}\" name=\"{name}\">\n      <failure type=\"changed\" message=\"{} attribute(s) changed outside Plinth\">{}</failure>\n    </testcase>",
                    xml_escape(&class),
                    d.attributes.len(),
                    xml_escape(&detail.join("\n"))
                );
            }
        }
    }
    for (kind, what) in unmanaged {
        let _ = writeln!(
            out,
            "    <testcase classname=\"unmanaged.{}\" name=\"{}\">\n      <failure type=\"unmanaged\" message=\"not managed by Plinth\"/>\n    </testcase>",
            xml_escape(kind),
            xml_escape(what)
        );
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> Map {
        pairs.iter().map(|(k, v)| (k.to_string(), Value::str(*v))).collect()
    }

    #[test]
    fn rendered_files_show_line_diffs_and_sensitive_ones_no_text() {
        let style = Style { color: false };
        let old = map(&[("a.yaml", "h1"), ("s.yaml", "h3")]);
        let new = map(&[("a.yaml", "h2"), ("s.yaml", "h4")]);
        let a = ContentPreview {
            attribute: "files".into(),
            key: "a.yaml".into(),
            before: Some("x: 1\ny: 2\n".into()),
            after: Some("x: 1\ny: 3\n".into()),
            sensitive: false,
        };
        let s = ContentPreview {
            attribute: "files".into(),
            key: "s.yaml".into(),
            before: Some("pw: old-secret\n".into()),
            after: Some("pw: new-secret\n".into()),
            sensitive: true,
        };
        let mut out = String::new();
        map_lines(&mut out, "files", &old, &new, &[&a, &s], style);
        assert!(out.contains("~ files[\"a.yaml\"]:\n") && out.contains("- y: 2") && out.contains("+ y: 3") && out.contains("  x: 1"), "{out}");
        assert!(!out.contains("h1") && !out.contains("h2"), "hashes shown beside the diff: {out}");
        assert!(out.contains("~ files[\"s.yaml\"] = (sensitive content)"), "{out}");
        assert!(!out.contains("secret"), "sensitive content shown: {out}");
    }

    #[test]
    fn multi_line_texts_inside_a_map_show_line_diffs() {
        let style = Style { color: false };
        let before = "kind: Application\nspec:\n  targetRevision: 0.23.0\n  project: default\n";
        let after = "kind: Application\nspec:\n  targetRevision: 0.24.0\n  project: default\n";
        let old: Map = [("applications".to_string(), Value::Map(map(&[("dex", before), ("argo_cd", "same\ntext\n")])))].into_iter().collect();
        let new: Map = [("applications".to_string(), Value::Map(map(&[("dex", after), ("argo_cd", "same\ntext\n")])))].into_iter().collect();
        let mut out = String::new();
        map_lines(&mut out, "vars", &old, &new, &[], style);
        assert_eq!(
            out,
            "      ~ vars[\"applications\"][\"dex\"]:\n            kind: Application\n            spec:\n          -   targetRevision: 0.23.0\n          +   targetRevision: 0.24.0\n              project: default\n"
        );
    }

    #[test]
    fn long_objects_print_one_key_per_line() {
        let mut out = String::new();
        let short = Value::Map(map(&[("a", "b")]));
        attr_line(&mut out, 4, "vars", None, &short, Style { color: false }, "+");
        assert_eq!(out, "      + vars = { a = \"b\" }\n");
        let mut out = String::new();
        let long = Value::Map(map(&[("domain", "example.org"), ("organisation", "platform-team"), ("cluster_name", "edp-prod-eu-de-1")]));
        attr_line(&mut out, 4, "vars", None, &long, Style { color: false }, "+");
        assert_eq!(
            out,
            "      + vars = {\n          domain       = \"example.org\"\n          organisation = \"platform-team\"\n          cluster_name = \"edp-prod-eu-de-1\"\n        }\n"
        );
    }
}
