//! Times as shop writes them: RFC 3339 in UTC for files (the ledger,
//! stamped copies) and a plainer form for people (pages, mail, the
//! terminal).

/// RFC 3339 in UTC with seconds, as the ledger writes times.
pub fn timestamp(unix: i64) -> String {
    let at =
        time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    at.format(&format).unwrap_or_default()
}

/// A time for people: `30 November 2025, 15:44 UTC`.
pub fn human_time(unix: i64) -> String {
    let at =
        time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{}, {:02}:{:02} UTC",
        human_date(at.date()),
        at.hour(),
        at.minute()
    )
}

/// The day of a moment, for people: `30 November 2026` (UTC).
pub fn human_day(unix: i64) -> String {
    let at =
        time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    human_date(at.date())
}

/// A day for people: `1 March 2027`.
pub fn human_date(day: time::Date) -> String {
    format!("{} {} {}", day.day(), day.month(), day.year())
}

/// A time on a page: `<time>` with the moment in `datetime`, which the
/// page's script (`/local-time.js`) shows in the reader's own zone; the
/// UTC text stays where scripts do not run.
pub fn html_time(unix: i64) -> String {
    format!(
        "<time datetime=\"{}\" data-local>{}</time>",
        timestamp(unix),
        human_time(unix)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_people_write_them() {
        // 2025-11-30T15:44:52Z
        assert_eq!(human_time(1_764_517_492), "30 November 2025, 15:44 UTC");
        assert_eq!(human_day(1_764_517_492), "30 November 2025");
        assert_eq!(
            html_time(1_764_517_492),
            "<time datetime=\"2025-11-30T15:44:52Z\" data-local>30 November 2025, 15:44 UTC</time>"
        );
    }
}
