//! Harness for the end-to-end tests: spawns the real `menwei` and `menwei-demo` binaries on
//! ephemeral ports, speaks raw HTTP/1.1 over TCP (so that malformed requests can be sent as
//! they are), and reads the admin endpoints. Every wait is a bounded loop.

pub mod sso;

/// Standard base64 with padding.
pub fn base64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// URL-safe base64 without padding (JWT parts).
pub fn base64url(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Directory of the workspace's built binaries (the test executable lives in `<dir>/deps`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    deps.parent().unwrap().to_path_buf()
}

pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} not built: run `cargo build --workspace --bins` first (tests/run.sh does)",
        p.display()
    );
    p
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The lowest port of the kernel's ephemeral range, when it can be read.
fn ephemeral_low() -> Option<u16> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
}

/// A free port on 127.0.0.1 (bound then released), never one this test process handed out
/// before: two calls in a row (a gateway's public and admin ports) or two tests running in
/// parallel could otherwise get the same just-released port and one listener would fail to bind.
///
/// Ports come from below the kernel's ephemeral range (`ip_local_port_range`), where the kernel
/// never places a socket by itself. A port from inside that range could be taken, between this
/// call and the server's bind, by any client connection or port-0 server of another test: it
/// happened to a gateway whose port its OpenID provider had to be told first, seconds before it
/// started. Each candidate is checked free by binding it.
pub fn free_port() -> u16 {
    use std::collections::HashSet;
    use std::sync::Mutex;
    /// Ports handed out, and the state of the generator picking candidates.
    static GIVEN: Mutex<Option<(HashSet<u16>, u64)>> = Mutex::new(None);
    let mut state = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let (given, x) = state.get_or_insert_with(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        (
            HashSet::new(),
            nanos ^ (u64::from(std::process::id()) << 32) | 1,
        )
    });
    const LOWEST: u16 = 10_000;
    let ephemeral = ephemeral_low().unwrap_or(32_768);
    if ephemeral > LOWEST + 2_000 {
        for _ in 0..1000 {
            // xorshift64
            *x ^= *x << 13;
            *x ^= *x >> 7;
            *x ^= *x << 17;
            let port = LOWEST + (*x % u64::from(ephemeral - LOWEST)) as u16;
            if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
                given.insert(port);
                return port;
            }
        }
    }
    for _ in 0..1000 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if given.insert(port) {
            return port;
        }
    }
    panic!("no fresh port in 1000 tries");
}

/// A demo backend process.
pub struct Backend {
    child: Child,
    pub addr: SocketAddr,
    pub name: String,
}

impl Backend {
    pub fn echo(name: &str) -> Backend {
        Self::spawn(&["--echo", "127.0.0.1:0", "--name", name], name)
    }

    pub fn citizens() -> Backend {
        Self::spawn(&["--citizens", "127.0.0.1:0"], "citizens")
    }

    /// An echo backend on a given address (to bring a "dead" backend back).
    pub fn echo_at(name: &str, addr: SocketAddr) -> Backend {
        Self::spawn(&["--echo", &addr.to_string(), "--name", name], name)
    }

