//! Checks of the suite itself: every contract line is checked by some case, and every case is expanded.

use super::{CASES, lines};

/// The sources of the cases, for the coverage check.
const CASE_SOURCES: &[(&str, &str)] = &[
    ("assignment.rs", include_str!("assignment.rs")),
    ("claims.rs", include_str!("claims.rs")),
    ("jobs.rs", include_str!("jobs.rs")),
    ("leadership.rs", include_str!("leadership.rs")),
    ("members.rs", include_str!("members.rs")),
    ("runs.rs", include_str!("runs.rs")),
    ("sessions.rs", include_str!("sessions.rs")),
    ("watch.rs", include_str!("watch.rs")),
];

#[test]
fn every_contract_line_is_checked_by_a_case() {
    let source = include_str!("lines.rs");
    let names: Vec<&str> = source
        .lines()
        .filter_map(|l| l.strip_prefix("pub const "))
        .filter_map(|l| l.split(':').next())
        .filter(|name| *name != "ALL")
        .collect();
    assert_eq!(
        names.len(),
        lines::ALL.len(),
        "lines::ALL must list every line constant"
    );
    for name in names {
        let used = CASE_SOURCES.iter().any(|(_, src)| {
            src.match_indices(name).any(|(i, _)| {
                let after = src[i + name.len()..].chars().next();
                let before = src[..i].chars().next_back();
                !after.is_some_and(|c| c == '_' || c.is_ascii_alphanumeric())
                    && !before.is_some_and(|c| c == '_' || c.is_ascii_alphanumeric())
            })
        });
        assert!(used, "contract line {name} is checked by no case");
    }
}

#[test]
fn every_case_is_expanded_once() {
    let mut sorted = CASES.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), CASES.len(), "a case is listed twice");
    for (file, src) in CASE_SOURCES {
        for line in src.lines() {
            if let Some(rest) = line.strip_prefix("pub async fn ") {
                let name = rest.split('<').next().unwrap_or(rest);
                assert!(
                    CASES.contains(&name),
                    "case {name} in {file} is not in the macro's list"
                );
            }
        }
    }
}
