//! Newtypes for policy values that have a shape: durations, sizes, CIDRs, header names, regexes,
//! host patterns. Each parses from a string at load time so that a bad value is reported with the
//! exact location in the file, and the compiled snapshot never holds an unchecked string.

use schemars::JsonSchema;
use serde::{de, Deserialize, Deserializer};
use std::fmt;
use std::time::Duration as StdDuration;

/// A duration written as `500ms`, `2s`, `5m`, `1h` (one number, one unit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Duration(pub StdDuration);

impl Duration {
    /// Parses `<integer><unit>` with unit one of `ms`, `s`, `m`, `h`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("`{s}` is not a duration: expected a whole number then a unit, e.g. `2s` or `500ms`"))?;
        let d = match unit {
            "ms" => StdDuration::from_millis(n),
            "s" => StdDuration::from_secs(n),
            "m" => StdDuration::from_secs(n.saturating_mul(60)),
            "h" => StdDuration::from_secs(n.saturating_mul(3600)),
            _ => {
                return Err(format!(
                    "`{s}` has unit `{unit}`; allowed units: ms, s, m, h"
                ))
            }
        };
        Ok(Self(d))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0.as_millis())
    }
}

/// A byte size written as a number of bytes or with a unit: `16KiB`, `10MiB`, `1GiB`, `512B`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `<integer>[B|KiB|MiB|GiB]`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num.parse().map_err(|_| {
            format!("`{s}` is not a size: expected e.g. `16KiB`, `10MiB` or `512B`")
        })?;
        let mult: u64 = match unit {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            _ => {
                return Err(format!(
                    "`{s}` has unit `{unit}`; allowed units: B, KiB, MiB, GiB"
                ))
            }
        };
        n.checked_mul(mult)
            .map(Self)
            .ok_or_else(|| format!("`{s}` is too large"))
    }
}

/// An IPv4 or IPv6 network in CIDR notation (`10.0.0.0/8`, `::1/128`); a bare address means /32 or /128.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr(pub ipnet::IpNet);

impl Cidr {
    /// Parses a CIDR or a single address.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(net) = s.parse::<ipnet::IpNet>() {
            if net.trunc() != net {
                return Err(format!(
                    "`{s}` has host bits set; the network is `{}`",
                    net.trunc()
                ));
            }
            return Ok(Self(net));
        }
        if let Ok(ip) = s.parse::<std::net::IpAddr>() {
            return Ok(Self(ipnet::IpNet::from(ip)));
        }
        Err(format!(
            "`{s}` is not a CIDR such as `10.0.0.0/8` or `::1/128`, nor an IP address"
        ))
    }

    /// Whether `ip` lies in this network (IPv4-mapped IPv6 addresses are treated as IPv4).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.0.contains(&ip)
    }
}

/// A valid HTTP header name, kept lower-case.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HeaderName(pub http::HeaderName);

impl HeaderName {
    /// Parses a header name (RFC 9110 token).
    pub fn parse(s: &str) -> Result<Self, String> {
        http::HeaderName::from_bytes(s.trim().as_bytes())
            .map(Self)
            .map_err(|_| {
                format!("`{s}` is not a valid HTTP header name (letters, digits and `-` only)")
            })
    }
}

/// A regular expression (Rust `regex` syntax: linear time, no backreferences).
#[derive(Clone, Debug)]
pub struct Regex(pub regex::Regex);

impl Regex {
    /// Compiles the pattern with a size limit so a policy cannot ask for a huge automaton.
    pub fn parse(s: &str) -> Result<Self, String> {
        regex::RegexBuilder::new(s)
            .size_limit(1 << 20)
            .build()
            .map(Self)
            .map_err(|e| {
                format!(
                    "`{s}` is not a valid regular expression: {}",
                    last_line(&e.to_string())
                )
            })
    }
}

fn last_line(s: &str) -> String {
    // regex errors are multi-line with a caret diagram; keep the last line, which names the problem.
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_string()
}

/// How many leading bits of an IPv6 client address make one client (1 to 128).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv6Prefix(pub u8);

impl<'de> Deserialize<'de> for Ipv6Prefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        u8::try_from(n)
            .ok()
            .filter(|n| (1..=128).contains(n))
            .map(Ipv6Prefix)
            .ok_or_else(|| {
                de::Error::custom(format!(
                    "{n} is not an IPv6 prefix length: use 1 to 128 (64 is one household or \
                     subnet; 128 counts every address apart)"
                ))
            })
    }
}

impl JsonSchema for Ipv6Prefix {
    fn schema_name() -> String {
        "Ipv6Prefix".to_string()
    }
    fn json_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        let mut s = schemars::schema::SchemaObject {
            instance_type: Some(schemars::schema::InstanceType::Integer.into()),
            ..Default::default()
        };
        s.metadata().description =
            Some("An IPv6 prefix length, 1 to 128: the bits that make one client".to_string());
        s.number().minimum = Some(1.0);
        s.number().maximum = Some(128.0);
        s.into()
    }
}

macro_rules! string_newtype_serde {
    ($t:ty, $desc:literal, $pattern:literal) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                <$t>::parse(&s).map_err(de::Error::custom)
            }
        }
        impl JsonSchema for $t {
            fn schema_name() -> String {
                stringify!($t).to_string()
            }
            fn json_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
                let mut s = schemars::schema::SchemaObject {
                    instance_type: Some(schemars::schema::InstanceType::String.into()),
                    ..Default::default()
                };
                s.metadata().description = Some($desc.to_string());
                if !$pattern.is_empty() {
                    s.string().pattern = Some($pattern.to_string());
                }
                s.into()
            }
        }
    };
}

string_newtype_serde!(
    Duration,
    "A duration: whole number + unit (ms, s, m, h), e.g. `2s`",
    "^[0-9]+(ms|s|m|h)$"
);
string_newtype_serde!(
    ByteSize,
    "A size in bytes, optionally with unit B, KiB, MiB, GiB, e.g. `16KiB`",
    "^[0-9]+(B|KiB|MiB|GiB)?$"
);
string_newtype_serde!(
    Cidr,
    "An IP network in CIDR notation (`10.0.0.0/8`) or a single address",
    ""
);
string_newtype_serde!(
    HeaderName,
    "An HTTP header name",
    "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"
);
string_newtype_serde!(Regex, "A regular expression (Rust regex syntax)", "");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(Duration::parse("2s").unwrap().0, StdDuration::from_secs(2));
        assert_eq!(
            Duration::parse("150ms").unwrap().0,
            StdDuration::from_millis(150)
        );
        assert_eq!(
            Duration::parse("3m").unwrap().0,
            StdDuration::from_secs(180)
        );
        assert!(Duration::parse("2").unwrap_err().contains("allowed units"));
        assert!(Duration::parse("s").is_err());
        assert!(Duration::parse("1.5s").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(ByteSize::parse("16KiB").unwrap().0, 16384);
        assert_eq!(ByteSize::parse("100").unwrap().0, 100);
        assert!(ByteSize::parse("10MB").is_err());
        assert!(ByteSize::parse("99999999999999GiB").is_err());
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.1/8").unwrap_err().contains("host bits"));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert_eq!(Cidr::parse("127.0.0.1").unwrap().0.prefix_len(), 32);
    }

    #[test]
    fn regexes() {
        assert!(Regex::parse("^/api/v[0-9]+/").is_ok());
        assert!(Regex::parse("^/api/(").is_err());
    }
}
