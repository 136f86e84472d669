//! Wall-clock time in a time zone, with the zone's ongoing rule past the end of chrono-tz's tables.
//!
//! chrono-tz lists each zone's transitions up to 2099 and then keeps the last offset for ever
//! (chronotope/chrono-tz#155): London would stay on GMT from 2100 on, Sydney on daylight time. Every
//! rule in force today is a calendar rule ("the last Sunday of March", "the first Sunday of November", a fixed
//! date): it gives the same transitions to two years with the same calendar, that is the same length and the
//! same weekday on January 1st. So a year past [`LAST_TABLE_YEAR`] is read as the latest year of
//! [`FIRST_PROXY_YEAR`]`..=`[`LAST_TABLE_YEAR`] with its calendar: those 28 years hold every one of the 14
//! calendars (no century year without a leap day falls among them), and they are the last years the tables
//! describe. A change of rule that tzdata announces for a year past 2099 is not seen; none is announced.

use chrono::{
    DateTime, Datelike, FixedOffset, LocalResult, NaiveDateTime, Offset, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;

/// The last year chrono-tz's tables describe.
const LAST_TABLE_YEAR: i32 = 2099;

/// The first year read in place of later ones: 28 years before the end of the tables, one whole cycle of
/// calendars.
const FIRST_PROXY_YEAR: i32 = LAST_TABLE_YEAR - 27;

/// The instants wall-clock time `wall` names in `tz`: one, two in a repeated range, none in a gap.
pub(super) fn from_local(tz: Tz, wall: &NaiveDateTime) -> LocalResult<DateTime<FixedOffset>> {
    let Some(proxy) = proxy_of(wall) else {
        return tz.from_local_datetime(wall).map(|t| t.fixed_offset());
    };
    // The proxy year has the same calendar, so the same offsets apply at the same wall-clock time.
    match tz.from_local_datetime(&proxy) {
        LocalResult::Single(t) => at_offset(wall, t.offset().fix()),
        LocalResult::Ambiguous(a, b) => {
            match (
                at_offset(wall, a.offset().fix()),
                at_offset(wall, b.offset().fix()),
            ) {
                (LocalResult::Single(a), LocalResult::Single(b)) => LocalResult::Ambiguous(a, b),
                _ => LocalResult::None,
            }
        }
        LocalResult::None => LocalResult::None,
    }
}

/// The instant `at_ms` (Unix ms) in `tz`, with its offset.
pub(super) fn to_local(tz: Tz, at_ms: i64) -> Option<DateTime<FixedOffset>> {
    let utc = DateTime::<Utc>::from_timestamp_millis(at_ms)?;
    let offset = match proxy_of(&utc.naive_utc()) {
        None => tz.offset_from_utc_datetime(&utc.naive_utc()).fix(),
        Some(proxy) => tz.offset_from_utc_datetime(&proxy).fix(),
    };
    Some(utc.with_timezone(&offset))
}

/// `time` moved into the year of the tables with the same calendar, when it is past their end.
fn proxy_of(time: &NaiveDateTime) -> Option<NaiveDateTime> {
    let year = time.year();
    if year <= LAST_TABLE_YEAR {
        return None;
    }
    let calendar = |y: i32| {
        let jan_1 = chrono::NaiveDate::from_ymd_opt(y, 1, 1)?;
        Some((jan_1.leap_year(), jan_1.weekday()))
    };
    let wanted: Option<(bool, Weekday)> = calendar(year);
    let proxy = (FIRST_PROXY_YEAR..=LAST_TABLE_YEAR)
        .rev()
        .find(|&y| calendar(y) == wanted)?;
    time.with_year(proxy)
}

fn at_offset(wall: &NaiveDateTime, offset: FixedOffset) -> LocalResult<DateTime<FixedOffset>> {
    offset.from_local_datetime(wall)
}
