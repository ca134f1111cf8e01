//! Maintenance windows: recurring windows configured in UTC (daily, weekly, or the nth
//! weekday of each month) and windows started from chat. Pure: `now` is always an argument.
//!
//! Occurrences of one recurring window never overlap: a daily window lasts at most a day, a
//! weekly or monthly one at most a week (consecutive monthly occurrences are 28 or 35 days
//! apart). So at most one occurrence of a window contains a given instant.

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveTime, SecondsFormat, Timelike, Utc, Weekday,
};

/// Longest window accepted, in days.
pub const MAX_WINDOW_DAYS: i64 = 7;

/// How far back `last_ended_by` searches for a start: more than the 35 days that can separate
/// two monthly occurrences.
const SEARCH_BACK_DAYS: usize = 40;

/// Which occurrence of a weekday in a month.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nth {
    /// Days 1–7.
    First,
    /// Days 8–14.
    Second,
    /// Days 15–21.
    Third,
    /// Days 22–28.
    Fourth,
    /// The last seven days of the month.
    Last,
}

impl Nth {
    /// "first", "second", "third", "fourth" or "last".
    pub fn as_str(self) -> &'static str {
        match self {
            Nth::First => "first",
            Nth::Second => "second",
            Nth::Third => "third",
            Nth::Fourth => "fourth",
            Nth::Last => "last",
        }
    }

    /// A lowercase word: "first" … "fourth", "last", or "1st" … "4th".
    fn parse(word: &str) -> Option<Nth> {
        Some(match word {
            "first" | "1st" => Nth::First,
            "second" | "2nd" => Nth::Second,
            "third" | "3rd" => Nth::Third,
            "fourth" | "4th" => Nth::Fourth,
            "last" => Nth::Last,
            _ => return None,
        })
    }

    /// Whether day `day` of a month of `days_in_month` days is this occurrence of its weekday.
    fn matches(self, day: u32, days_in_month: u32) -> bool {
        match self {
            Nth::First => (1..=7).contains(&day),
            Nth::Second => (8..=14).contains(&day),
            Nth::Third => (15..=21).contains(&day),
            Nth::Fourth => (22..=28).contains(&day),
            Nth::Last => day + 7 > days_in_month,
        }
    }
}

/// How a window recurs (all in UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recurrence {
    /// Every day.
    Daily,
    /// Every week on this day.
    Weekly(Weekday),
    /// e.g. the first Sunday of each month.
    Monthly { nth: Nth, weekday: Weekday },
}

impl Recurrence {
    /// "every day", "every Sunday", "the first Sunday of each month".
    pub fn describe(&self) -> String {
        match *self {
            Recurrence::Daily => "every day".to_string(),
            Recurrence::Weekly(weekday) => format!("every {}", weekday_name(weekday)),
            Recurrence::Monthly { nth, weekday } => {
                format!(
                    "the {} {} of each month",
                    nth.as_str(),
                    weekday_name(weekday)
                )
            }
        }
    }

    /// Whether an occurrence starts on `date`.
    pub fn falls_on(&self, date: NaiveDate) -> bool {
        match *self {
            Recurrence::Daily => true,
            Recurrence::Weekly(weekday) => date.weekday() == weekday,
            Recurrence::Monthly { nth, weekday } => {
                date.weekday() == weekday && nth.matches(date.day(), days_in_month(date))
            }
        }
    }

    /// The longest duration that keeps occurrences apart: a day for daily windows, otherwise
    /// `MAX_WINDOW_DAYS`.
    pub fn max_duration(&self) -> Duration {
        match self {
            Recurrence::Daily => Duration::days(1),
            _ => Duration::days(MAX_WINDOW_DAYS),
        }
    }
}

