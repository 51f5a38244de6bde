//! `herd serve` as users run it, checked by the official `openai` Python client
//! (scripts/test-openai-client.py: chat, streaming, completions, errors, auth), then stopped
//! with SIGTERM, which must end it cleanly with exit status 0.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Kills the server if the test fails before stopping it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn health_ok(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let mut response = String::new();
    let _ = s.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200")
}

#[test]
fn the_openai_python_client_works_against_herd_serve() {
    let Some(model) = std::env::var_os("HERD_TEST_MODEL") else {
        eprintln!("skipped: HERD_TEST_MODEL is not set (scripts/test sets it)");
        return;
    };
    let has_openai = Command::new("python3").args(["-c", "import openai"]).status().is_ok_and(|s| s.success());
    assert!(has_openai, "the Python package `openai` is missing: run `python3 -m pip install openai`");

    let mut child = Command::new(env!("CARGO_BIN_EXE_herd"))
        .arg("serve")
        .arg("-m")
        .arg(&model)
        .args(["--port", "0", "--api-key", "test-key", "--ctx", "1024", "--kv-blocks", "600", "--threads", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("herd serve starts");
    // Every stderr line goes through a channel, so the pipe never fills.
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let server = Running(child);
    let (tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = lines.recv_timeout(Duration::from_secs(30)).expect("herd serve says where it listens");
    let port: u16 = first
        .split("http://127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {first:?}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !health_ok(port) {
        assert!(Instant::now() < deadline, "herd serve never became healthy");
        std::thread::sleep(Duration::from_millis(100));
    }

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/test-openai-client.py");
    let out = Command::new("python3").arg(script).arg(format!("http://127.0.0.1:{port}/v1")).arg("test-key").output().expect("python3 runs");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the openai client checks failed:\n{report}");
    eprint!("{report}");

    // SIGTERM: an orderly shutdown and exit status 0.
    let mut server = server;
    let pid = server.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "herd serve did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let said: Vec<String> = lines.try_iter().collect();
    assert!(status.success(), "exit status {status} after SIGTERM; stderr:\n{}", said.join("\n"));
    assert!(said.iter().any(|l| l.contains("shutting down")), "{said:?}");
}
