//! What triggers a task: a process that runs to completion on a signal, a
//! timer or a cron schedule (`[task.NAME]` in tend.toml). The command itself
//! is an ordinary [`ProcessSpec`](super::spec::ProcessSpec) with
//! `restart = "never"`; this is what only tasks have.

use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::name::Name;
use super::signal::Signal;

/// The triggers of one task, and what its run does around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskConf {
    /// The task's name (and its process's).
    pub name: Name,
    /// Run it when the program gets this signal.
    pub on_signal: Option<Signal>,
    /// Run it this often (the first run one period after the triggers start).
    pub every: Option<Duration>,
    /// Run it on a cron schedule (exclusive with `every`).
    pub cron: Option<CronSchedule>,
    /// Stop everything else first (dependents first), and start again what
    /// was running once it is done.
    pub shutdown: bool,
    /// Shut the program down once it is done.
    pub terminate: bool,
}

/// A cron schedule: five fields (`minute hour day-of-month month
/// day-of-week`) or a nickname (`@hourly`, `@daily`/`@midnight`, `@weekly`,
/// `@monthly`, `@yearly`/`@annually`), read in a time zone; or `@reboot`,
/// once when the triggers start.
///
/// Across daylight saving time changes it does what Vixie cron does (the
/// rules of the `croner` crate, which evaluates it):
///
/// - a time that falls in a skipped hour (spring forward) runs at the first
///   instant after the gap when the schedule names that time (`30 2 * * *`
///   runs at 03:00 that day); a schedule that matches every minute or hour
///   (`*/5 * * * *`) just has no runs in the gap;
/// - a time that occurs twice (fall back) runs once, at the first occurrence,
///   when the schedule names it (`30 2 * * *`); a schedule with a wildcard or a
///   step in the minute or hour runs in both occurrences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSchedule {
    /// The expression as written, e.g. `*/5 * * * *`.
    expr: String,
    /// `None` for `@reboot`.
    cron: Option<croner::Cron>,
    /// The zone it is read in.
    tz: TimeZone,
}

