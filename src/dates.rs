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

/// A time for people: `2026-11-30 15:44:52 UTC`.
pub fn human_time(unix: i64) -> String {
    timestamp(unix).replace('T', " ").replace('Z', " UTC")
}

/// A day for people: `1 March 2027`.
pub fn human_date(day: time::Date) -> String {
    format!("{} {} {}", day.day(), day.month(), day.year())
}