    fn spawn(args: &[&str], name: &str) -> Backend {
        let mut child = Command::new(bin("menwei-demo"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .split_whitespace()
            .nth(2)
            .unwrap_or_else(|| panic!("no LISTENING line: {line:?}"))
            .parse()
            .unwrap();
        Backend {
            child,
            addr,
            name: name.to_string(),
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running gateway with its own policy directory.
pub struct Gateway {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
}

/// The `[server]` + `[[listener]]` part of a test policy (ports filled in by `Gateway::start`).
pub fn gateway_toml(extra: &str) -> String {
    format!(
        "[server]\nadmin = \"127.0.0.1:{{admin}}\"\ngrace_period = \"0s\"\n\n[[listener]]\nname = \"public\"\naddr = \"127.0.0.1:{{port}}\"\n\n{extra}\n"
    )
}

impl Gateway {
    /// Writes `files` into a fresh policy directory and starts menwei on it. `{port}` and `{admin}`
    /// in file contents are replaced by the chosen ports.
    pub fn start(files: &[(&str, &str)]) -> Gateway {
        // A port picked free here can be taken by another test's server (bound to port 0)
        // before menwei binds it; menwei then exits, and fresh ports are tried.
        for _ in 0..3 {
            let mut gw = Self::prepare(files, free_port(), free_port());
            match gw.try_spawn() {
                Ok(()) => return gw,
                Err(log) if log.contains("already in use") => continue,
                Err(log) => panic!("menwei did not start:\n{log}"),
            }
        }
        panic!("menwei found no free ports in three tries");
    }

    /// As `start`, on ports chosen beforehand (an OpenID provider must know them first).
    pub fn start_at(files: &[(&str, &str)], port: u16, admin: u16) -> Gateway {
        let mut gw = Self::prepare(files, port, admin);
        gw.spawn();
        gw
    }

    /// The policy directory with `{port}` and `{admin}` filled in; nothing started yet.
    fn prepare(files: &[(&str, &str)], port: u16, admin: u16) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        for (name, text) in files {
            let text = text
                .replace("{port}", &port.to_string())
                .replace("{admin}", &admin.to_string());
            std::fs::write(dir.path().join("policies").join(name), text).unwrap();
        }
        Gateway {
            child: None,
            dir,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            admin: SocketAddr::from(([127, 0, 0, 1], admin)),
        }
    }

    fn spawn(&mut self) {
        if let Err(log) = self.try_spawn() {
            panic!("menwei did not start:\n{log}");
        }
    }

    /// Starts menwei and waits until its own admin listener answers (not merely something on
    /// that port: `/policy` must carry a policy version); `Err` with its log if it exits first
    /// or is not ready in 20 s.
    fn try_spawn(&mut self) -> Result<(), String> {
        let out = std::fs::File::create(self.dir.path().join("access.log")).unwrap();
        let err = std::fs::File::create(self.dir.path().join("menwei.log")).unwrap();
        let child = Command::new(bin("menwei"))
            .args(["run", "--policies"])
            .arg(self.policies())
            .env("RUST_LOG", "info")
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let mut exited = None;
        let ready = wait_until(Duration::from_secs(20), || {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                exited = Some(status);
                return true;
            }
            get(self.admin, "/readyz").status == 200
                && serde_json::from_slice::<serde_json::Value>(&get(self.admin, "/policy").body)
                    .is_ok_and(|p| p["version"].is_u64())
        });
        match (ready, exited) {
            (_, Some(status)) => Err(format!("menwei exited with {status}:\n{}", self.log())),
            (false, None) => Err(format!("menwei not ready:\n{}", self.log())),
            (true, None) => Ok(()),
        }
    }

    /// Kills the process (no graceful shutdown) and starts it again on the same ports and policy.
    pub fn restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.spawn();
    }

    /// The policy directory.
    pub fn policies(&self) -> PathBuf {
        self.dir.path().join("policies")
    }

    /// The operational log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("menwei.log")).unwrap_or_default()
    }

    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    pub fn write(&self, name: &str, text: &str) {
        let text = text
            .replace("{port}", &self.addr.port().to_string())
            .replace("{admin}", &self.admin.port().to_string());
        // Write then rename, as editors do, so the watcher never sees half a file.
        let tmp = self.policies().join(format!(".{name}.swp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.policies().join(name)).unwrap();
    }

    /// Sends `signal` (`HUP`, `TERM`, ...) to the running menwei.
    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().unwrap().id();
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    pub fn sighup(&self) {
        self.signal("HUP");
    }

    /// Asks menwei to stop (SIGTERM, as systemd and Kubernetes do) and waits up to 20 s for it
    /// to exit; its exit status, or `None` if it was still running.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_ref()?;
        self.signal("TERM");
        let c = self.child.as_mut()?;
        let mut status = None;
        wait_until(Duration::from_secs(20), || {
            status = c.try_wait().ok().flatten();
            status.is_some()
        });
        status
    }

    /// `/policy` as JSON.
    pub fn policy(&self) -> serde_json::Value {
        serde_json::from_slice(&get(self.admin, "/policy").body).unwrap()
    }

    pub fn version(&self) -> u64 {
        self.policy()["version"].as_u64().unwrap()
    }

    pub fn metrics(&self) -> String {
        String::from_utf8(get(self.admin, "/metrics").body).unwrap()
    }

    /// Waits for the served version to reach `v`.
    pub fn wait_version(&self, v: u64) -> bool {
        wait_until(Duration::from_secs(10), || self.version() >= v)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls `f` every 50 ms until it is true or `limit` passes.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A parsed HTTP/1.1 response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// For echo responses: the headers the backend received, as (lower-case name, value).
    pub fn seen_headers(&self) -> Vec<(String, String)> {
        self.json()["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_str().unwrap().to_string(),
                    p[1].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    pub fn seen(&self, name: &str) -> Option<String> {
        self.seen_headers()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// Sends raw bytes, reads until the server closes (or the response is complete), parses.
pub fn raw(addr: SocketAddr, request: &[u8]) -> Resp {
    try_raw(addr, request).unwrap_or_else(|e| panic!("request to {addr} failed: {e}"))
}

pub fn try_raw(addr: SocketAddr, request: &[u8]) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    // A server may answer (413, 400) and close before the whole request is written: read anyway.
    let write_result = s.write_all(request);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if let Some(r) = parse(&buf) {
                    return Ok(r);
                }
            }
            Err(e) if buf.is_empty() => return Err(write_result.err().unwrap_or(e)),
            Err(_) => break,
        }
    }
    parse(&buf).ok_or_else(|| {
        std::io::Error::other(format!(
            "incomplete response: {:?}",
            String::from_utf8_lossy(&buf)
        ))
    })
}

fn parse(buf: &[u8]) -> Option<Resp> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &buf[end + 4..];
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let body = if let Some(len) = get("content-length").and_then(|l| l.parse::<usize>().ok()) {
        if rest.len() < len {
            return None;
        }
        rest[..len].to_vec()
    } else if get("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if status == 101 || status == 204 || status == 304 {
        Vec::new()
    } else {
        return None;
    };
    Some(Resp {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(
            std::str::from_utf8(&b[..line_end])
                .ok()?
                .split(';')
                .next()?
                .trim(),
            16,
        )
        .ok()?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if b.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// `GET path` with `Connection: close` and the given extra header lines.
pub fn get_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Resp {
    request(addr, "GET", path, headers, None)
}

pub fn get(addr: SocketAddr, path: &str) -> Resp {
    match try_request(addr, "GET", path, &[], None) {
        Ok(r) => r,
        Err(_) => Resp {
            status: 0,
            headers: Vec::new(),
            body: Vec::new(),
        },
    }
}

pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Resp {
    try_request(addr, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<Resp> {
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("Connection: close\r\n\r\n");
    let mut bytes = req.into_bytes();
    if let Some(b) = body {
        bytes.extend_from_slice(b);
    }
    try_raw(addr, &bytes)
}

/// A real `redis-server` on an ephemeral port (no persistence), stopped on drop. Its working
/// directory is a temporary one: a replica's full sync writes an RDB file there, never into the
/// source tree.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    pub fn start() -> Redis {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Redis {
        Self::start_with(port, &[])
    }

    /// A replica of the Redis on `master` (for Sentinel tests).
    pub fn replica_of(master: u16) -> Redis {
        Self::start_with(
            free_port(),
            &["--replicaof", "127.0.0.1", &master.to_string()],
        )
    }

    /// A Redis Sentinel watching the master on `master` as `mymaster` (quorum 1, down after 1 s),
    /// its config in `dir` (a sentinel rewrites its own config file).
    pub fn sentinel(master: u16, dir: &std::path::Path) -> Redis {
        let port = free_port();
        let conf = dir.join(format!("sentinel-{port}.conf"));
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {d}\nsentinel monitor mymaster 127.0.0.1 {master} 1\nsentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 4000\nsentinel parallel-syncs mymaster 1\n",
                d = dir.display()
            ),
        )
        .unwrap();
        Self::spawn(
            port,
            &[conf.as_os_str(), "--sentinel".as_ref()],
            "redis sentinel",
        )
    }

    /// One inline command; the raw reply (RESP) as text.
    pub fn command(&self, cmd: &str) -> String {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return String::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let _ = s.write_all(format!("{cmd}\r\n").as_bytes());
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    fn start_with(port: u16, extra: &[&str]) -> Redis {
        let port_s = port.to_string();
        let mut args = vec![
            "--port",
            port_s.as_str(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ];
        args.extend_from_slice(extra);
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        Self::spawn(port, &args, "redis-server")
    }

    /// Starts `redis-server ARGS` and waits for it to answer PING on `port`.
    fn spawn(port: u16, args: &[&std::ffi::OsStr], what: &str) -> Redis {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args(args)
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server not installed (tests/run.sh installs it)");
        let r = Redis {
            child: Some(child),
            port,
            _dir: dir,
        };
        assert!(
            wait_until(Duration::from_secs(10), || r.ping()),
            "{what} did not start on {port}"
        );
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod port_tests {
    #[test]
    fn free_ports_are_fresh_and_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..50).map(|_| super::free_port()).collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len());
        if let Some(low) = super::ephemeral_low().filter(|low| *low > 12_000) {
            assert!(ports.iter().all(|p| (10_000..low).contains(p)), "{ports:?}");
        }
    }
}