impl CronSchedule {
    /// Parses `expr` (five fields or a nickname) in the zone `tz`. The error
    /// says what is wrong with it.
    pub fn parse(expr: &str, tz: TimeZone) -> Result<CronSchedule, String> {
        let trimmed = expr.trim();
        if trimmed.eq_ignore_ascii_case("@reboot") {
            return Ok(CronSchedule {
                expr: trimmed.to_string(),
                cron: None,
                tz,
            });
        }
        let text = if trimmed.eq_ignore_ascii_case("@midnight") {
            "@daily"
        } else {
            trimmed
        };
        if text.starts_with('@')
            && !matches!(
                text.to_ascii_lowercase().as_str(),
                "@yearly" | "@annually" | "@monthly" | "@weekly" | "@daily" | "@hourly"
            )
        {
            return Err(format!(
                "unknown cron nickname {trimmed:?}: expected @hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually or @reboot"
            ));
        }
        let fields = text.split_whitespace().count();
        if !text.starts_with('@') && fields != 5 {
            return Err(format!(
                "a cron expression has 5 fields (minute hour day-of-month month day-of-week), {trimmed:?} has {fields}"
            ));
        }
        let parser = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Disallowed)
            .year(croner::parser::Year::Disallowed)
            .build();
        let cron = parser
            .parse(text)
            .map_err(|e| format!("invalid cron expression {trimmed:?}: {e}"))?;
        let schedule = CronSchedule {
            expr: trimmed.to_string(),
            cron: Some(cron),
            tz,
        };
        // `0 0 30 2 *` parses but never comes.
        if schedule.next_after(Timestamp::UNIX_EPOCH).is_none() {
            return Err(format!(
                "the cron expression {trimmed:?} never matches a date"
            ));
        }
        Ok(schedule)
    }

    /// The same schedule, read in `tz`.
    pub fn in_zone(mut self, tz: TimeZone) -> CronSchedule {
        self.tz = tz;
        self
    }

    /// The expression as written.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The zone it is read in.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// Whether this is `@reboot`: once when the triggers start, never again.
    pub fn at_start(&self) -> bool {
        self.cron.is_none()
    }

    /// The first time the schedule fires strictly after `now`; `None` for
    /// `@reboot`, and for a schedule that never comes again.
    pub fn next_after(&self, now: Timestamp) -> Option<Timestamp> {
        let cron = self.cron.as_ref()?;
        let zoned = now.to_zoned(self.tz.clone());
        cron.find_next_occurrence(&zoned, false)
            .ok()
            .map(|z| z.timestamp())
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use jiff::tz::TimeZone;

    use super::CronSchedule;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn sched(expr: &str, tz: &str) -> CronSchedule {
        let tz = TimeZone::get(tz).unwrap_or_else(|e| panic!("{tz}: {e}"));
        CronSchedule::parse(expr, tz).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The next `n` firings after `from`.
    fn runs(s: &CronSchedule, from: &str, n: usize) -> Vec<String> {
        let mut t = at(from);
        let mut out = Vec::new();
        for _ in 0..n {
            let Some(next) = s.next_after(t) else { break };
            out.push(next.to_string());
            t = next;
        }
        out
    }

    #[test]
    fn every_five_minutes_from_any_instant() {
        let s = sched("*/5 * * * *", "UTC");
        assert_eq!(
            runs(&s, "2026-01-01T10:03:17Z", 3),
            [
                "2026-01-01T10:05:00Z",
                "2026-01-01T10:10:00Z",
                "2026-01-01T10:15:00Z"
            ]
        );
        // Strictly after: at 10:05 sharp the next is 10:10.
        assert_eq!(
            runs(&s, "2026-01-01T10:05:00Z", 1),
            ["2026-01-01T10:10:00Z"]
        );
    }

    #[test]
    fn nicknames() {
        for (nick, want) in [
            ("@hourly", "2026-01-01T11:00:00Z"),
            ("@daily", "2026-01-02T00:00:00Z"),
            ("@midnight", "2026-01-02T00:00:00Z"),
            ("@weekly", "2026-01-04T00:00:00Z"),
            ("@monthly", "2026-02-01T00:00:00Z"),
            ("@yearly", "2027-01-01T00:00:00Z"),
            ("@annually", "2027-01-01T00:00:00Z"),
        ] {
            assert_eq!(
                runs(&sched(nick, "UTC"), "2026-01-01T10:03:00Z", 1),
                [want],
                "{nick}"
            );
        }
        let reboot = sched("@reboot", "UTC");
        assert!(reboot.at_start());
        assert_eq!(reboot.next_after(at("2026-01-01T00:00:00Z")), None);
    }

    #[test]
    fn in_a_zone_daily_is_local_midnight() {
        let s = sched("@daily", "Europe/Berlin");
        // Winter: UTC+1.
        assert_eq!(
            runs(&s, "2026-01-01T12:00:00Z", 1),
            ["2026-01-01T23:00:00Z"]
        );
    }

    #[test]
    fn across_spring_forward_a_named_time_in_the_gap_runs_after_it() {
        // Europe/Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST.
        let s = sched("30 2 * * *", "Europe/Berlin");
        assert_eq!(
            runs(&s, "2026-03-28T12:00:00Z", 2),
            [
                // The 29th has no 02:30: 03:00 CEST, the first instant after the gap.
                "2026-03-29T01:00:00Z",
                // 02:30 CEST on the 30th.
                "2026-03-30T00:30:00Z",
            ]
        );
        let every = sched("*/30 * * * *", "Europe/Berlin");
        assert_eq!(
            runs(&every, "2026-03-29T00:15:00Z", 3),
            [
                // 01:30 CET
                "2026-03-29T00:30:00Z",
                // 03:00 CEST: 02:00 and 02:30 do not exist
                "2026-03-29T01:00:00Z",
                "2026-03-29T01:30:00Z",
            ]
        );
    }

    #[test]
    fn across_fall_back_a_named_time_runs_once_a_step_runs_in_both_hours() {
        // Europe/Berlin, 2026-10-25: 03:00 CEST falls back to 02:00 CET.
        let s = sched("30 2 * * *", "Europe/Berlin");
        assert_eq!(
            runs(&s, "2026-10-24T12:00:00Z", 2),
            [
                // 02:30 CEST (the first of the two)
                "2026-10-25T00:30:00Z",
                "2026-10-26T01:30:00Z",
            ]
        );
        let every = sched("30 * * * *", "Europe/Berlin");
        assert_eq!(
            runs(&every, "2026-10-24T23:45:00Z", 3),
            [
                // 02:30 CEST, 02:30 CET, 03:30 CET
                "2026-10-25T00:30:00Z",
                "2026-10-25T01:30:00Z",
                "2026-10-25T02:30:00Z",
            ]
        );
    }

    #[test]
    fn bad_expressions_say_why() {
        let utc = || TimeZone::UTC;
        for (expr, want) in [
            ("* * * *", "has 4"),
            ("0 * * * * *", "has 6"),
            ("61 * * * *", "invalid cron expression"),
            ("@often", "unknown cron nickname"),
            ("0 0 31 2 *", "never matches"),
            ("", "has 0"),
        ] {
            let e = CronSchedule::parse(expr, utc()).err();
            assert!(
                e.as_deref().is_some_and(|e| e.contains(want)),
                "{expr:?}: {e:?}"
            );
        }
    }
}
