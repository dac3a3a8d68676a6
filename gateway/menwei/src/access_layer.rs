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
    let _ = write!(
        out,
        "\"{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z\"",
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        d.subsec_micros()
    );
}

struct JsonFields<'a>(&'a mut String);

impl JsonFields<'_> {
    fn key(&mut self, f: &Field) {
        self.0.push(',');
        push_json_str(self.0, f.name());
        self.0.push(':');
    }
}

impl Visit for JsonFields<'_> {
    fn record_str(&mut self, f: &Field, v: &str) {
        self.key(f);
        push_json_str(self.0, v);
    }
    fn record_u64(&mut self, f: &Field, v: u64) {
        self.key(f);
        let _ = write!(self.0, "{v}");
    }
    fn record_i64(&mut self, f: &Field, v: i64) {
        self.key(f);
        let _ = write!(self.0, "{v}");
    }
    fn record_f64(&mut self, f: &Field, v: f64) {
        self.key(f);
        if v.is_finite() {
            let _ = write!(self.0, "{v:.3}");
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
    fn escaping_gives_valid_json() {
        let mut s = String::from("{\"a\":");
        push_json_str(&mut s, "引号\" \\ \n \u{1} 路径");
        s.push('}');
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["a"], "引号\" \\ \n \u{1} 路径");
    }
}
