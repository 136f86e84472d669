//! Schedules in plain language: `30 1 * * *` in Europe/London reads "at 01:30 every day, Europe/London".
//!
//! Works on the text of a schedule that [`campanile::Schedule::parse`] accepted. Common shapes (fixed times,
//! steps, ranges and lists of hours, minutes, weekdays, days of the month and months; `L`, `#`; the macros;
//! `@every`; `@at`) read as sentences; anything else reads as "cron `EXPR`", never as a wrong sentence.

const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Reads a valid schedule in plain language, with its time zone at the end for cron schedules.
pub fn describe(schedule: &str, timezone: &str) -> String {
    let text = schedule.trim();
    let (keyword, rest) = match text.find(char::is_whitespace) {
        Some(i) => (&text[..i], text[i..].trim()),
        None => (text, ""),
    };
    let keyword = keyword.to_ascii_lowercase();
    match keyword.as_str() {
        "@every" => return every(rest),
        "@at" => return format!("once, at {rest}"),
        _ => {}
    }
    let cron = match keyword.as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => text,
    };
    match cron_sentence(cron) {
        Some(sentence) => format!("{sentence}, {timezone}"),
        None => format!("cron `{text}`, {timezone}"),
    }
}

fn every(rest: &str) -> String {
    let (interval, anchor) = match rest.to_ascii_lowercase().find(" from ") {
        Some(i) => (&rest[..i], Some(rest[i + 6..].trim())),
        None => (rest, None),
    };
    let mut parts = Vec::new();
    if let Ok(d) = humantime::parse_duration(interval.trim()) {
        let mut secs = d.as_secs();
        for (unit, size) in [
            ("day", 86_400),
            ("hour", 3_600),
            ("minute", 60),
            ("second", 1),
        ] {
            let n = secs / size;
            secs %= size;
            if n > 0 {
                parts.push(plural(n, unit));
            }
        }
    }
    let interval = if parts.is_empty() {
        interval.trim().to_owned()
    } else {
        parts.join(" ")
    };
    match anchor {
        Some(anchor) => format!("every {interval}, counted from {anchor}"),
        None => format!("every {interval}"),
    }
}

fn plural(n: u64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// One cron field, in the shapes this module reads.
#[derive(Debug, PartialEq)]
enum Field {
    Any,
    /// Every `n`th value from `start` (`*/15`, `5/10`).
    Step {
        start: u32,
        n: u32,
    },
    /// Explicit values (single numbers and ranges expanded; sorted).
    Values(Vec<u32>),
}

fn field(raw: &str, names: &[&str], max: u32) -> Option<Field> {
    if raw == "*" || raw == "?" {
        return Some(Field::Any);
    }
    if let Some((base, n)) = raw.split_once('/') {
        let n: u32 = n.parse().ok()?;
        let start = if base == "*" { 0 } else { value(base, names)? };
        return (n > 0).then_some(Field::Step { start, n });
    }
    let mut values = Vec::new();
    for part in raw.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (value(a, names)?, value(b, names)?);
                if a > b || b > max {
                    return None;
                }
                values.extend(a..=b);
            }
            None => values.push(value(part, names)?),
        }
    }
    values.sort_unstable();
    values.dedup();
    Some(Field::Values(values))
}

fn value(raw: &str, names: &[&str]) -> Option<u32> {
    if let Ok(n) = raw.parse() {
        return Some(n);
    }
    let position = names
        .iter()
        .position(|name| name[..3].eq_ignore_ascii_case(raw))?;
    Some(position as u32)
}

fn cron_sentence(text: &str) -> Option<String> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let (second, rest) = match fields.len() {
        5 => ("0", &fields[..]),
        6 | 7 => (fields[0], &fields[1..6]),
        _ => return None,
    };
    if fields.len() == 7 && fields[6] != "*" && fields[6] != "?" {
        return None;
    }
    let second = field(second, &[], 59)?;
    let minute = field(rest[0], &[], 59)?;
    let hour = field(rest[1], &[], 23)?;
    let time = time_part(&second, &minute, &hour)?;
    let days = day_part(rest[2], rest[3], rest[4])?;
    // "every 15 minutes" already says every day.
    if days == "every day" && (time.starts_with("every") || time.contains("past every")) {
        return Some(time);
    }
    Some(format!("{time} {days}"))
}

fn list<T: AsRef<str>>(items: &[T]) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_owned(),
        [init @ .., last] => format!(
            "{} and {}",
            init.iter()
                .map(AsRef::as_ref)
                .collect::<Vec<_>>()
                .join(", "),
            last.as_ref()
        ),
    }
}

