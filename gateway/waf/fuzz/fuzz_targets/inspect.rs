#![no_main]
//! Arbitrary bytes as request target, header values (the content type and `Connection` among
//! them) and body under each body parser: a verdict, never a panic; and the head/body split
//! scores like the whole.
use libfuzzer_sys::fuzz_target;
use menwei_waf::{Config, Request};

fuzz_target!(|data: &[u8]| {
    let Ok(engine) = menwei_waf::shared() else { return };
    let cfg = Config::default();
    let cut = data.first().map_or(0, |b| *b as usize % (data.len().max(1)));
    let (head, body) = data.split_at(cut);
    for ctype in [
        &b"application/x-www-form-urlencoded"[..],
        b"application/json",
        b"multipart/form-data; boundary=x",
        b"text/xml",
        head,
    ] {
        let req = Request {
            method: "POST",
            uri: head,
            headers: vec![
                ("Host", b"h"),
                ("Content-Type", ctype),
                ("Cookie", head),
                ("User-Agent", head),
                ("Connection", head),
            ],
            body: Some(body),
            body_truncated: false,
        };
        let whole = engine.inspect(&cfg, &req);
        let split = engine.inspect_body(&cfg, &req, engine.inspect_head(&cfg, &req));
        assert_eq!(whole.score, split.score);
    }
    let _ = menwei_waf::normalize::normalize(data, true);
});