/// Parse the `every` text of a configured window: "day" / "daily", "<weekday>" (weekly, e.g.
/// "sunday", "sun"), or "<first|second|third|fourth|last|1st|2nd|3rd|4th> <weekday>"
/// (monthly), optionally followed by "of each month" or "of the month". Case-insensitive;
/// weekdays by full name or three-letter abbreviation.
pub fn parse_every(text: &str) -> Result<Recurrence, String> {
    let lower = text.to_lowercase();
    let mut words: Vec<&str> = lower.split_whitespace().collect();
    let monthly_suffix =
        words.len() > 3 && matches!(words[words.len() - 3..], ["of", "each" | "the", "month"]);
    if monthly_suffix {
        words.truncate(words.len() - 3);
    }
    let parsed = match words.as_slice() {
        ["day" | "daily"] if !monthly_suffix => Some(Recurrence::Daily),
        [day] if !monthly_suffix => parse_weekday(day).map(Recurrence::Weekly),
        [nth, day] => Nth::parse(nth)
            .zip(parse_weekday(day))
            .map(|(nth, weekday)| Recurrence::Monthly { nth, weekday }),
        _ => None,
    };
    parsed.ok_or_else(|| {
        format!(
            "unknown recurrence `{}`: expected `day` (or `daily`), a weekday such as `sunday` or \
             `sun` (weekly), or `<first|second|third|fourth|last> <weekday>` such as \
             `first sunday` or `last friday of each month` (monthly)",
            text.trim()
        )
    })
}

/// Parse "HH:MM" (24-hour, UTC; a one-digit hour such as "2:00" is accepted).
pub fn parse_time_of_day(text: &str) -> Result<NaiveTime, String> {
    let error = || {
        format!(
            "invalid time of day `{}`: expected HH:MM in 24-hour UTC, such as `02:00` or `22:30`",
            text.trim()
        )
    };
    let digits = |s: &str, min: usize, max: usize| {
        (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
    };
    let (hours, minutes) = text.trim().split_once(':').ok_or_else(error)?;
    if !digits(hours, 1, 2) || !digits(minutes, 2, 2) {
        return Err(error());
    }
    let hours: u32 = hours.parse().map_err(|_| error())?;
    let minutes: u32 = minutes.parse().map_err(|_| error())?;
    NaiveTime::from_hms_opt(hours, minutes, 0).ok_or_else(error)
}

/// A configured recurring window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecurringWindow {
    /// The configured name; part of each occurrence's id.
    pub name: String,
    /// Which days it starts on.
    pub every: Recurrence,
    /// Time of day the window starts, UTC.
    pub start: NaiveTime,
    /// Longer than zero; at most a day for daily windows, at most `MAX_WINDOW_DAYS` otherwise.
    pub duration: Duration,
}

impl RecurringWindow {
    /// A window with a non-blank name and a valid duration (see `duration`).
    pub fn new(
        name: String,
        every: Recurrence,
        start: NaiveTime,
        duration: Duration,
    ) -> Result<Self, String> {
        if name.trim().is_empty() {
            return Err("a maintenance window needs a name".to_string());
        }
        if duration <= Duration::zero() {
            return Err(format!(
                "maintenance window `{name}`: the duration must be longer than zero"
            ));
        }
        if duration > every.max_duration() {
            let limit = match every {
                Recurrence::Daily => "a daily window lasts at most 24 hours".to_string(),
                _ => format!("a window lasts at most {MAX_WINDOW_DAYS} days"),
            };
            return Err(format!("maintenance window `{name}`: {limit}"));
        }
        Ok(RecurringWindow {
            name,
            every,
            start,
            duration,
        })
    }

    /// "the first Sunday of each month, 02:00–06:00 UTC"; "every day, 22:00–02:00 UTC
    /// (+1 day)" when the window ends on a later day than it starts.
    pub fn describe(&self) -> String {
        let start = NaiveDate::default().and_time(self.start);
        let end = start + self.duration;
        let days = (end.date() - start.date()).num_days();
        let later = match days {
            0 => String::new(),
            1 => " (+1 day)".to_string(),
            n => format!(" (+{n} days)"),
        };
        format!(
            "{}, {}–{} UTC{later}",
            self.every.describe(),
            time_of_day(self.start),
            time_of_day(end.time())
        )
    }

    /// The occurrence containing `at` (start <= at < end), if any, including one that started
    /// on an earlier day, month or year.
    pub fn occurrence_at(&self, at: DateTime<Utc>) -> Option<Occurrence> {
        let mut date = at.date_naive();
        // Durations are at most MAX_WINDOW_DAYS, so the start is at most that many days back.
        for _ in 0..=MAX_WINDOW_DAYS {
            if let Some(start) = self.start_on(date) {
                let occurrence = self.occurrence(start);
                if occurrence.contains(at) {
                    return Some(occurrence);
                }
            }
            date = date.pred_opt()?;
        }
        None
    }

