//! A stand-in for the Hugging Face hub on 127.0.0.1 (port 0), serving the routes herd uses from
//! in-memory fixtures: `/api/models/ORG/REPO` (model info with siblings, sizes and LFS sha256),
//! `/ORG/REPO/resolve/REV/FILE` (a redirect, as the hub gives) and `/cdn/ORG/REPO/FILE` (the
//! bytes, with Range). Faults on demand: a connection dropped mid-file, a wrong sha256 in the
//! listing, a token required (401). Loopback only, one connection at a time, every socket with
//! a timeout, so a test cannot hang on it. Shared with the CLI's tests through `#[path]`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use sha2::{Digest, Sha256};

/// The commit every fixture repository is at.
pub const REVISION: &str = "0123456789abcdef0123456789abcdef01234567";

#[derive(Default)]
pub struct Faults {
    /// File requests (to /cdn) still to be cut off after half their body.
    pub drops: AtomicUsize,
    /// The listing gives a wrong sha256 for every LFS file.
    pub wrong_sha: AtomicBool,
    /// Requests to the API and resolve routes need `Authorization: Bearer <this>`.
    pub token: Mutex<Option<String>>,
}

pub struct StandIn {
    pub endpoint: String,
    /// Every request: "METHOD PATH [range]".
    pub hits: Arc<Mutex<Vec<String>>>,
    pub faults: Arc<Faults>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Repositories by "ORG/REPO": file name to bytes.
pub type Repos = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

impl StandIn {
    pub fn start(repos: Repos) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(Mutex::new(Vec::new()));
        let faults = Arc::new(Faults::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (h, f, s) = (hits.clone(), faults.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let _ = serve(stream, &repos, &h, &f);
                }
            }
        });
        StandIn { endpoint, hits, faults, stop, thread: Some(thread) }
    }

    pub fn hits(&self) -> Vec<String> {
        self.hits.lock().unwrap().clone()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.endpoint.trim_start_matches("http://"));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn is_lfs(file: &str) -> bool {
    file.ends_with(".gguf") || file.ends_with(".safetensors")
}

fn serve(stream: TcpStream, repos: &Repos, hits: &Mutex<Vec<String>>, faults: &Faults) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let range = headers.get("range").cloned();
    hits.lock().unwrap().push(format!("{method} {target}{}", range.as_ref().map_or(String::new(), |r| format!(" {r}"))));
    let mut out = stream;
    let authorized = match &*faults.token.lock().unwrap() {
        None => true,
        Some(t) => headers.get("authorization") == Some(&format!("Bearer {t}")),
    };
    let path = target.split('?').next().unwrap_or("");
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let respond = |out: &mut TcpStream, status: &str, extra: &str, body: &[u8]| -> std::io::Result<()> {
        write!(out, "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n", body.len())?;
        out.write_all(body)?;
        out.flush()
    };
    match segments[..] {
        ["api", "models", org, repo] => {
            if !authorized {
                return respond(&mut out, "401 Unauthorized", "", br#"{"error":"Invalid credentials in Authorization header"}"#);
            }
            let Some(files) = repos.get(&format!("{org}/{repo}")) else {
                return respond(&mut out, "404 Not Found", "", br#"{"error":"Repository not found"}"#);
            };
            let siblings: Vec<serde_json::Value> = files
                .iter()
                .map(|(name, bytes)| {
                    let mut sha = sha256_hex(bytes);
                    if faults.wrong_sha.load(Ordering::SeqCst) {
                        sha = sha256_hex(b"not the file");
                    }
                    if is_lfs(name) {
                        serde_json::json!({"rfilename": name, "blobId": "0000", "size": bytes.len(), "lfs": {"sha256": sha, "size": bytes.len(), "pointerSize": 134}})
                    } else {
                        serde_json::json!({"rfilename": name, "blobId": "0000", "size": bytes.len()})
                    }
                })
                .collect();
            let body = serde_json::json!({"_id": "x", "id": format!("{org}/{repo}"), "sha": REVISION, "private": false, "siblings": siblings});
            respond(&mut out, "200 OK", "Content-Type: application/json\r\n", body.to_string().as_bytes())
        }
        [org, repo, "resolve", rev, file] => {
            if !authorized {
                return respond(&mut out, "401 Unauthorized", "", b"");
            }
            if rev != REVISION || !repos.get(&format!("{org}/{repo}")).is_some_and(|r| r.contains_key(file)) {
                return respond(&mut out, "404 Not Found", "", b"Entry not found");
            }
            // LFS files go to the CDN by absolute URL, small ones by a relative one, as the hub does.
            let host = headers.get("host").cloned().unwrap_or_default();
            let location = if is_lfs(file) { format!("http://{host}/cdn/{org}/{repo}/{file}") } else { format!("/cdn/{org}/{repo}/{file}") };
            respond(&mut out, "302 Found", &format!("Location: {location}\r\n"), b"")
        }
        ["cdn", org, repo, file] => {
            // Small files stay on the hub's host, behind its authorization; LFS files are on
            // the CDN, whose URLs are signed.
            if !is_lfs(file) && !authorized {
                return respond(&mut out, "401 Unauthorized", "", b"");
            }
            let Some(bytes) = repos.get(&format!("{org}/{repo}")).and_then(|r| r.get(file)) else {
                return respond(&mut out, "404 Not Found", "", b"");
            };
            let from = range.as_deref().and_then(|r| r.strip_prefix("bytes=")).and_then(|r| r.strip_suffix('-')).and_then(|n| n.parse::<usize>().ok());
            let (status, extra, body) = match from {
                Some(from) if from >= bytes.len() => return respond(&mut out, "416 Range Not Satisfiable", &format!("Content-Range: bytes */{}\r\n", bytes.len()), b""),
                Some(from) => ("206 Partial Content", format!("Content-Range: bytes {from}-{}/{}\r\n", bytes.len() - 1, bytes.len()), &bytes[from..]),
                None => ("200 OK", String::new(), &bytes[..]),
            };
            let drop_it = faults.drops.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
            if drop_it {
                // Promise the whole body, send half, hang up.
                write!(out, "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n", body.len())?;
                out.write_all(&body[..body.len() / 2])?;
                out.flush()?;
                return out.shutdown(std::net::Shutdown::Both);
            }
            respond(&mut out, status, &extra, body)
        }
        _ => respond(&mut out, "404 Not Found", "", b""),
    }
}
