#![no_main]
//! Arbitrary bytes as request target, header values (the content type and `Connection` among
//! them) and body under each body parser: a verdict, never a panic; the head/body split scores
//! like the whole; and header names as a client writes them score like the same names lowered.
use libfuzzer_sys::fuzz_target;
use menwei_waf::{Config, Request};

fuzz_target!(|data: &[u8]| {
    let Ok(engine) = menwei_waf::shared() else {
        return;
    };
    let cfg = Config::default();
    let cut = data
        .first()
        .map_or(0, |b| *b as usize % (data.len().max(1)));
    let (head, body) = data.split_at(cut);
    for ctype in [
        &b"application/x-www-form-urlencoded"[..],
        b"application/json",
        b"multipart/form-data; boundary=x",
        b"text/xml",
        head,
    ] {
        // As an HTTP/1 client writes the names (`names_lower: false`), and as the gateway hands
        // them over, lower case and said so: the two must score alike.
        let mut scores = [0; 2];
        for (i, lower) in [false, true].into_iter().enumerate() {
            let name = |n: &'static str, l: &'static str| if lower { l } else { n };
            let req = Request {
                method: "POST",
                uri: head,
                headers: vec![
                    (name("Host", "host"), b"h"),
                    (name("Content-Type", "content-type"), ctype),
                    (name("Cookie", "cookie"), head),
                    (name("User-Agent", "user-agent"), head),
                    (name("Connection", "connection"), head),
                ],
                names_lower: lower,
                body: Some(body),
                body_truncated: false,
            };
            let whole = engine.inspect(&cfg, &req);
            let split = engine.inspect_body(&cfg, &req, engine.inspect_head(&cfg, &req));
            assert_eq!(whole.score, split.score);
            scores[i] = whole.score;
        }
        assert_eq!(scores[0], scores[1]);
    }
    let _ = menwei_waf::normalize::normalize(data, true);
});