    /// The first occurrence that starts strictly after `after`.
    ///
    /// Panics only within a few weeks of the end of chrono's date range.
    pub fn next_after(&self, after: DateTime<Utc>) -> Occurrence {
        let mut date = after.date_naive();
        loop {
            if let Some(start) = self.start_on(date)
                && start > after
            {
                return self.occurrence(start);
            }
            date = date
                .succ_opt()
                .expect("a date before the end of chrono's range");
        }
    }

    /// The latest occurrence whose end is <= `at` (None only at the start of chrono's range).
    pub fn last_ended_by(&self, at: DateTime<Utc>) -> Option<Occurrence> {
        let latest_start = at.checked_sub_signed(self.duration)?;
        let mut date = latest_start.date_naive();
        for _ in 0..=SEARCH_BACK_DAYS {
            if let Some(start) = self.start_on(date)
                && start <= latest_start
            {
                return Some(self.occurrence(start));
            }
            date = date.pred_opt()?;
        }
        None
    }

    /// The start of the occurrence that starts on `date`, if one does.
    fn start_on(&self, date: NaiveDate) -> Option<DateTime<Utc>> {
        self.every
            .falls_on(date)
            .then(|| date.and_time(self.start).and_utc())
    }

    /// The occurrence starting at `starts_at`.
    fn occurrence(&self, starts_at: DateTime<Utc>) -> Occurrence {
        Occurrence {
            id: format!(
                "recurring:{}:{}",
                self.name,
                starts_at.to_rfc3339_opts(SecondsFormat::Secs, true)
            ),
            name: self.name.clone(),
            starts_at,
            ends_at: starts_at + self.duration,
        }
    }
}

/// One concrete window: a recurring window's occurrence, or one started from chat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Occurrence {
    /// Stable id, unique per occurrence: for a recurring window
    /// "recurring:<name>:<start as RFC 3339 UTC, seconds precision>", e.g.
    /// "recurring:db:2026-12-06T02:00:00Z".
    pub id: String,
    /// The window's name.
    pub name: String,
    /// First instant inside.
    pub starts_at: DateTime<Utc>,
    /// First instant after it (excluded).
    pub ends_at: DateTime<Utc>,
}

impl Occurrence {
    /// Whether `at` is inside: `starts_at <= at < ends_at`.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.starts_at <= at && at < self.ends_at
    }
}

/// The windows in force at `at`: every recurring occurrence containing `at`, plus the ad-hoc
/// windows that contain `at`, ordered by end time (latest last; ties keep recurring windows
/// first, then the given order).
pub fn active_at(
    recurring: &[RecurringWindow],
    ad_hoc: &[Occurrence],
    at: DateTime<Utc>,
) -> Vec<Occurrence> {
    let mut active: Vec<Occurrence> = recurring
        .iter()
        .filter_map(|window| window.occurrence_at(at))
        .chain(ad_hoc.iter().filter(|o| o.contains(at)).cloned())
        .collect();
    active.sort_by_key(|o| o.ends_at);
    active
}

/// A lowercase weekday: full name or three-letter abbreviation.
fn parse_weekday(word: &str) -> Option<Weekday> {
    Some(match word {
        "monday" | "mon" => Weekday::Mon,
        "tuesday" | "tue" => Weekday::Tue,
        "wednesday" | "wed" => Weekday::Wed,
        "thursday" | "thu" => Weekday::Thu,
        "friday" | "fri" => Weekday::Fri,
        "saturday" | "sat" => Weekday::Sat,
        "sunday" | "sun" => Weekday::Sun,
        _ => return None,
    })
}

