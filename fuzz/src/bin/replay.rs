//! Runs fuzz inputs through the same checks as the libFuzzer targets, on stable cargo: the seed corpus in CI,
//! a crash artifact while debugging, and optionally seeded mutations of the inputs (a smoke fuzz without
//! coverage guidance).
//!
//! Usage: `replay [--mutations N] [--seed S] [TARGET [PATH...]]`. Without a target, every target replays
//! `seeds/<target>/` and, if present, `corpus/<target>/`. A PATH is a file or a directory of files.
//! A failing mutation is written to `artifacts/<target>/` so that it can be replayed by path.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 5] = [
    ("schedule_parse", campanile_fuzz::schedule_parse),
    ("job_json", campanile_fuzz::job_json),
    ("api_bodies", campanile_fuzz::api_bodies),
    ("config_file", campanile_fuzz::config_file),
    ("token_file", campanile_fuzz::token_file),
];

/// Pieces that mutations insert: cron and JSON syntax, edge values, and non-ASCII text.
const TOKENS: [&str; 32] = [
    "*",
    "/",
    ",",
    "-",
    " ",
    "@",
    "L",
    "W",
    "#",
    "?",
    "0",
    "7",
    "59",
    "61",
    "1-3",
    "*/0",
    "@every ",
    " from ",
    "@at ",
    "2026-03-29T01:30:00Z",
    "99999999999999999999",
    "\"",
    "{",
    "}",
    ":",
    "[",
    "]",
    "null",
    "\"timezone\":\"America/New_York\",",
    "é",
    "\u{0}",
    "１",
];

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("replay: {message}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<bool, String> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mutations: usize = take_option(&mut args, "--mutations")?.unwrap_or(0);
    let seed: u64 = take_option(&mut args, "--seed")?.unwrap_or(0x5eed_cafe_f00d_d00d);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let plan: Vec<(&str, Check, Vec<PathBuf>, bool)> = match args.split_first() {
        None => TARGETS
            .iter()
            .map(|&(name, check)| {
                let paths = vec![
                    root.join("seeds").join(name),
                    root.join("corpus").join(name),
                ];
                (name, check, paths, false)
            })
            .collect(),
        Some((target, paths)) => {
            let &(name, check) =
                TARGETS
                    .iter()
                    .find(|(name, _)| name == target)
                    .ok_or_else(|| {
                        format!("unknown target {target:?}; targets: schedule_parse, job_json")
                    })?;
            let paths = if paths.is_empty() {
                vec![root.join("seeds").join(name)]
            } else {
                paths.iter().map(PathBuf::from).collect()
            };
            vec![(name, check, paths, true)]
        }
    };
    let (mut passed, mut failed) = (0_usize, 0_usize);
    for (name, check, paths, explicit) in plan {
        let inputs = read_inputs(&paths, explicit)?;
        if inputs.is_empty() {
            return Err(format!("no inputs for {name} in {paths:?}"));
        }
        let mut target_failed = 0;
        for (label, bytes) in &inputs {
            if !run_one(name, check, label, bytes) {
                target_failed += 1;
            }
        }
        let mut rng = Rng(seed ^ fnv(name.as_bytes()));
        for i in 0..mutations {
            let bytes = mutate(&mut rng, &inputs);
            let label = format!("mutation {i} (--seed {seed})");
            if !run_one(name, check, &label, &bytes) {
                target_failed += 1;
                let dir = root.join("artifacts").join(name);
                let file = dir.join(format!("mutation-{seed:x}-{i}"));
                if std::fs::create_dir_all(&dir)
                    .and_then(|()| std::fs::write(&file, &bytes))
                    .is_ok()
                {
                    eprintln!("wrote {}", file.display());
                }
            }
        }
        let total = inputs.len() + mutations;
        println!(
            "{name}: {} inputs and {mutations} mutations, {target_failed} failed",
            inputs.len()
        );
        passed += total - target_failed;
        failed += target_failed;
    }
    println!("{passed} passed, {failed} failed");
    Ok(failed == 0)
}

/// Removes `--name VALUE` from `args` and parses the value.
fn take_option<T: std::str::FromStr>(
    args: &mut Vec<String>,
    name: &str,
) -> Result<Option<T>, String> {
    let Some(i) = args.iter().position(|a| a == name) else {
        return Ok(None);
    };
    let value = args
        .get(i + 1)
        .ok_or_else(|| format!("{name} needs a value"))?;
    let parsed = value
        .parse()
        .map_err(|_| format!("{name} {value:?} is not a number"))?;
    args.drain(i..=i + 1);
    Ok(Some(parsed))
}

/// The files under `paths`, in a stable order. A missing default directory is skipped; a missing path that
/// was asked for is an error.
fn read_inputs(paths: &[PathBuf], explicit: bool) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries =
                std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|p| p.is_file())
                .collect();
            found.sort();
            files.extend(found);
        } else if path.is_file() {
            files.push(path.clone());
        } else if explicit {
            return Err(format!(
                "{} is neither a file nor a directory",
                path.display()
            ));
        }
    }
    files
        .into_iter()
        .map(|file| {
            let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            Ok((file.display().to_string(), bytes))
        })
        .collect()
}

/// Runs one input; a panic is reported with the input and counted as a failure.
fn run_one(target: &str, check: Check, label: &str, bytes: &[u8]) -> bool {
    match catch_unwind(AssertUnwindSafe(|| check(bytes))) {
        Ok(()) => true,
        Err(_) => {
            eprintln!(
                "FAILED {target} {label}: input {:?}",
                String::from_utf8_lossy(bytes)
            );
            false
        }
    }
}

/// xorshift64*: small, seeded, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.max(1);
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One to four edits of a random input: bit flips, token insertions, deletions, duplications, splices.
fn mutate(rng: &mut Rng, inputs: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut bytes = inputs[rng.below(inputs.len())].1.clone();
    for _ in 0..=rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(6) {
            0 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] ^= 1 << rng.below(8);
            }
            1 | 2 => {
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                bytes.splice(at..at, token.iter().copied());
            }
            3 if !bytes.is_empty() => {
                let end = (at + 1 + rng.below(8)).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            4 => {
                let end = (at + 1 + rng.below(16)).min(bytes.len());
                let piece = bytes[at.min(end)..end].to_vec();
                bytes.splice(at..at, piece);
            }
            _ => {
                let other = &inputs[rng.below(inputs.len())].1;
                let from = rng.below(other.len() + 1);
                bytes.truncate(at);
                bytes.extend_from_slice(&other[from..]);
            }
        }
    }
    bytes
}
