//! Human durations: `100ms`, `1s`, `1.5s`, `5m`, `15min`, `1h`, `2d`, `0`.
//!
//! A bare number is seconds (Supervisor's `stopwaitsecs` style). This is the one
//! parser for every duration in every config format, so `"1m"` means the same
//! thing everywhere.

use std::time::Duration;

/// A string that is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {input:?}: {why} (examples: \"100ms\", \"1s\", \"1.5s\", \"5m\", \"1h\")"
)]
pub struct DurationError {
    /// What was given.
    pub input: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// Parses a duration such as `"1.5s"`; see the module docs.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let err = |why| DurationError {
        input: input.to_string(),
        why,
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("it is empty"));
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(err("it does not start with a number"));
    }
    let value: f64 = num.parse().map_err(|_| err("the number is malformed"))?;
    let scale = match unit.trim() {
        "" | "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        "ms" | "msec" | "millis" | "milliseconds" => 1e-3,
        "us" | "µs" | "micros" | "microseconds" => 1e-6,
        "ns" | "nanos" | "nanoseconds" => 1e-9,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
        "h" | "hr" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86400.0,
        _ => return Err(err("the unit is not one of ms, s, m, h, d")),
    };
    let secs = value * scale;
    if !secs.is_finite() || secs > 1e12 {
        return Err(err("it is too large"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Formats a duration compactly and exactly enough to parse back: `250ms`, `1s`,
/// `1.5s`, `2m`, `1h`.
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        return format!("{}us", d.as_micros());
    }
    if ms == 0 {
        "0s".to_string()
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else if ms > 1000 {
        format!("{}s", d.as_secs_f64())
    } else {
        format!("{ms}ms")
    }
}

/// `serde(with = "tend_core::duration::serde_str")`: a duration as its string
/// form, accepting a string or a number of seconds on input.
pub mod serde_str {
    use super::{Duration, format, parse};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes as [`format()`](super::format).
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*d))
    }

    /// Accepts `"1.5s"` or `1.5` (seconds).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => parse(&s).map_err(serde::de::Error::custom),
            serde_json::Value::Number(n) => n
                .as_f64()
                .filter(|v| v.is_finite() && *v >= 0.0 && *v < 1e12)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| {
                    serde::de::Error::custom("a duration must be a non-negative number of seconds")
                }),
            other => Err(serde::de::Error::custom(format!(
                "expected a duration, found {other}"
            ))),
        }
    }
}

/// Like [`serde_str`] for a list of durations.
pub mod serde_str_vec {
    use super::{Duration, format};
    use serde::{Deserialize, Deserializer, Serializer, ser::SerializeSeq};

    /// Serializes each element as [`format()`](super::format).
    pub fn serialize<S: Serializer>(v: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for d in v {
            seq.serialize_element(&format(*d))?;
        }
        seq.end()
    }

    /// Accepts strings or numbers of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct W(#[serde(with = "super::serde_str")] Duration);
        Ok(Vec::<W>::deserialize(d)?.into_iter().map(|w| w.0).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("15min"), Ok(Duration::from_secs(900)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("30"), Ok(Duration::from_secs(30)));
        assert!(parse("").is_err());
        assert!(parse("fast").is_err());
        assert!(parse("1 fortnight").is_err());
        assert!(parse("-1s").is_err());
    }

    #[test]
    fn format_round_trips() {
        for ms in [
            0, 1, 100, 999, 1000, 1500, 60_000, 90_000, 3_600_000, 5_400_000,
        ] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse(&format(d)), Ok(d), "{ms}");
        }
    }
}

/// Like [`serde_str`] for an optional duration (`null` or absent is `None`).
pub mod serde_opt {
    use super::{Duration, format};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes `Some` as [`format()`](super::format), `None` as null.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format(*d)),
            None => s.serialize_none(),
        }
    }

    /// Accepts null, a string or a number of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct W(#[serde(with = "super::serde_str")] Duration);
        Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
    }
}
