//! The checks behind the fuzz targets: each takes arbitrary bytes and panics when it finds a bug.
//!
//! They are plain functions so that the libFuzzer targets (`fuzz_targets/`, nightly, `cargo fuzz`) and the
//! corpus replay (`src/bin/replay.rs`, stable) run the same code.

use campanile::job::{DstHandling, DstPolicy, DstRepeat};
use campanile::{Job, JobSpec, Schedule};
use chrono_tz::Tz;

/// Zones with and without DST, a half-hour shift, and a skipped day (Samoa, 2011-12-30).
const ZONES: [Tz; 6] = [
    chrono_tz::UTC,
    chrono_tz::Europe::London,
    chrono_tz::America::New_York,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::Pacific::Apia,
    chrono_tz::Asia::Kolkata,
];

/// Start instants (Unix ms): around the 2026 transitions of London and New York, the Samoa gap, the
/// epoch, and the ends of the range, where arithmetic overflows if it is careless.
const STARTS: [i64; 9] = [
    1_774_745_400_000, // 2026-03-29T00:50:00Z, ten minutes before London springs forward
    1_792_889_400_000, // 2026-10-25T00:50:00Z, ten minutes before London falls back
    1_793_511_000_000, // 2026-11-01T05:30:00Z, New York, first pass of the repeated hour
    1_793_514_600_000, // 2026-11-01T06:30:00Z, New York, second pass
    1_325_224_800_000, // 2011-12-30T06:00:00Z, just before Samoa skips a day
    0,                 // the epoch
    -1,                // just before it
    253_402_300_799_000, // 9999-12-31T23:59:59Z
    i64::MAX - 1,      // far outside every calendar
];

/// How many instants each check walks.
const STEPS: usize = 16;

/// A cheap hash that spreads inputs over zones, policies and starts without spending the fuzzer's time.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Arbitrary text as a schedule: parsing never panics; a rejection names the field `schedule` and quotes the
/// value; a parsed schedule re-parses from `as_str` (and from its JSON) to an equal schedule; `next_after`
/// is always later than its input, and iterating it never repeats an instant.
pub fn schedule_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let schedule = match Schedule::parse(&text) {
        Ok(schedule) => schedule,
        Err(err) => {
            assert_eq!(err.field, "schedule", "{err}");
            assert!(!err.reason.is_empty(), "{err}");
            let shown = err.value.trim_end_matches('…');
            assert!(text.starts_with(shown), "{err} does not quote {text:?}");
            return;
        }
    };
    let again = Schedule::parse(schedule.as_str());
    assert_eq!(
        again.as_ref().ok(),
        Some(&schedule),
        "{text:?} -> {schedule:?} -> {again:?}"
    );
    assert_eq!(schedule.to_string(), schedule.as_str());
    let json = serde_json::to_string(&schedule).expect("a schedule serializes");
    let back: Schedule = serde_json::from_str(&json).expect("a schedule's JSON parses");
    assert_eq!(back, schedule);

    let hash = fnv(data);
    let tz = ZONES[(hash % ZONES.len() as u64) as usize];
    let gap = if hash & 0x100 == 0 {
        DstPolicy::Cronie
    } else {
        DstPolicy::SkipGap
    };
    let repeat = [DstRepeat::First, DstRepeat::Last, DstRepeat::Both][((hash >> 9) % 3) as usize];
    let dst = DstHandling { gap, repeat };
    let start = STARTS[((hash >> 16) % STARTS.len() as u64) as usize];
    let mut previous = start;
    for _ in 0..STEPS {
        let Some(next) = schedule.next_after(previous, tz, dst) else {
            break;
        };
        assert!(
            next > previous,
            "{schedule:?} in {tz}: {next} after {previous}"
        );
        // Nothing fires in between, so a search from just before finds the same instant.
        assert_eq!(
            schedule.next_after(next - 1, tz, dst),
            Some(next),
            "{schedule:?} in {tz} from {}",
            next - 1
        );
        previous = next;
    }
    for extreme in [i64::MIN, i64::MAX] {
        if let Some(next) = schedule.next_after(extreme, tz, dst) {
            assert!(next > extreme, "{schedule:?}: {next} after {extreme}");
        }
    }
}

/// Arbitrary bytes as job JSON: nothing panics; a spec that validates round-trips through JSON to an equal
/// spec that still validates, and so does a stored job.
pub fn job_json(data: &[u8]) {
    if let Ok(job) = serde_json::from_slice::<Job>(data) {
        let _ = job.spec.validate();
        let json = serde_json::to_vec(&job).expect("a job serializes");
        let back: Job = serde_json::from_slice(&json).expect("a job's JSON parses");
        assert_eq!(back, job);
    }
    let Ok(spec) = serde_json::from_slice::<JobSpec>(data) else {
        return;
    };
    if spec.validate().is_err() {
        return;
    }
    spec.tz().expect("a valid spec has a time zone");
    let json = serde_json::to_vec(&spec).expect("a spec serializes");
    let back: JobSpec = match serde_json::from_slice(&json) {
        Ok(back) => back,
        Err(e) => panic!(
            "{} does not parse back: {e}",
            String::from_utf8_lossy(&json)
        ),
    };
    assert_eq!(back, spec, "{}", String::from_utf8_lossy(&json));
    back.validate()
        .expect("a round-tripped spec still validates");
}

