//! Properties of the two parsers of untrusted input (the fuzz targets in fuzz/ explore further).

use proptest::prelude::*;

fn path_strategy() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "/",
        "//",
        ".",
        "..",
        "%2e",
        "%2E",
        "%2f",
        "%5c",
        "%00",
        "%41",
        "%7e",
        "%e4%bd%a0",
        "a",
        "admin",
        ";",
        "..;",
        "\\",
        " ",
        "%",
        "%g1",
        "~",
        "你",
        "?",
        "#",
    ]);
    prop::collection::vec(atoms, 0..12).prop_map(|v| format!("/{}", v.concat()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn normalised_paths_are_fixed_points(p in path_strategy()) {
        if let Ok(n) = menwei_policy::path::normalize(&p) {
            prop_assert_eq!(menwei_policy::path::normalize(&n), Ok(n.clone()));
            prop_assert!(n.starts_with('/'));
            prop_assert!(!n.contains("//") && !n.contains("/../") && !n.contains("/./") && !n.ends_with("/.."));
            prop_assert!(!n.to_ascii_lowercase().contains("%2f") && !n.contains('\\'));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_normaliser(s in ".{0,64}") {
        let _ = menwei_policy::path::normalize(&s);
    }
}

fn toml_strategy() -> impl Strategy<Value = String> {
    let lines = prop::sample::select(vec![
        "[[listener]]\n",
        "name = \"p\"\n",
        "addr = \"127.0.0.1:1\"\n",
        "[[route]]\n",
        "prefix = \"/\"\n",
        "upstream = \"u\"\n",
        "[[upstream]]\n",
        "name = \"u\"\n",
        "backends = [\"127.0.0.1:2\"]\n",
        "[trust]\n",
        "proxies = [\"10.0.0.0/8\"]\n",
        "regex = \"(\"\n",
        "balance = \"x\"\n",
        "[server]\n",
        "threads = -1\n",
        "retries = 300\n",
        "= \n",
        "[\n",
        "\"\n",
        "path = \"/a/../b\"\n",
        "host = \"*.\"\n",
        "tls = true\n",
        "[[certificate]]\n",
        "cert = \"/nonexistent\"\n",
        "key = \"\"\n",
        "名字 = 1\n",
        "\u{0}\n",
    ]);
    prop::collection::vec(lines, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn the_loader_answers_every_input_with_a_snapshot_or_located_diagnostics(text in toml_strategy()) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.toml"), &text).unwrap();
        match menwei_policy::load(dir.path()) {
            Ok(s) => prop_assert!(!s.router.routes().is_empty()),
            Err(d) => {
                prop_assert!(!d.is_empty());
                for diag in &d.0 {
                    prop_assert!(diag.line >= 1 && diag.col >= 1);
                    prop_assert!(diag.to_string().contains("error[MW-POL-"));
                }
            }
        }
    }
}
