//! One file over HTTP into the model folder: written to `FILE.partial`, resumed from where an
//! earlier try stopped (HTTP Range), checked (size, and sha256 where known) and only then
//! renamed to its final name. A transfer cut off mid-body is resumed at once a few times
//! (`Retry`); after that the file is kept for the next pull. A refused file is deleted.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::packaged::to_hex;
use crate::{partial_of, Error, Progress, Result};

/// What a file must be to be kept.
#[derive(Clone, Debug, Default)]
pub(crate) struct Expect {
    pub n_bytes: Option<u64>,
    /// Lowercase hex.
    pub sha256: Option<String>,
}

/// How the body of one request ended.
enum Outcome {
    /// Every byte the server meant to send is on disk.
    Done,
    /// The server answered 416 to a range past the end of what it holds: start over.
    Restart,
    /// The body stopped short (connection dropped, stalled, closed early): why.
    Stopped(String),
}

/// How often a transfer cut off mid-body is resumed within one pull, and the pause before each
/// (times the try's number).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Retry {
    pub times: u32,
    pub pause: std::time::Duration,
}

/// Downloads `url` to `dest` (see the module comment). `label` names the file in messages.
#[allow(clippy::too_many_arguments)]
pub(crate) fn download(agent: &ureq::Agent, url: &str, token: Option<&str>, dest: &Path, expect: &Expect, label: &str, retry: Retry, progress: &mut dyn Progress) -> Result<()> {
    let partial = partial_of(dest);
    let err = |what: String| Error(format!("{label}: {what}"));
    let mut file = OpenOptions::new().read(true).append(true).create(true).open(&partial).map_err(|e| err(format!("cannot open {}: {e}", partial.display())))?;
    // Two pulls of one file at once would interleave their bytes: the second is told to wait.
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => return Err(err(format!("another herd is downloading it into {}; let that one finish", partial.display()))),
        Err(fs::TryLockError::Error(e)) => return Err(err(format!("cannot lock {}: {e}", partial.display()))),
    }
    let mut have = file.metadata().map_err(|e| err(e.to_string()))?.len();
    if expect.n_bytes.is_some_and(|n| have > n) {
        file.set_len(0).map_err(|e| err(e.to_string()))?;
        have = 0;
    }
    // The bytes already there count towards the hash.
    let mut hasher = Sha256::new();
    if have > 0 {
        file.seek(io::SeekFrom::Start(0)).map_err(|e| err(e.to_string()))?;
        io::copy(&mut (&mut file).take(have), &mut HashSink(&mut hasher)).map_err(|e| err(format!("cannot read {}: {e}", partial.display())))?;
    }
    let mut restarted = false;
    let mut retries = 0;
    while expect.n_bytes != Some(have) {
        match fetch_from(agent, url, token, &partial, &mut file, &mut hasher, &mut have, expect, label, progress)? {
            Outcome::Done => break,
            Outcome::Restart if !restarted => {
                restarted = true;
                file.set_len(0).map_err(|e| err(e.to_string()))?;
                have = 0;
                hasher = Sha256::new();
            }
            Outcome::Restart => return Err(err("the server refuses every range of it (416)".into())),
            Outcome::Stopped(why) if retries < retry.times => {
                retries += 1;
                progress.say(&format!("herd: {label}: {why} at byte {have}; resuming ({retries} of {})", retry.times));
                std::thread::sleep(retry.pause * retries);
            }
            Outcome::Stopped(why) => {
                let of = expect.n_bytes.map_or("?".to_string(), |n| n.to_string());
                return Err(err(format!("the download stopped after {have} of {of} bytes ({why}); pull again to resume it")));
            }
        }
    }
    file.sync_all().map_err(|e| err(format!("cannot write {}: {e}", partial.display())))?;
    drop(file);
    let refuse = |why: String| {
        let _ = fs::remove_file(&partial);
        Err(Error(format!("refusing {label}: {why}")))
    };
    if let Some(n) = expect.n_bytes.filter(|&n| n != have) {
        return refuse(format!("it is {have} bytes, the hub says {n}"));
    }
    let sha256 = to_hex(&hasher.finalize());
    if let Some(want) = expect.sha256.as_deref().filter(|&w| w != sha256) {
        return refuse(format!("its sha256 is {sha256}, the hub says {want}"));
    }
    fs::rename(&partial, dest).map_err(|e| err(format!("cannot move it to {}: {e}", dest.display())))
}

/// One GET from byte `have` on, appended to `file`.
#[allow(clippy::too_many_arguments)]
fn fetch_from(agent: &ureq::Agent, url: &str, token: Option<&str>, partial: &Path, file: &mut File, hasher: &mut Sha256, have: &mut u64, expect: &Expect, label: &str, progress: &mut dyn Progress) -> Result<Outcome> {
    let err = |what: String| Error(format!("{label}: {what}"));
    let mut request = agent.get(url);
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    if *have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let mut response = request.call().map_err(|e| err(format!("cannot reach {url}: {e}")))?;
    let status = response.status().as_u16();
    match status {
        200 => {
            // The whole file, whatever was asked: what is on disk goes.
            if *have > 0 {
                file.set_len(0).map_err(|e| err(e.to_string()))?;
                *have = 0;
                *hasher = Sha256::new();
            }
        }
        206 => {
            let range = response.headers().get("content-range").and_then(|v| v.to_str().ok()).unwrap_or("");
            if !range.starts_with(&format!("bytes {have}-")) {
                return Err(err(format!("asked for bytes {have}- and got {range:?}")));
            }
        }
        416 => return Ok(Outcome::Restart),
        _ => return Err(crate::hub::status_error(status, url, label)),
    }
    progress.start(label, expect.n_bytes, *have);
    let mut body = response.body_mut().as_reader();
    let mut buf = vec![0u8; 1 << 16];
    let result = loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(e.to_string()),
        };
        if expect.n_bytes.is_some_and(|max| *have + n as u64 > max) {
            drop(body);
            progress.finish();
            let _ = fs::remove_file(partial);
            return Err(Error(format!("refusing {label}: the server sends more than the {} bytes the hub says it has", expect.n_bytes.unwrap_or(0))));
        }
        if let Err(e) = file.write_all(&buf[..n]) {
            break Err(format!("cannot write: {e}"));
        }
        hasher.update(&buf[..n]);
        *have += n as u64;
        progress.advance(*have);
    };
    progress.finish();
    file.flush().map_err(|e| err(e.to_string()))?;
    match result {
        Err(why) => Ok(Outcome::Stopped(why)),
        Ok(()) if expect.n_bytes.is_some_and(|n| *have < n) => Ok(Outcome::Stopped("the connection closed early".into())),
        Ok(()) => Ok(Outcome::Done),
    }
}

struct HashSink<'a>(&'a mut Sha256);

impl Write for HashSink<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
