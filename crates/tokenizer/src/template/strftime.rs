//! `strftime_now(format)`, the template global Hugging Face defines as
//! `datetime.now().strftime(format)` (Llama 3.x puts today's date in its system prompt).
//!
//! The clock is read in UTC: Python uses the machine's local zone, but a server's zone is
//! an accident of deployment and herd carries no time zone database. Names are the C
//! locale's, as in Python by default. Directives follow glibc, which Python defers to.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use minijinja::{Error, ErrorKind};

const DAY_NAMES: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTH_NAMES: [&str; 12] = [
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

/// Formats the current UTC time.
pub(crate) fn now(format: &str) -> Result<String, Error> {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|_| {
        Error::new(
            ErrorKind::InvalidOperation,
            "strftime_now: the clock is before 1970",
        )
    })?;
    let secs = i64::try_from(since_epoch.as_secs()).map_err(|_| {
        Error::new(
            ErrorKind::InvalidOperation,
            "strftime_now: the clock is out of range",
        )
    })?;
    Ok(format_time(
        format,
        &DateTime::from_unix(secs, since_epoch.subsec_micros()),
    ))
}

/// A UTC calendar time, broken down as C's `struct tm`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct DateTime {
    year: i64,
    /// 1..=12
    month: u32,
    /// 1..=31
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    micros: u32,
    /// 0 = Sunday
    weekday: u32,
    /// 1..=366
    day_of_year: u32,
}

impl DateTime {
    pub(crate) fn from_unix(secs: i64, micros: u32) -> DateTime {
        let days = secs.div_euclid(86_400);
        let secs_of_day = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        let is_leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        const DAYS_BEFORE_MONTH: [u32; 12] =
            [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let leap_day = u32::from(is_leap && month > 2);
        DateTime {
            year,
            month,
            day,
            hour: secs_of_day / 3600,
            minute: secs_of_day / 60 % 60,
            second: secs_of_day % 60,
            micros,
            // 1970-01-01 was a Thursday.
            weekday: (days + 4).rem_euclid(7) as u32,
            day_of_year: DAYS_BEFORE_MONTH[(month - 1) as usize] + day + leap_day,
        }
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar,
/// counting in 400-year eras of 146097 days, with years starting in March so that the
/// leap day falls at the end.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let march_month = (5 * day_of_year + 2) / 153; // 0 = March
    let day = (day_of_year - (153 * march_month + 2) / 5 + 1) as u32;
    let month = if march_month < 10 {
        march_month + 3
    } else {
        march_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// C's `strftime` for the directives chat templates use, with glibc's `-` flag (no
/// padding). `%Z` and `%z` are empty, as for Python's naive `datetime.now()`; an unknown
/// directive is copied through, as glibc does.
pub(crate) fn format_time(format: &str, t: &DateTime) -> String {
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut directive = chars.next();
        let unpadded = directive == Some('-');
        if unpadded {
            directive = chars.next();
        }
        let number = |out: &mut String, value: i64, width: usize, pad: char| {
            if unpadded {
                let _ = write!(out, "{value}");
            } else if pad == ' ' {
                let _ = write!(out, "{value:>width$}");
            } else {
                let _ = write!(out, "{value:0width$}");
            }
        };
        let hour12 = match t.hour % 12 {
            0 => 12,
            h => h,
        };
        match directive {
            Some('a') => out.push_str(&DAY_NAMES[t.weekday as usize][..3]),
            Some('A') => out.push_str(DAY_NAMES[t.weekday as usize]),
            Some('b') | Some('h') => out.push_str(&MONTH_NAMES[(t.month - 1) as usize][..3]),
            Some('B') => out.push_str(MONTH_NAMES[(t.month - 1) as usize]),
            Some('C') => number(&mut out, t.year.div_euclid(100), 2, '0'),
            Some('d') => number(&mut out, t.day.into(), 2, '0'),
            Some('e') => number(&mut out, t.day.into(), 2, ' '),
            Some('f') => number(&mut out, t.micros.into(), 6, '0'),
            Some('H') => number(&mut out, t.hour.into(), 2, '0'),
            Some('I') => number(&mut out, hour12.into(), 2, '0'),
            Some('j') => number(&mut out, t.day_of_year.into(), 3, '0'),
            Some('m') => number(&mut out, t.month.into(), 2, '0'),
            Some('M') => number(&mut out, t.minute.into(), 2, '0'),
            Some('S') => number(&mut out, t.second.into(), 2, '0'),
            Some('y') => number(&mut out, t.year.rem_euclid(100), 2, '0'),
            Some('Y') => {
                let _ = write!(out, "{}", t.year);
            }
            Some('p') => out.push_str(if t.hour < 12 { "AM" } else { "PM" }),
            Some('u') => number(
                &mut out,
                if t.weekday == 0 { 7 } else { t.weekday.into() },
                1,
                '0',
            ),
            Some('w') => number(&mut out, t.weekday.into(), 1, '0'),
            Some('F') => {
                let _ = write!(out, "{}-{:02}-{:02}", t.year, t.month, t.day);
            }
            Some('D') => {
                let _ = write!(
                    out,
                    "{:02}/{:02}/{:02}",
                    t.month,
                    t.day,
                    t.year.rem_euclid(100)
                );
            }
            Some('T') => {
                let _ = write!(out, "{:02}:{:02}:{:02}", t.hour, t.minute, t.second);
            }
            Some('R') => {
                let _ = write!(out, "{:02}:{:02}", t.hour, t.minute);
            }
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('%') => out.push('%'),
            Some('Z') | Some('z') => {}
            Some(other) => {
                out.push('%');
                if unpadded {
                    out.push('-');
                }
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_python() {
        // (unix seconds, format, Python's `datetime.utcfromtimestamp(s).strftime(format)`)
        let cases: &[(i64, &str, &str)] = &[
            (0, "%d %b %Y", "01 Jan 1970"),
            (1_795_651_200, "%d %b %Y", "26 Nov 2026"),
            (1_795_651_200, "%A %B %-d, %Y", "Thursday November 26, 2026"),
            (951_782_400, "%Y-%m-%d %j %a", "2000-02-29 060 Tue"),
            (
                1_709_251_199,
                "%F %T %I%p %e|%y %u %w",
                "2024-02-29 23:59:59 11PM 29|24 4 4",
            ),
            (-86_400, "%D %H:%M", "12/31/69 00:00"),
            (4_102_444_800, "%d/%m/%Y %% %Q", "01/01/2100 % %Q"),
            (1_735_689_600, "%j %Z%z.", "001 ."),
        ];
        for &(secs, format, expected) in cases {
            assert_eq!(
                format_time(format, &DateTime::from_unix(secs, 0)),
                expected,
                "{secs} {format}"
            );
        }
    }

    #[test]
    fn day_of_year_counts_leap_days() {
        // 2024-12-31 is day 366, 2023-12-31 day 365.
        assert_eq!(DateTime::from_unix(1_735_603_200, 0).day_of_year, 366);
        assert_eq!(DateTime::from_unix(1_703_980_800, 0).day_of_year, 365);
    }
}