/// Checks an API error: a 4xx (bad input is never the server's fault) with a code and a message.
fn client_error(err: &campanile_runtime::api::error::ApiError, what: &str) {
    assert!(
        err.status.is_client_error(),
        "{what}: {} for bad input: {err:?}",
        err.status
    );
    assert!(
        !err.code.is_empty() && !err.message.is_empty(),
        "{what}: {err:?}"
    );
}

/// Arbitrary bytes as the body of every route that takes one, through the router's own reading
/// (`JsonObject::from_bytes`, `into_typed`) and validation: never a panic, never a 5xx; a job that is
/// accepted round-trips through JSON; a rebalance scenario that is accepted is planned.
pub fn api_bodies(data: &[u8]) {
    use campanile_runtime::api::body::JsonObject;
    use campanile_runtime::api::{jobs, rebalance, schedules};

    let object = match JsonObject::from_bytes(data) {
        Ok(object) => object,
        Err(err) => return client_error(&err, "body"),
    };
    match object.clone().into_typed::<JobSpec>() {
        Ok(spec) => {
            if let Err(err) = spec.validate() {
                assert!(!err.field.is_empty(), "{err}");
            } else {
                let json = serde_json::to_vec(&spec).expect("a spec serializes");
                let back: JobSpec = serde_json::from_slice(&json).expect("a spec parses back");
                assert_eq!(back, spec);
            }
        }
        Err(err) => client_error(&err, "job"),
    }
    match jobs::parse_batch(data) {
        Ok(batch) => assert!(!batch.is_empty() && batch.len() <= jobs::MAX_BATCH),
        Err(err) => client_error(&err, "batch"),
    }
    if let Err(err) = object.clone().into_typed::<jobs::actions::CloneRequest>() {
        client_error(&err, "clone");
    }
    if let Err(err) = object
        .clone()
        .into_typed::<jobs::actions::BackfillRequest>()
    {
        client_error(&err, "backfill");
    }
    // A schedule preview: at most the cap, in order, each instant's local time in the zone asked, and a
    // reading; or an error naming its field.
    match object.clone().into_typed::<schedules::PreviewRequest>() {
        Ok(request) => match schedules::preview(&request, 0) {
            Ok(preview) => {
                assert!(preview.next.len() <= schedules::MAX_PREVIEW);
                assert!(preview.next.windows(2).all(|w| w[0].unix_ms < w[1].unix_ms));
                assert!(!preview.description.is_empty());
            }
            Err(err) => assert!(!err.field.is_empty(), "{err}"),
        },
        Err(err) => client_error(&err, "preview"),
    }
    match object.into_typed::<rebalance::Scenario>() {
        Ok(scenario) => {
            if let Err(err) = rebalance::plan(&scenario) {
                client_error(&err, "plan");
            }
        }
        Err(err) => client_error(&err, "scenario"),
    }
}

/// Arbitrary text as the configuration file: parsing and validating never panic; a rejection names the key;
/// a valid configuration prints (as `config check` does, redacted) and reads back to an equal one.
pub fn config_file(data: &[u8]) {
    use campanile_runtime::config::Config;

    let text = String::from_utf8_lossy(data);
    let Ok(config) = toml::from_str::<Config>(&text) else {
        return;
    };
    if let Err(err) = config.validate() {
        assert!(!err.field.is_empty(), "{err}");
        return;
    }
    let printed = toml::to_string(&config).expect("a valid configuration prints");
    let back: Config = toml::from_str(&printed).expect("a printed configuration reads back");
    assert_eq!(back, config, "{printed}");
    let _ = toml::to_string(&config.redacted()).expect("a redacted configuration prints");
}

/// Arbitrary text as the token file: parsing never panics; a file that parses gives every token it lists
/// its role, and no other string one.
pub fn token_file(data: &[u8]) {
    use campanile_runtime::api::auth::{Role, Tokens};

    let text = String::from_utf8_lossy(data);
    let Ok(tokens) = Tokens::parse(&text) else {
        return;
    };
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (token, at_least) = match words.as_slice() {
            [token] if !token.starts_with('#') => (*token, Role::ReadOnly),
            ["admin", token] => (*token, Role::Admin),
            ["read-only", token] => (*token, Role::ReadOnly),
            _ => continue,
        };
        let role = tokens.role_of(token.as_bytes());
        assert!(
            role.is_some_and(|r| r >= at_least),
            "{token:?} in {text:?}: {role:?}"
        );
    }
    assert_eq!(tokens.role_of(b"not a listed token, surely"), None);
}
