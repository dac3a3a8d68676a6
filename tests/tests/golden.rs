//! Golden files: the exact text `menwei check` prints for bad policies. Each directory under
//! tests/golden/ is one policy set with its `expected.txt`. UPDATE_GOLDEN=1 rewrites them.

use menwei_tests::*;
use std::path::Path;

fn check(dir: &Path, name: &str) -> (Option<i32>, String) {
    let out = std::process::Command::new(bin("menwei"))
        .args(["check", "--offline", name])
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn bad_policies_print_exact_diagnostics() {
    let root = repo().join("tests/golden");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 10, "at least 10 golden cases");
    let mut failures = Vec::new();
    for case in cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let (code, got) = check(&root, &name);
        let expected_path = case.join("expected.txt");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&expected_path, &got).unwrap();
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if code != Some(1) || got != expected {
            failures.push(format!(
                "== {name} (exit {code:?})\n-- expected\n{expected}-- got\n{got}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn shipped_policies_are_valid() {
    let repo = repo();
    // The shipped set names development certificates; make them if needed (as the demo does).
    let status = std::process::Command::new(repo.join("certs/make-dev-certs.sh"))
        .status()
        .unwrap();
    assert!(status.success());
    let (code, out) = check(&repo, "policies");
    assert_eq!(code, Some(0), "{out}");
    for entry in std::fs::read_dir(repo.join("policies/examples")).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            let out = std::process::Command::new(bin("menwei"))
                .args(["check", "--offline"])
                .arg(&p)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                p.display(),
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
}

#[test]
fn schema_is_json_and_covers_every_section() {
    let out = std::process::Command::new(bin("menwei"))
        .arg("schema")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "server",
        "listener",
        "certificate",
        "trust",
        "limits",
        "access_log",
        "upstream",
        "route",
    ] {
        assert!(v["properties"].get(key).is_some(), "schema lacks {key}");
    }
    assert_eq!(v["additionalProperties"], false);
}

#[test]
fn explain_names_the_route_and_why() {
    let repo = repo();
    let out = std::process::Command::new(bin("menwei"))
        .args([
            "explain",
            "--policies",
            "policies",
            "GET",
            "http://localhost/echo/../citizens/1",
        ])
        .current_dir(&repo)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("normalises to /citizens/1"), "{text}");
    assert!(text.contains("result:    route `citizens`"), "{text}");
    let out = std::process::Command::new(bin("menwei"))
        .args(["explain", "--policies", "policies", "DELETE", "/citizens/1"])
        .current_dir(&repo)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("405"));
}
