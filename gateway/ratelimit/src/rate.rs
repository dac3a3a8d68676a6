//! `20/s`, `600/m`, `10000/h`, `100000/d`.

use std::time::Duration;

/// A rate: `count` requests per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    pub count: u64,
    pub per: Duration,
}

impl std::fmt::Display for Rate {
    /// As written in policies: `20/s`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "m",
            3600 => "h",
            _ => "d",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

impl Rate {
    /// Parses `<count>/<unit>` with unit `s`, `m`, `h` or `d`; the count is at least 1.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (n, unit) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not a rate: write it as `20/s` (per s, m, h or d)"))?;
        let count: u64 = n
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` does not start with a whole number of requests"))?;
        if count == 0 {
            return Err(format!(
                "`{s}` admits nothing: the rate must be at least 1 per unit"
            ));
        }
        let per = match unit.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            "d" => Duration::from_secs(86_400),
            u => return Err(format!("`{s}` has unit `{u}`; allowed: s, m, h, d")),
        };
        Ok(Self { count, per })
    }

    /// Nanoseconds between two admissions at the steady rate (at least 1), rounded up: a
    /// limit never admits faster than it says (1e9 / 61 rounded down ran 0.6 ns per request
    /// fast, one admission too many over a long enough run).
    pub fn emission_interval_ns(&self) -> u64 {
        self.per
            .as_nanos()
            .div_ceil(u128::from(self.count))
            .clamp(1, u128::from(u64::MAX)) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(
            Rate::parse("20/s").unwrap().emission_interval_ns(),
            50_000_000
        );
        assert_eq!(
            Rate::parse("600/m").unwrap().emission_interval_ns(),
            100_000_000
        );
        // Rounded up, never faster than the rate.
        assert_eq!(
            Rate::parse("61/s").unwrap().emission_interval_ns(),
            16_393_443
        );
        assert_eq!(
            Rate::parse(" 1/d ").unwrap().per,
            Duration::from_secs(86_400)
        );
        assert!(Rate::parse("0/s").unwrap_err().contains("at least 1"));
        assert!(Rate::parse("-5/s").is_err());
        assert!(Rate::parse("5/w").unwrap_err().contains("allowed"));
        assert!(Rate::parse("5").is_err());
    }
}
