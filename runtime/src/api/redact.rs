//! What readers without the admin role see of jobs and runs: no secret. Literal values of a command's `env`
//! and an HTTP target's headers become [`REDACTED`] (references, `{"from_env": ...}` and `{"from_file":
//! ...}`, are shown: they name a secret, they are not one), so does the password of an HTTP target's URL,
//! and the output of an HTTP target's runs (the response body, which often echoes what was sent).

use campanile::job::SecretValue;
use campanile::{Job, RunRecord, Target};

use super::auth::Caller;

/// What a reader sees instead of a secret.
pub const REDACTED: &str = "(redacted)";

/// The job as `caller` may see it.
pub fn job(caller: Caller, job: &Job) -> std::borrow::Cow<'_, Job> {
    if caller.sees_secrets() {
        return std::borrow::Cow::Borrowed(job);
    }
    let mut job = job.clone();
    let hide = |value: &mut SecretValue| {
        if matches!(value, SecretValue::Literal(_)) {
            *value = SecretValue::Literal(REDACTED.to_owned());
        }
    };
    match &mut job.spec_mut().target {
        Target::Command(cmd) => cmd.env.values_mut().for_each(hide),
        Target::Http(http) => {
            http.headers.values_mut().for_each(hide);
            http.url = url_without_password(&http.url);
        }
        _ => {}
    }
    std::borrow::Cow::Owned(job)
}

/// `url` with its password replaced by [`REDACTED`] (unchanged if it has none or does not parse).
fn url_without_password(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some(REDACTED));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Hides, for `caller`, the output of the runs of `job` if it is an HTTP target.
pub fn runs(caller: Caller, job: &Job, runs: &mut [RunRecord]) {
    if caller.sees_secrets() || !matches!(job.spec.target, Target::Http(_)) {
        return;
    }
    for run in runs {
        if !run.output.is_empty() {
            run.output = REDACTED.to_owned();
        }
    }
}
