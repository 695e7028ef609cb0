//! Reporting many diagnostics stays linear: checked here rather than in
//! `plinth-base`, because it needs the parser and `declare` to produce the
//! diagnostics the way `plinth validate` does.

use plinth_base::diagnostic::{scanned_bytes, Sources};

/// Checks and renders `n` unknown-name mistakes the way `plinth validate`
/// does; returns the work counted and the rendered text.
fn check_and_render(n: usize) -> (u64, String) {
    let text: String = (0..n).map(|i| format!("let v{i} = v{i}x\n")).collect();
    let mut sources = Sources::default();
    let file = sources.add("main.plinth", text.as_str());
    let parsed = plinth_language::syntax::parse_file(file, &text).expect("parses");
    let before = scanned_bytes();
    let (_, diags) = plinth_language::eval::declare(vec![parsed], sources.clone(), &plinth_sdk::Registry::empty());
    assert_eq!(diags.len(), n);
    let handler = miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor()).with_context_lines(1);
    let mut out = String::new();
    for d in &diags {
        let _ = handler.render_report(&mut out, d.to_report(&sources).as_ref());
        out.push_str(&d.to_json(&sources).to_string());
    }
    (scanned_bytes() - before, out)
}

#[test]
fn reporting_diagnostics_scales_linearly() {
    // Work per diagnostic (bytes of source examined, edit-distance cells
    // for suggestions) must not grow with the number of diagnostics:
    // before the line index and the windowed source, each report scanned
    // the file from its start (8,000 reports: 64 times the work of 1,000).
    let (small, _) = check_and_render(1_000);
    let (large, _) = check_and_render(8_000);
    let ratio = large as f64 / small as f64;
    assert!(ratio < 10.0, "1,000 diagnostics: {small} units, 8,000: {large} units (×{ratio:.1})");
}