/// "Monday" … "Sunday".
fn weekday_name(weekday: Weekday) -> &'static str {
    match weekday {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

/// "02:00", or "02:00:30" when there are seconds.
fn time_of_day(time: NaiveTime) -> String {
    if time.second() == 0 {
        time.format("%H:%M").to_string()
    } else {
        time.format("%H:%M:%S").to_string()
    }
}

/// Number of days in the month of `date`.
fn days_in_month(date: NaiveDate) -> u32 {
    let (year, month) = match date.month() {
        12 => (date.year() + 1, 1),
        m => (date.year(), m + 1),
    };
    NaiveDate::from_ymd_opt(year, month, 1)
        .and_then(|first| first.pred_opt())
        .map_or(31, |last| last.day())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn hm(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    fn window(name: &str, every: &str, start: &str, duration: Duration) -> RecurringWindow {
        RecurringWindow::new(
            name.to_string(),
            parse_every(every).unwrap(),
            parse_time_of_day(start).unwrap(),
            duration,
        )
        .unwrap()
    }

    /// First Sunday of each month, 02:00–06:00 UTC.
    fn first_sunday() -> RecurringWindow {
        window("db", "first sunday", "02:00", Duration::hours(4))
    }

    fn span(o: &Occurrence) -> (DateTime<Utc>, DateTime<Utc>) {
        (o.starts_at, o.ends_at)
    }

    fn ad_hoc(id: &str, starts_at: DateTime<Utc>, ends_at: DateTime<Utc>) -> Occurrence {
        Occurrence {
            id: id.to_string(),
            name: id.to_string(),
            starts_at,
            ends_at,
        }
    }

    #[test]
    fn parse_every_accepted_forms() {
        use Recurrence::*;
        let cases = [
            ("day", Daily),
            ("daily", Daily),
            ("  DAY  ", Daily),
            ("Daily", Daily),
            ("sunday", Weekly(Weekday::Sun)),
            ("Sun", Weekly(Weekday::Sun)),
            ("  WEDNESDAY ", Weekly(Weekday::Wed)),
            ("thu", Weekly(Weekday::Thu)),
            (
                "first sunday",
                Monthly {
                    nth: Nth::First,
                    weekday: Weekday::Sun,
                },
            ),
            (
                "1st Sun",
                Monthly {
                    nth: Nth::First,
                    weekday: Weekday::Sun,
                },
            ),
            (
                "second   tuesday",
                Monthly {
                    nth: Nth::Second,
                    weekday: Weekday::Tue,
                },
            ),
            (
                "2nd tue of the month",
                Monthly {
                    nth: Nth::Second,
                    weekday: Weekday::Tue,
                },
            ),
            (
                "3rd wed",
                Monthly {
                    nth: Nth::Third,
                    weekday: Weekday::Wed,
                },
            ),
            (
                "Third Wednesday Of Each Month",
                Monthly {
                    nth: Nth::Third,
                    weekday: Weekday::Wed,
                },
            ),
            (
                "fourth thursday",
                Monthly {
                    nth: Nth::Fourth,
                    weekday: Weekday::Thu,
                },
            ),
            (
                "4th sat",
                Monthly {
                    nth: Nth::Fourth,
                    weekday: Weekday::Sat,
                },
            ),
            (
                "  last   FRIDAY  of  each   month ",
                Monthly {
                    nth: Nth::Last,
                    weekday: Weekday::Fri,
                },
            ),
            (
                "last mon",
                Monthly {
                    nth: Nth::Last,
                    weekday: Weekday::Mon,
                },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_every(text), Ok(expected), "{text:?}");
        }
    }

    #[test]
    fn parse_every_rejected_forms() {
        for text in [
            "",
            "   ",
            "days",
            "every day",
            "sundays",
            "sunday of each month",
            "day of each month",
            "first",
            "first day",
            "fifth sunday",
            "5th sunday",
            "0th sunday",
            "first sunday of each week",
            "first sunday of",
            "first sunday of each",
            "last friday month",
            "sunday monday",
            "first sunday monday",
            "every other sunday",
            "su",
            "tues",
        ] {
            let error = parse_every(text).unwrap_err();
            assert!(
                error.contains(&format!("`{}`", text.trim())),
                "{text:?}: {error}"
            );
            assert!(error.contains("`daily`"), "{error}");
            assert!(error.contains("`first sunday`"), "{error}");
        }
    }

    #[test]
    fn parse_time_of_day_forms() {
        assert_eq!(parse_time_of_day("02:00"), Ok(hm(2, 0)));
        assert_eq!(parse_time_of_day("2:00"), Ok(hm(2, 0)));
        assert_eq!(parse_time_of_day(" 22:30 "), Ok(hm(22, 30)));
        assert_eq!(parse_time_of_day("00:00"), Ok(hm(0, 0)));
        assert_eq!(parse_time_of_day("23:59"), Ok(hm(23, 59)));
        for text in [
            "24:00", "12:60", "ab", "", "2", "0200", "02:0", "02:000", "002:00", "02:00:00",
            "+2:00", "-1:00", "02 :00", "ab:cd", "2:5",
        ] {
            let error = parse_time_of_day(text).unwrap_err();
            assert!(error.contains("HH:MM"), "{text:?}: {error}");
            assert!(error.contains(&format!("`{}`", text.trim())), "{error}");
        }
    }

    #[test]
    fn invalid_durations_rejected() {
        let every = Recurrence::Weekly(Weekday::Sun);
        let new = |every, duration| RecurringWindow::new("w".into(), every, hm(2, 0), duration);
        assert!(
            new(every, Duration::zero())
                .unwrap_err()
                .contains("longer than zero")
        );
        assert!(
            new(every, Duration::minutes(-5))
                .unwrap_err()
                .contains("longer than zero")
        );
        let too_long = new(every, Duration::days(7) + Duration::seconds(1)).unwrap_err();
        assert!(too_long.contains("at most 7 days"), "{too_long}");
        assert!(new(every, Duration::days(7)).is_ok());
        assert!(new(every, Duration::seconds(1)).is_ok());
        let monthly = parse_every("last saturday").unwrap();
        assert!(new(monthly, Duration::days(8)).is_err());
        assert!(new(monthly, Duration::days(7)).is_ok());
        let daily = new(Recurrence::Daily, Duration::hours(25)).unwrap_err();
        assert!(daily.contains("at most 24 hours"), "{daily}");
        assert!(new(Recurrence::Daily, Duration::hours(24)).is_ok());
        let blank = RecurringWindow::new(" ".into(), every, hm(2, 0), Duration::hours(1));
        assert!(blank.unwrap_err().contains("name"));
    }

    #[test]
    fn describe_recurrences_and_windows() {
        assert_eq!(Recurrence::Daily.describe(), "every day");
        assert_eq!(parse_every("sun").unwrap().describe(), "every Sunday");
        assert_eq!(
            parse_every("1st sunday").unwrap().describe(),
            "the first Sunday of each month"
        );
        assert_eq!(
            parse_every("last fri").unwrap().describe(),
            "the last Friday of each month"
        );
        assert_eq!(
            first_sunday().describe(),
            "the first Sunday of each month, 02:00–06:00 UTC"
        );
        assert_eq!(
            window("n", "daily", "22:00", Duration::hours(4)).describe(),
            "every day, 22:00–02:00 UTC (+1 day)"
        );
        assert_eq!(
            window("n", "last saturday", "20:00", Duration::days(2)).describe(),
            "the last Saturday of each month, 20:00–20:00 UTC (+2 days)"
        );
        assert_eq!(
            window("n", "tue", "23:30", Duration::minutes(30)).describe(),
            "every Tuesday, 23:30–00:00 UTC (+1 day)"
        );
        assert_eq!(
            window("n", "tue", "09:15", Duration::minutes(90)).describe(),
            "every Tuesday, 09:15–10:45 UTC"
        );
    }

    #[test]
    fn first_sunday_occurrences_across_year_end() {
        let w = first_sunday();
        let nov = w.next_after(utc(2026, 10, 15, 0, 0));
        assert_eq!(span(&nov), (utc(2026, 11, 1, 2, 0), utc(2026, 11, 1, 6, 0)));
        assert_eq!(nov.id, "recurring:db:2026-11-01T02:00:00Z");
        assert_eq!(nov.name, "db");
        let dec = w.next_after(nov.starts_at);
        assert_eq!(span(&dec), (utc(2026, 12, 6, 2, 0), utc(2026, 12, 6, 6, 0)));
        assert_eq!(dec.id, "recurring:db:2026-12-06T02:00:00Z");
        let jan = w.next_after(dec.starts_at);
        assert_eq!(span(&jan), (utc(2027, 1, 3, 2, 0), utc(2027, 1, 3, 6, 0)));
        assert_eq!(jan.id, "recurring:db:2027-01-03T02:00:00Z");
    }

    #[test]
    fn first_sunday_occurrence_at() {
        let w = first_sunday();
        let dec = w.occurrence_at(utc(2026, 12, 6, 3, 30)).unwrap();
        assert_eq!(span(&dec), (utc(2026, 12, 6, 2, 0), utc(2026, 12, 6, 6, 0)));
        assert_eq!(w.occurrence_at(utc(2026, 12, 6, 2, 0)), Some(dec.clone()));
        let last_second = utc(2026, 12, 6, 6, 0) - Duration::seconds(1);
        assert_eq!(w.occurrence_at(last_second), Some(dec));
        assert_eq!(w.occurrence_at(utc(2026, 12, 6, 6, 0)), None);
        assert_eq!(w.occurrence_at(utc(2026, 12, 6, 1, 59)), None);
        assert_eq!(w.occurrence_at(utc(2026, 12, 13, 3, 0)), None);
        assert_eq!(w.occurrence_at(utc(2026, 11, 29, 3, 0)), None);
        let nov = w.occurrence_at(utc(2026, 11, 1, 5, 0)).unwrap();
        assert_eq!(nov.id, "recurring:db:2026-11-01T02:00:00Z");
    }

    #[test]
    fn next_after_crosses_year_end_and_excludes_the_given_start() {
        let w = first_sunday();
        let jan = w.next_after(utc(2026, 12, 28, 12, 0));
        assert_eq!(span(&jan), (utc(2027, 1, 3, 2, 0), utc(2027, 1, 3, 6, 0)));
        // Inside an occurrence, the next one is the following month's.
        assert_eq!(
            w.next_after(utc(2026, 12, 6, 3, 0)).starts_at,
            jan.starts_at
        );
        // Exactly at a start: the following one.
        let feb = w.next_after(utc(2027, 1, 3, 2, 0));
        assert_eq!(feb.starts_at, utc(2027, 2, 7, 2, 0));
        // Just before a start: that one.
        let just_before = utc(2027, 1, 3, 2, 0) - Duration::seconds(1);
        assert_eq!(w.next_after(just_before).starts_at, utc(2027, 1, 3, 2, 0));
    }

    #[test]
    fn last_weekday_of_february_leap_and_not() {
        let w = window("fri", "last friday", "01:00", Duration::hours(2));
        let leap = w.next_after(utc(2028, 2, 1, 0, 0));
        assert_eq!(
            span(&leap),
            (utc(2028, 2, 25, 1, 0), utc(2028, 2, 25, 3, 0))
        );
        let common = w.next_after(utc(2027, 2, 1, 0, 0));
        assert_eq!(
            span(&common),
            (utc(2027, 2, 26, 1, 0), utc(2027, 2, 26, 3, 0))
        );
        assert_eq!(w.occurrence_at(utc(2028, 2, 25, 2, 0)), Some(leap));
        assert_eq!(w.occurrence_at(utc(2028, 2, 18, 2, 0)), None);
        // After February's, March's.
        assert_eq!(
            w.next_after(utc(2028, 2, 25, 1, 0)).starts_at,
            utc(2028, 3, 31, 1, 0)
        );
    }

    #[test]
    fn last_weekday_in_30_and_31_day_months() {
        let fri = window("fri", "last friday", "01:00", Duration::hours(2));
        // April 2026 (30 days) ends on a Thursday; May 2026 (31 days) on a Sunday.
        assert_eq!(
            fri.next_after(utc(2026, 4, 1, 0, 0)).starts_at,
            utc(2026, 4, 24, 1, 0)
        );
        assert_eq!(
            fri.next_after(utc(2026, 4, 24, 1, 0)).starts_at,
            utc(2026, 5, 29, 1, 0)
        );
        // The last day of the month itself: Saturday 31 October 2026, Thursday 30 April 2026.
        let sat = window("sat", "last sat", "01:00", Duration::hours(2));
        assert_eq!(
            sat.next_after(utc(2026, 10, 1, 0, 0)).starts_at,
            utc(2026, 10, 31, 1, 0)
        );
        let thu = window("thu", "last thursday", "01:00", Duration::hours(2));
        assert_eq!(
            thu.next_after(utc(2026, 4, 1, 0, 0)).starts_at,
            utc(2026, 4, 30, 1, 0)
        );
        // The fourth Thursday of April 2026 is the 23rd, not the last.
        let fourth = window("4th", "fourth thursday", "01:00", Duration::hours(2));
        assert_eq!(
            fourth.next_after(utc(2026, 4, 1, 0, 0)).starts_at,
            utc(2026, 4, 23, 1, 0)
        );
    }

    #[test]
    fn daily_window_spanning_midnight_at_year_end() {
        let w = window("nightly", "daily", "22:00", Duration::hours(4));
        let expected = (utc(2026, 12, 31, 22, 0), utc(2027, 1, 1, 2, 0));
        let o = w.occurrence_at(utc(2026, 12, 31, 23, 30)).unwrap();
        assert_eq!(span(&o), expected);
        assert_eq!(o.id, "recurring:nightly:2026-12-31T22:00:00Z");
        let inside = w.occurrence_at(utc(2027, 1, 1, 1, 59)).unwrap();
        assert_eq!(span(&inside), expected);
        assert_eq!(w.occurrence_at(utc(2027, 1, 1, 2, 0)), None);
        assert_eq!(w.occurrence_at(utc(2027, 1, 1, 21, 59)), None);
        assert_eq!(
            w.next_after(utc(2026, 12, 31, 23, 30)).starts_at,
            utc(2027, 1, 1, 22, 0)
        );
        // The same across a month end that is not a year end.
        let feb = w.occurrence_at(utc(2027, 3, 1, 0, 30)).unwrap();
        assert_eq!(span(&feb), (utc(2027, 2, 28, 22, 0), utc(2027, 3, 1, 2, 0)));
    }

    #[test]
    fn daily_window_of_a_whole_day_is_contiguous() {
        let w = window("always", "day", "06:00", Duration::hours(24));
        let o = w.occurrence_at(utc(2026, 3, 10, 5, 59)).unwrap();
        assert_eq!(span(&o), (utc(2026, 3, 9, 6, 0), utc(2026, 3, 10, 6, 0)));
        let o = w.occurrence_at(utc(2026, 3, 10, 6, 0)).unwrap();
        assert_eq!(span(&o), (utc(2026, 3, 10, 6, 0), utc(2026, 3, 11, 6, 0)));
    }

    #[test]
    fn monthly_multi_day_window_spanning_month_end() {
        // Last Saturday of October 2026 is the 31st: 20:00 for two days ends 2 November 20:00.
        let w = window("migr", "last saturday", "20:00", Duration::days(2));
        let expected = (utc(2026, 10, 31, 20, 0), utc(2026, 11, 2, 20, 0));
        for at in [
            utc(2026, 10, 31, 20, 0),
            utc(2026, 11, 1, 12, 0),
            utc(2026, 11, 2, 19, 59),
        ] {
            assert_eq!(
                w.occurrence_at(at).map(|o| span(&o)),
                Some(expected),
                "{at}"
            );
        }
        assert_eq!(w.occurrence_at(utc(2026, 11, 2, 20, 0)), None);
        assert_eq!(w.occurrence_at(utc(2026, 10, 31, 19, 59)), None);
        assert_eq!(
            w.next_after(utc(2026, 10, 31, 20, 0)).starts_at,
            utc(2026, 11, 28, 20, 0)
        );

        // Last Thursday of December 2026 is the 31st: the window runs into 2027.
        let w = window("ye", "last thu of the month", "20:00", Duration::days(2));
        let o = w.occurrence_at(utc(2027, 1, 2, 12, 0)).unwrap();
        assert_eq!(span(&o), (utc(2026, 12, 31, 20, 0), utc(2027, 1, 2, 20, 0)));
        assert_eq!(o.id, "recurring:ye:2026-12-31T20:00:00Z");
        assert_eq!(w.occurrence_at(utc(2027, 1, 2, 20, 0)), None);
    }

    #[test]
    fn weekly_windows() {
        let w = window("patch", "wed", "23:00", Duration::hours(3));
        // Wednesday 2 December 2026.
        let o = w.occurrence_at(utc(2026, 12, 3, 1, 0)).unwrap();
        assert_eq!(span(&o), (utc(2026, 12, 2, 23, 0), utc(2026, 12, 3, 2, 0)));
        assert_eq!(o.id, "recurring:patch:2026-12-02T23:00:00Z");
        assert_eq!(w.occurrence_at(utc(2026, 12, 3, 2, 0)), None);
        assert_eq!(w.occurrence_at(utc(2026, 12, 4, 0, 0)), None);
        assert_eq!(
            w.next_after(utc(2026, 12, 2, 23, 0)).starts_at,
            utc(2026, 12, 9, 23, 0)
        );
        assert_eq!(
            w.next_after(utc(2026, 12, 30, 23, 30)).starts_at,
            utc(2027, 1, 6, 23, 0)
        );

        // A full week: always in one occurrence, the new one from its start on.
        let week = window("freeze", "sunday", "00:00", Duration::days(7));
        let o = week.occurrence_at(utc(2026, 12, 12, 23, 59)).unwrap();
        assert_eq!(span(&o), (utc(2026, 12, 6, 0, 0), utc(2026, 12, 13, 0, 0)));
        let o = week.occurrence_at(utc(2026, 12, 13, 0, 0)).unwrap();
        assert_eq!(span(&o), (utc(2026, 12, 13, 0, 0), utc(2026, 12, 20, 0, 0)));
    }

    #[test]
    fn last_ended_by() {
        let w = first_sunday();
        let dec = w.last_ended_by(utc(2026, 12, 6, 6, 0)).unwrap();
        assert_eq!(span(&dec), (utc(2026, 12, 6, 2, 0), utc(2026, 12, 6, 6, 0)));
        let nov = w
            .last_ended_by(utc(2026, 12, 6, 6, 0) - Duration::seconds(1))
            .unwrap();
        assert_eq!(span(&nov), (utc(2026, 11, 1, 2, 0), utc(2026, 11, 1, 6, 0)));
        assert_eq!(w.last_ended_by(utc(2026, 12, 5, 0, 0)), Some(nov));
        assert_eq!(w.last_ended_by(utc(2027, 1, 2, 0, 0)), Some(dec));
        // Across a 35-day gap: first Sunday of January 2027 (3rd), then February (7th).
        assert_eq!(
            w.last_ended_by(utc(2027, 2, 7, 5, 0)).unwrap().starts_at,
            utc(2027, 1, 3, 2, 0)
        );

        let nightly = window("nightly", "daily", "22:00", Duration::hours(4));
        assert_eq!(
            nightly
                .last_ended_by(utc(2027, 1, 1, 1, 0))
                .unwrap()
                .starts_at,
            utc(2026, 12, 30, 22, 0)
        );
        assert_eq!(
            nightly
                .last_ended_by(utc(2027, 1, 1, 2, 0))
                .unwrap()
                .starts_at,
            utc(2026, 12, 31, 22, 0)
        );
    }

    #[test]
    fn active_at_merges_and_orders_by_end() {
        let nightly = window("nightly", "daily", "22:00", Duration::hours(4));
        let sunday = first_sunday();
        let weekly = window("weekly", "sat", "12:00", Duration::days(1));
        let at = utc(2026, 12, 6, 1, 0);
        let chat_long = ad_hoc("adhoc:1", utc(2026, 12, 5, 23, 0), utc(2026, 12, 6, 9, 0));
        let chat_short = ad_hoc("adhoc:2", utc(2026, 12, 6, 0, 30), utc(2026, 12, 6, 1, 30));
        let chat_over = ad_hoc("adhoc:3", utc(2026, 12, 5, 20, 0), utc(2026, 12, 6, 1, 0));
        let chat_later = ad_hoc("adhoc:4", utc(2026, 12, 6, 1, 1), utc(2026, 12, 6, 3, 0));
        // Ends with the nightly window: after it (recurring first on ties).
        let chat_tie = ad_hoc("adhoc:5", utc(2026, 12, 6, 0, 0), utc(2026, 12, 6, 2, 0));
        let active = active_at(
            &[nightly.clone(), sunday.clone(), weekly.clone()],
            &[chat_long, chat_tie, chat_short, chat_over, chat_later],
            at,
        );
        let ids: Vec<&str> = active.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "adhoc:2",
                "recurring:nightly:2026-12-05T22:00:00Z",
                "adhoc:5",
                "adhoc:1",
                "recurring:weekly:2026-12-05T12:00:00Z",
            ]
        );

        let at = utc(2026, 12, 6, 3, 0);
        let active = active_at(&[nightly.clone(), sunday, weekly], &[], at);
        let spans: Vec<_> = active.iter().map(span).collect();
        assert_eq!(
            spans,
            [
                (utc(2026, 12, 6, 2, 0), utc(2026, 12, 6, 6, 0)),
                (utc(2026, 12, 5, 12, 0), utc(2026, 12, 6, 12, 0)),
            ]
        );

        assert!(active_at(&[nightly], &[], utc(2026, 12, 6, 12, 0)).is_empty());
    }

    #[test]
    fn occurrence_contains_is_half_open() {
        let o = ad_hoc("a", utc(2026, 1, 1, 0, 0), utc(2026, 1, 1, 1, 0));
        assert!(o.contains(utc(2026, 1, 1, 0, 0)));
        assert!(o.contains(utc(2026, 1, 1, 0, 59)));
        assert!(!o.contains(utc(2026, 1, 1, 1, 0)));
        assert!(!o.contains(utc(2025, 12, 31, 23, 59)));
    }
}
