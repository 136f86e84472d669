//! Checks of the suite itself: every contract line is checked by some case, and every case is expanded.

use super::{CASES, lines};

/// The sources of the cases, for the coverage check.
const CASE_SOURCES: &[(&str, &str)] = &[
    ("assignment.rs", include_str!("assignment.rs")),
    ("batch.rs", include_str!("batch.rs")),
    ("claims.rs", include_str!("claims.rs")),
    ("deletes.rs", include_str!("deletes.rs")),
    ("jobs.rs", include_str!("jobs.rs")),
    ("leadership.rs", include_str!("leadership.rs")),
    ("members.rs", include_str!("members.rs")),
    ("release.rs", include_str!("release.rs")),
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

/// The `### To ensure correctness:` bullets of each method of the `Coordinator` trait (and of the trait
/// itself, under `Coordinator`), counted from its source.
fn contract_bullets() -> std::collections::BTreeMap<String, usize> {
    let source = include_str!("../../../engine/src/coordinator.rs");
    let lines: Vec<&str> = source.lines().map(str::trim).collect();
    let mut bullets = std::collections::BTreeMap::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i] != "/// ### To ensure correctness:" {
            i += 1;
            continue;
        }
        i += 1;
        let mut count = 0;
        while i < lines.len() && lines[i].starts_with("///") {
            count += usize::from(lines[i].starts_with("/// - "));
            i += 1;
        }
        // The item the list documents: the next `fn NAME` or `trait NAME`.
        let name = lines[i..]
            .iter()
            .find_map(|l| {
                let rest = l.split("fn ").nth(1).or_else(|| l.split("trait ").nth(1))?;
                Some(rest.split(['(', '<', ':', ' ']).next()?.to_owned())
            })
            .expect("a correctness list documents an item");
        *bullets.entry(name).or_default() += count;
    }
    bullets
}

#[test]
fn every_contract_bullet_has_a_line_constant() {
    let bullets = contract_bullets();
    assert!(
        bullets.len() >= 20 && bullets.get("claim_fires").is_some_and(|&n| n >= 6),
        "the trait's correctness lists were not found: {bullets:?}"
    );
    let mut constants = std::collections::BTreeMap::<&str, usize>::new();
    for line in lines::ALL {
        let item = line.split(':').next().unwrap_or_default();
        // `(doc)` lines check promises made outside the lists; they do not stand for a bullet.
        if !item.contains("(doc)") {
            *constants.entry(item).or_default() += 1;
        }
    }
    for (item, &count) in &bullets {
        let have = constants.get(item.as_str()).copied().unwrap_or(0);
        assert!(
            have >= count,
            "{item} has {count} bullets under `### To ensure correctness:` but only {have} line constants in \
             suite/lines.rs: a rule without a constant (and a case that checks it) goes unchecked"
        );
    }
}

#[test]
fn every_contract_line_has_a_contract_break() {
    use crate::ContractBreak;
    for line in lines::ALL {
        let breaks: Vec<ContractBreak> = ContractBreak::ALL
            .iter()
            .copied()
            .filter(|b| b.line() == *line)
            .collect();
        assert!(
            !breaks.is_empty(),
            "contract line \"{line}\" has no ContractBreak: nothing shows that the suite catches a backend \
             that breaks it"
        );
    }
    for b in ContractBreak::ALL {
        assert!(
            CASES.contains(&b.case()),
            "{b:?} names the case {}, which the suite does not have",
            b.case()
        );
        let file = CASE_SOURCES
            .iter()
            .find(|(_, src)| src.contains(&format!("pub async fn {}<", b.case())))
            .map(|(_, src)| *src)
            .unwrap_or_default();
        let name = lines_constant_name(b.line());
        assert!(
            file.contains(name),
            "{b:?} expects {} to fail on {name}, which that case does not check",
            b.case()
        );
    }
}

/// The name of the constant in `lines.rs` that holds `line`.
fn lines_constant_name(line: &str) -> &'static str {
    let source = include_str!("lines.rs");
    let mut name = "";
    for l in source.lines() {
        if let Some(rest) = l.strip_prefix("pub const ") {
            name = rest.split(':').next().unwrap_or_default();
        }
        if l.contains(&format!("\"{line}\"")) && !name.is_empty() {
            return name;
        }
    }
    panic!("no constant holds \"{line}\"")
}

/// The crate's README, the guide a backend author reads.
const README: &str = include_str!("../../README.md");

#[test]
fn the_readme_lists_every_case() {
    let start = README
        .find("### The cases")
        .expect("the README has a case table");
    let listed: Vec<&str> = README[start..]
        .lines()
        .skip_while(|l| !l.starts_with("| case |"))
        .skip(2)
        .take_while(|l| l.starts_with("| `"))
        .filter_map(|l| l.strip_prefix("| `")?.split('`').next())
        .collect();
    for case in CASES {
        assert!(
            listed.contains(case),
            "case {case} is missing from the README's case table"
        );
    }
    for case in &listed {
        assert!(
            CASES.contains(case),
            "the README's case table lists {case}, which the suite does not have"
        );
    }
    assert_eq!(listed.len(), CASES.len(), "a case is listed twice");
}

#[test]
fn the_readme_counts_are_current() {
    let figure = format!(
        "**{} lines, {} cases, {} mutants caught.**",
        lines::ALL.len(),
        CASES.len(),
        crate::ContractBreak::ALL.len()
    );
    assert!(
        README.contains(&figure),
        "the README's counts are stale: expected {figure}"
    );
}

#[test]
fn session_ids_print_one_way() {
    // Failure messages show a session id as `SessionId(4)` ({:?}), as the claims and members they print
    // do; the hexadecimal `Display` form would show the same id two ways in one message.
    let support = ("support.rs", include_str!("support.rs"));
    for (file, src) in CASE_SOURCES.iter().chain([&support]) {
        for pattern in [
            "{session}",
            "{holder}",
            "session {}",
            "leadership of {}",
            "by {}",
        ] {
            assert!(
                !src.contains(pattern),
                "{file} formats a session id with `{pattern}`; use {{:?}}"
            );
        }
    }
}
