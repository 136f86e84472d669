//! Validation of a job spec: every error names the field and the offending value.

use std::fmt;

use super::{JobSpec, MisfirePolicy, Target};

/// A rejected input: which field, what value, and why. Displayed as `field: "value": reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {value:?}: {reason}")]
pub struct ValidationError {
    /// Dotted path of the field (`target.argv`, `misfire.max_count`).
    pub field: String,
    /// The value as given (truncated to 200 characters).
    pub value: String,
    /// Why it was rejected.
    pub reason: String,
}

impl ValidationError {
    /// A rejection of `value` in `field`.
    pub fn new(
        field: impl Into<String>,
        value: impl fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        let mut value = value.to_string();
        if value.len() > 200 {
            let cut = (0..=200)
                .rev()
                .find(|&i| value.is_char_boundary(i))
                .unwrap_or(0);
            value.truncate(cut);
            value.push('…');
        }
        Self {
            field: field.into(),
            value,
            reason: reason.into(),
        }
    }

    /// The same error one level deeper: `schedule` becomes `jobs[3].schedule`.
    pub fn within(mut self, parent: &str) -> Self {
        self.field = format!("{parent}.{}", self.field);
        self
    }
}

impl JobSpec {
    /// Checks what the types cannot: names, time zone, bounds, target fields, policy numbers.
    /// The schedule itself was checked when it was parsed.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.name.trim().is_empty() || self.name.len() > 256 {
            return Err(ValidationError::new(
                "name",
                &self.name,
                "must be 1 to 256 characters, not blank",
            ));
        }
        if self.namespace.is_empty()
            || self.namespace.len() > 64
            || !self
                .namespace
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ValidationError::new(
                "namespace",
                &self.namespace,
                "must be 1 to 64 characters of [A-Za-z0-9_-]",
            ));
        }
        self.tz()?;
        if let (Some(start), Some(end)) = (self.start_at, self.end_at)
            && end < start
        {
            return Err(ValidationError::new(
                "end_at",
                end.to_rfc3339(),
                format!("is before start_at {}", start.to_rfc3339()),
            ));
        }
        if self.weight == 0 || self.weight > 1_000_000 {
            return Err(ValidationError::new(
                "weight",
                self.weight,
                "must be 1 to 1000000",
            ));
        }
        if let Some(jitter) = self.jitter
            && jitter > std::time::Duration::from_secs(3600)
        {
            return Err(ValidationError::new(
                "jitter",
                humantime::format_duration(jitter),
                "must be at most 1h",
            ));
        }
        if let MisfirePolicy::CatchUp { max_count, window } = self.misfire {
            if max_count == 0 || max_count > 10_000 {
                return Err(ValidationError::new(
                    "misfire.max_count",
                    max_count,
                    "must be 1 to 10000",
                ));
            }
            if window.is_zero() {
                return Err(ValidationError::new(
                    "misfire.window",
                    "0s",
                    "must be positive",
                ));
            }
        }
        if self.retry.max_retries > 100 {
            return Err(ValidationError::new(
                "retry.max_retries",
                self.retry.max_retries,
                "must be at most 100",
            ));
        }
        let backoff = &self.retry.backoff;
        if !(backoff.factor.is_finite() && (1.0..=10.0).contains(&backoff.factor)) {
            return Err(ValidationError::new(
                "retry.backoff.factor",
                backoff.factor,
                "must be between 1 and 10",
            ));
        }
        if backoff.max < backoff.initial {
            return Err(ValidationError::new(
                "retry.backoff.max",
                humantime::format_duration(backoff.max),
                "must not be below retry.backoff.initial",
            ));
        }
        validate_target(&self.target).map_err(|e| e.within("target"))
    }
}

fn validate_target(target: &Target) -> Result<(), ValidationError> {
    match target {
        Target::Command(cmd) => {
            match cmd.argv.first() {
                None => return Err(ValidationError::new("argv", "[]", "must name a program")),
                Some(program) if program.is_empty() => {
                    return Err(ValidationError::new("argv[0]", "", "must name a program"));
                }
                Some(_) => {}
            }
            if let Some((i, arg)) = cmd.argv.iter().enumerate().find(|(_, a)| a.contains('\0')) {
                return Err(ValidationError::new(
                    format!("argv[{i}]"),
                    arg.escape_default(),
                    "contains a NUL byte",
                ));
            }
            if let Some(key) = cmd
                .env
                .keys()
                .find(|k| k.is_empty() || k.contains('=') || k.contains('\0'))
            {
                return Err(ValidationError::new(
                    "env",
                    key.escape_default(),
                    "is not a valid variable name",
                ));
            }
            if let Some(timeout) = cmd.timeout
                && timeout.is_zero()
            {
                return Err(ValidationError::new("timeout", "0s", "must be positive"));
            }
        }
        Target::Http(http) => {
            if !(http.url.starts_with("http://") || http.url.starts_with("https://"))
                || http.url.len() < 8
            {
                return Err(ValidationError::new(
                    "url",
                    &http.url,
                    "must be an http:// or https:// URL",
                ));
            }
            if http.method.is_empty() || !http.method.chars().all(|c| c.is_ascii_uppercase()) {
                return Err(ValidationError::new(
                    "method",
                    &http.method,
                    "must be an upper-case HTTP method",
                ));
            }
            if let Some(status) = http
                .expected_status
                .iter()
                .find(|s| !(100..=599).contains(*s))
            {
                return Err(ValidationError::new(
                    "expected_status",
                    status,
                    "must be 100 to 599",
                ));
            }
            if http.timeout.is_zero() {
                return Err(ValidationError::new("timeout", "0s", "must be positive"));
            }
        }
        Target::Handler(handler) => {
            if handler.name.is_empty() {
                return Err(ValidationError::new(
                    "name",
                    "",
                    "must name a registered handler",
                ));
            }
        }
    }
    Ok(())
}
