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
        if self.name.trim().is_empty() || self.name.chars().count() > 256 {
            return Err(ValidationError::new(
                "name",
                &self.name,
                "must be 1 to 256 characters, not blank",
            ));
        }
        // The name reaches targets as `CAMPANILE_JOB_NAME`: a NUL would fail every spawn, a newline would
        // forge log lines.
        if let Some(c) = self.name.chars().find(|c| c.is_control()) {
            return Err(ValidationError::new(
                "name",
                self.name.escape_debug(),
                format!("must not contain control characters like {c:?}"),
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
        if let Some(executor) = &self.executor {
            let group = &executor.group;
            if !(1..=64).contains(&group.len())
                || !group
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                return Err(ValidationError::new(
                    "executor.group",
                    group.escape_debug(),
                    "must be 1 to 64 characters of [A-Za-z0-9._-]",
                ));
            }
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
                    arg.escape_debug(),
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
                    key.escape_debug(),
                    "is not a valid variable name",
                ));
            }
            if let Some(run_as) = &cmd.run_as {
                let name_ok = |name: &str| {
                    (1..=32).contains(&name.len())
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                };
                if !name_ok(&run_as.user) {
                    return Err(ValidationError::new(
                        "run_as.user",
                        run_as.user.escape_debug(),
                        "must be a user name or uid: 1 to 32 characters of [A-Za-z0-9._-]",
                    ));
                }
                if let Some(group) = run_as.group.as_deref().filter(|g| !name_ok(g)) {
                    return Err(ValidationError::new(
                        "run_as.group",
                        group.escape_debug(),
                        "must be a group name or gid: 1 to 32 characters of [A-Za-z0-9._-]",
                    ));
                }
            }
            // The OS takes environment values and paths as C strings.
            for (key, value) in &cmd.env {
                value.validate(&format!("env.{key}"))?;
            }
            if let Some(cwd) = &cmd.cwd
                && cwd.as_os_str().as_encoded_bytes().contains(&0)
            {
                return Err(ValidationError::new(
                    "cwd",
                    cwd.display().to_string().escape_debug(),
                    "contains a NUL byte",
                ));
            }
            if let Some(timeout) = cmd.timeout
                && timeout.is_zero()
            {
                return Err(ValidationError::new("timeout", "0s", "must be positive"));
            }
        }
        Target::Http(http) => {
            let scheme_len = ["http://", "https://"]
                .into_iter()
                .find(|scheme| {
                    http.url
                        .get(..scheme.len())
                        .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
                })
                .map(str::len);
            let host_starts = scheme_len.and_then(|n| http.url[n..].chars().next());
            if !host_starts.is_some_and(|c| !matches!(c, '/' | '?' | '#'))
                || http
                    .url
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(ValidationError::new(
                    "url",
                    http.url.escape_debug(),
                    "must be an http:// or https:// URL with a host and no whitespace",
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
            // HTTP header names are tokens (RFC 9110 5.6.2); values must not end the header early.
            let is_token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            if let Some(name) = http
                .headers
                .keys()
                .find(|k| k.is_empty() || !k.chars().all(is_token))
            {
                return Err(ValidationError::new(
                    "headers",
                    name.escape_debug(),
                    "is not a valid header name",
                ));
            }
            for (name, value) in &http.headers {
                let field = format!("headers.{name}");
                if let Some(literal) = value.literal()
                    && literal.contains(['\r', '\n', '\0'])
                {
                    return Err(ValidationError::new(
                        field,
                        literal.escape_debug(),
                        "must not contain CR, LF or NUL",
                    ));
                }
                value.validate(&field)?;
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
            if handler.timeout.is_some_and(|t| t.is_zero()) {
                return Err(ValidationError::new("timeout", "0s", "must be positive"));
            }
        }
    }
    Ok(())
}