fn time_part(second: &Field, minute: &Field, hour: &Field) -> Option<String> {
    let seconds = match second {
        Field::Values(v) if v == &[0] => None,
        Field::Values(v) if v.len() == 1 => Some(v[0]),
        Field::Any => return Some(format!("every second{}", within(minute, hour)?)),
        Field::Step { start: 0, n } => {
            return Some(format!(
                "every {}{}",
                plural(u64::from(*n), "second"),
                within(minute, hour)?
            ));
        }
        _ => return None,
    };
    let clock = |h: u32, m: u32| match seconds {
        Some(s) => format!("{h:02}:{m:02}:{s:02}"),
        None => format!("{h:02}:{m:02}"),
    };
    Some(match (minute, hour) {
        (Field::Values(ms), Field::Values(hs)) if ms.len() * hs.len() <= 6 => {
            let times: Vec<String> = hs
                .iter()
                .flat_map(|h| ms.iter().map(move |m| (*h, *m)))
                .map(|(h, m)| clock(h, m))
                .collect();
            format!("at {}", list(&times))
        }
        (Field::Any, _) if seconds.is_none() => format!("every minute{}", hours(hour)?),
        (Field::Step { start: 0, n }, _) if seconds.is_none() => {
            format!("every {}{}", plural(u64::from(*n), "minute"), hours(hour)?)
        }
        (Field::Values(ms), _) if seconds.is_none() => {
            let minutes: Vec<String> = ms.iter().map(u32::to_string).collect();
            let of = match hour {
                Field::Any => "every hour".to_owned(),
                Field::Step { start: 0, n } => format!("every {}", plural(u64::from(*n), "hour")),
                Field::Values(_) => format!("hours {}", hour_list(hour)?),
                Field::Step { .. } => return None,
            };
            let word = if ms.len() == 1 { "minute" } else { "minutes" };
            format!("at {word} {} past {of}", list(&minutes))
        }
        _ => return None,
    })
}

/// "" for every hour, " between 09:00 and 17:59", " during hours 9 and 17", " every 2 hours".
fn hours(hour: &Field) -> Option<String> {
    match hour {
        Field::Any => Some(String::new()),
        Field::Values(hs) if hs.len() > 1 && hs.windows(2).all(|w| w[1] == w[0] + 1) => Some(
            format!(" between {:02}:00 and {:02}:59", hs[0], hs[hs.len() - 1]),
        ),
        Field::Values(_) => Some(format!(" during hours {}", hour_list(hour)?)),
        Field::Step { start: 0, n } => Some(format!(" of every {}", plural(u64::from(*n), "hour"))),
        Field::Step { .. } => None,
    }
}

fn hour_list(hour: &Field) -> Option<String> {
    let Field::Values(hs) = hour else { return None };
    Some(list(
        &hs.iter().map(|h| format!("{h:02}h")).collect::<Vec<_>>(),
    ))
}

fn within(minute: &Field, hour: &Field) -> Option<String> {
    match (minute, hour) {
        (Field::Any, Field::Any) => Some(String::new()),
        (Field::Values(ms), Field::Any) if ms.len() == 1 => {
            Some(format!(" during minute {} of every hour", ms[0]))
        }
        _ => None,
    }
}

fn day_part(dom: &str, month: &str, dow: &str) -> Option<String> {
    let any = |f: &str| f == "*" || f == "?";
    let month_text = if any(month) {
        String::new()
    } else {
        match field(month, &MONTHS, 12)? {
            Field::Values(ms) => {
                let names: Option<Vec<&str>> = ms
                    .iter()
                    .map(|m| {
                        MONTHS
                            .get(usize::try_from(*m).ok()?.checked_sub(1)?)
                            .copied()
                    })
                    .collect();
                format!(" in {}", list(&names?))
            }
            _ => return None,
        }
    };
    // Month names are 1-based; weekday and day-of-month numbers are what they say.
    let days = match (any(dom), any(dow)) {
        (true, true) => "every day".to_owned(),
        (false, true) => format!("on {}", days_of_month(dom)?),
        (true, false) => format!("on {}", weekdays(dow)?),
        (false, false) => format!("on {} or on {}", days_of_month(dom)?, weekdays(dow)?),
    };
    Some(format!("{days}{month_text}"))
}

fn days_of_month(dom: &str) -> Option<String> {
    if dom.eq_ignore_ascii_case("L") {
        return Some("the last day of the month".to_owned());
    }
    match field(dom, &[], 31)? {
        Field::Values(ds)
            if ds.len() > 2
                && ds.iter().all(|d| (1..=31).contains(d))
                && ds.windows(2).all(|w| w[1] == w[0] + 1) =>
        {
            Some(format!(
                "days {} to {} of the month",
                ds[0],
                ds[ds.len() - 1]
            ))
        }
        Field::Values(ds) if ds.iter().all(|d| (1..=31).contains(d)) => {
            let word = if ds.len() == 1 { "day" } else { "days" };
            let ds: Vec<String> = ds.iter().map(u32::to_string).collect();
            Some(format!("{word} {} of the month", list(&ds)))
        }
        Field::Step { start, n } => Some(format!(
            "every {} day of the month from day {}",
            ordinal(n),
            start.max(1)
        )),
        _ => None,
    }
}

fn weekday(n: u32) -> Option<&'static str> {
    WEEKDAYS.get(usize::try_from(n % 7).ok()?).copied()
}

