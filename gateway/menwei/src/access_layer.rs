//! The access log writer: a tracing `Layer` for events of target `menwei::access` that writes one
//! JSON object per event, straight from the event's fields. It replaces tracing-subscriber's JSON
//! formatter for this one target because that formatter cost ~28k instructions per request (a
//! fifth of the gateway's CPU; measured with callgrind, docs/benchmarks.md): it formats the
//! timestamp through `fmt`, and every `%`-field through `Debug` into a temporary string.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};

/// The target the core crate logs access lines on.
pub const TARGET: &str = "menwei::access";

pub struct AccessLayer<W> {
    writer: W,
}

impl<W> AccessLayer<W> {
    pub fn new(writer: W) -> Self {
        Self { writer }
    }
}

/// Appends `s` as a JSON string (with quotes).
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// RFC 3339 UTC timestamp with microseconds (civil-from-days, H. Hinnant's algorithm).
pub fn push_timestamp(out: &mut String, t: SystemTime) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    out.push('"');
    push_digits(out, year.max(0) as u64, 4);
    out.push('-');
    push_digits(out, month as u64, 2);
    out.push('-');
    push_digits(out, day as u64, 2);
    out.push('T');
    push_digits(out, (sod / 3600) as u64, 2);
    out.push(':');
    push_digits(out, (sod / 60 % 60) as u64, 2);
    out.push(':');
    push_digits(out, (sod % 60) as u64, 2);
    out.push('.');
    push_digits(out, u64::from(d.subsec_micros()), 6);
    out.push_str("Z\"");
}

/// Appends `v` in decimal, left-padded with zeros to at least `width` digits (at most 20). The
/// line is built for every request: `write!` with its padding machinery cost ~2,500
/// instructions per line for the timestamp and integers alone (callgrind).
fn push_digits(out: &mut String, mut v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let start = i.min(buf.len().saturating_sub(width));
    for &b in &buf[start..] {
        out.push(char::from(b));
    }
}

/// Appends a duration in milliseconds with three decimals (whole microseconds), as `{:.3}`
/// writes it but for the last digit of a value exactly halfway between two microseconds (`{:.3}`
/// rounds the float's exact decimal value, this its product by 1000); a negative or absurd value
/// falls back to `{:.3}`.
fn push_millis(out: &mut String, ms: f64) {
    let us = (ms * 1000.0).round();
    if (0.0..1e15).contains(&us) {
        let us = us as u64;
        push_digits(out, us / 1000, 1);
        out.push('.');
        push_digits(out, us % 1000, 3);
    } else {
        let _ = write!(out, "{ms:.3}");
    }
}

struct JsonFields<'a>(&'a mut String);

impl JsonFields<'_> {
    fn key(&mut self, f: &Field) {
        // Field names are Rust identifiers (`request_id`, `duration_ms`): nothing to escape.
        self.0.push_str(",\"");
        self.0.push_str(f.name());
        self.0.push_str("\":");
    }
}

impl Visit for JsonFields<'_> {
    fn record_str(&mut self, f: &Field, v: &str) {
        self.key(f);
        push_json_str(self.0, v);
    }
    fn record_u64(&mut self, f: &Field, v: u64) {
        self.key(f);
        push_digits(self.0, v, 1);
    }
    fn record_i64(&mut self, f: &Field, v: i64) {
        self.key(f);
        let _ = write!(self.0, "{v}");
    }
    fn record_f64(&mut self, f: &Field, v: f64) {
        self.key(f);
        if v.is_finite() {
            push_millis(self.0, v);
        } else {
            self.0.push_str("null");
        }
    }
    fn record_bool(&mut self, f: &Field, v: bool) {
        self.key(f);
        self.0.push_str(if v { "true" } else { "false" });
    }
    fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
        let mut tmp = String::new();
        let _ = write!(tmp, "{v:?}");
        self.record_str(f, &tmp);
    }
}

thread_local! {
    static LINE: RefCell<String> = RefCell::new(String::with_capacity(512));
}

impl<S, W> Layer<S> for AccessLayer<W>
where
    S: Subscriber,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        LINE.with(|line| {
            let Ok(mut line) = line.try_borrow_mut() else {
                return;
            };
            line.clear();
            line.push_str("{\"timestamp\":");
            push_timestamp(&mut line, SystemTime::now());
            event.record(&mut JsonFields(&mut line));
            line.push_str("}\n");
            let _ = self.writer.make_writer().write_all(line.as_bytes());
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps() {
        let mut s = String::new();
        push_timestamp(
            &mut s,
            UNIX_EPOCH + Duration::from_micros(1_795_312_751_123_456),
        );
        assert_eq!(s, "\"2026-11-22T01:59:11.123456Z\"");
        s.clear();
        push_timestamp(&mut s, UNIX_EPOCH + Duration::from_secs(951_782_400)); // leap day 2000
        assert_eq!(s, "\"2000-02-29T00:00:00.000000Z\"");
    }

    #[test]
    fn digits_as_format_writes_them() {
        for v in [0u64, 7, 42, 999, 1000, 65_535, 123_456, u64::MAX] {
            for width in [1, 2, 4, 6] {
                let mut s = String::new();
                push_digits(&mut s, v, width);
                assert_eq!(s, format!("{v:0width$}"));
            }
        }
    }

    #[test]
    fn milliseconds_as_format_writes_them() {
        let mut x = 0.000_7_f64;
        for _ in 0..2000 {
            let mut s = String::new();
            push_millis(&mut s, x);
            let f = format!("{x:.3}");
            // Equal, or one microsecond apart when the value sits on a rounding tie.
            let (a, b): (f64, f64) = (s.parse().unwrap(), f.parse().unwrap());
            assert!((a - b).abs() < 0.0015, "{x}: {s} vs {f}");
            assert_eq!(s.split_once('.').unwrap().1.len(), 3, "{s}");
            x = x * 1.013 + 0.000_31;
        }
        for (v, want) in [
            (0.0, "0.000"),
            (1.5, "1.500"),
            (0.123_4, "0.123"),
            (12.000_6, "12.001"),
        ] {
            let mut s = String::new();
            push_millis(&mut s, v);
            assert_eq!(s, want);
        }
        let mut s = String::new();
        push_millis(&mut s, -1.0);
        assert_eq!(s, "-1.000");
    }

    #[test]
    fn escaping_gives_valid_json() {
        let mut s = String::from("{\"a\":");
        push_json_str(&mut s, "引号\" \\ \n \u{1} 路径");
        s.push('}');
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["a"], "引号\" \\ \n \u{1} 路径");
    }
}