fn weekdays(dow: &str) -> Option<String> {
    if let Some((day, nth)) = dow.split_once('#') {
        let day = weekday(value(day, &WEEKDAYS)?)?;
        let nth: u32 = nth.parse().ok()?;
        return Some(format!("the {} {day} of the month", ordinal(nth)));
    }
    if let Some(day) = dow.strip_suffix(['L', 'l']).filter(|d| !d.is_empty()) {
        let day = weekday(value(day, &WEEKDAYS)?)?;
        return Some(format!("the last {day} of the month"));
    }
    match field(dow, &WEEKDAYS, 7)? {
        Field::Values(ds) => {
            let mut ds: Vec<u32> = ds.iter().map(|d| d % 7).collect();
            ds.sort_unstable();
            ds.dedup();
            if ds == [1, 2, 3, 4, 5] {
                return Some("Monday to Friday".to_owned());
            }
            if ds == [0, 6] {
                return Some("Saturday and Sunday".to_owned());
            }
            // Monday first, Sunday last, as people read a week.
            ds.sort_by_key(|d| (d + 6) % 7);
            let names: Option<Vec<&str>> = ds.iter().map(|d| weekday(*d)).collect();
            Some(list(&names?))
        }
        _ => None,
    }
}

fn ordinal(n: u32) -> String {
    match n {
        1 => "first".to_owned(),
        2 => "second".to_owned(),
        3 => "third".to_owned(),
        4 => "fourth".to_owned(),
        5 => "fifth".to_owned(),
        n => format!("{n}th"),
    }
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn common_schedules_read_as_sentences() {
        let cases = [
            ("30 1 * * *", "at 01:30 every day, Europe/London"),
            ("@daily", "at 00:00 every day, Europe/London"),
            ("@hourly", "at minute 0 past every hour, Europe/London"),
            ("*/15 * * * *", "every 15 minutes, Europe/London"),
            ("* * * * *", "every minute, Europe/London"),
            (
                "0 9 * * MON-FRI",
                "at 09:00 on Monday to Friday, Europe/London",
            ),
            ("0 9 * * 1-5", "at 09:00 on Monday to Friday, Europe/London"),
            (
                "0 10 * * 6,0",
                "at 10:00 on Saturday and Sunday, Europe/London",
            ),
            (
                "0 10 * * 3,1",
                "at 10:00 on Monday and Wednesday, Europe/London",
            ),
            ("0 0 1 * *", "at 00:00 on day 1 of the month, Europe/London"),
            (
                "0 0 1,15 * *",
                "at 00:00 on days 1 and 15 of the month, Europe/London",
            ),
            (
                "0 0 L * *",
                "at 00:00 on the last day of the month, Europe/London",
            ),
            (
                "30 1 25-31 3 *",
                "at 01:30 on days 25 to 31 of the month in March, Europe/London",
            ),
            (
                "0 12 * * 5L",
                "at 12:00 on the last Friday of the month, Europe/London",
            ),
            (
                "0 12 * * MON#2",
                "at 12:00 on the second Monday of the month, Europe/London",
            ),
            (
                "0 0 1 1 *",
                "at 00:00 on day 1 of the month in January, Europe/London",
            ),
            (
                "0 8,20 * * *",
                "at 08:00 and 20:00 every day, Europe/London",
            ),
            (
                "*/10 9-17 * * *",
                "every 10 minutes between 09:00 and 17:59, Europe/London",
            ),
            (
                "15 */2 * * *",
                "at minute 15 past every 2 hours, Europe/London",
            ),
            ("30 0 2 * * *", "at 02:00:30 every day, Europe/London"),
            ("*/5 * * * * *", "every 5 seconds, Europe/London"),
            ("0 30 1 * * * *", "at 01:30 every day, Europe/London"),
        ];
        for (schedule, want) in cases {
            assert_eq!(describe(schedule, "Europe/London"), want, "{schedule}");
        }
    }

    #[test]
    fn every_and_at_read_without_a_zone() {
        assert_eq!(describe("@every 30s", "UTC"), "every 30 seconds");
        assert_eq!(describe("@every 1h 30m", "UTC"), "every 1 hour 30 minutes");
        assert_eq!(
            describe("@every 1d from 2026-01-01T06:00:00Z", "UTC"),
            "every 1 day, counted from 2026-01-01T06:00:00Z"
        );
        assert_eq!(
            describe("@at 2026-11-21T12:00:00Z", "UTC"),
            "once, at 2026-11-21T12:00:00Z"
        );
    }

    #[test]
    fn shapes_it_does_not_read_stay_cron() {
        assert_eq!(
            describe("0 0 * * * * 2027", "UTC"),
            "cron `0 0 * * * * 2027`, UTC"
        );
        assert_eq!(describe("0 0 15W * *", "UTC"), "cron `0 0 15W * *`, UTC");
        assert_eq!(
            describe("5/10 3/4 * * *", "UTC"),
            "cron `5/10 3/4 * * *`, UTC"
        );
    }
}
