//! The Hugging Face hub client: the model info route (`/api/models/ORG/REPO?blobs=true`, whose
//! `siblings` give each file's size and, for LFS files, its sha256) and the file route
//! (`/ORG/REPO/resolve/REV/FILE`, usually a redirect to a CDN), over blocking HTTP (ureq).
//! `HF_ENDPOINT` moves the hub (default https://huggingface.co); `HF_TOKEN` is sent as
//! `Authorization: Bearer` for private and gated repositories.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::download::{download, Expect, Retry};
use crate::name::{pick_gguf, quant_tag, Pick};
use crate::{Error, Progress, Result};

pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// A hub to fetch from.
pub struct Hub {
    endpoint: String,
    token: Option<String>,
    agent: ureq::Agent,
    retry: Retry,
}

/// The model info the hub returns; only what herd reads.
#[derive(Debug, Deserialize)]
struct RepoInfo {
    /// The commit the listing describes; files are fetched at that commit, so they match it.
    sha: Option<String>,
    #[serde(default)]
    siblings: Vec<Sibling>,
}

#[derive(Debug, Deserialize)]
struct Sibling {
    rfilename: String,
    size: Option<u64>,
    lfs: Option<Lfs>,
}

#[derive(Debug, Deserialize)]
struct Lfs {
    sha256: Option<String>,
    /// Older listings give the LFS oid, which is the sha256, under this name.
    oid: Option<String>,
    size: Option<u64>,
}

impl Sibling {
    fn expect(&self) -> Expect {
        let lfs = self.lfs.as_ref();
        let hex = |s: &String| s.strip_prefix("sha256:").unwrap_or(s).to_ascii_lowercase();
        let sha256 = lfs.and_then(|l| l.sha256.as_ref().or(l.oid.as_ref())).map(hex).filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        Expect { n_bytes: lfs.and_then(|l| l.size).or(self.size), sha256 }
    }
}

/// The files of a safetensors folder herd takes (weights are `*.safetensors`, with their index).
const FOLDER_FILES: &[&str] = &["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model"];

impl Hub {
    /// The hub `HF_ENDPOINT` names (default https://huggingface.co), with `HF_TOKEN` if set.
    pub fn from_env() -> Hub {
        let endpoint = std::env::var("HF_ENDPOINT").ok().filter(|e| !e.is_empty()).unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let token = std::env::var("HF_TOKEN").ok().filter(|t| !t.trim().is_empty()).map(|t| t.trim().to_string());
        Hub::new(&endpoint, token)
    }

    pub fn new(endpoint: &str, token: Option<String>) -> Hub {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .user_agent(concat!("herd/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            // A stalled transfer fails (and is resumed by the next pull) instead of hanging.
            .timeout_per_read(Some(Duration::from_secs(60)))
            .max_redirects(10)
            // The token follows the hub's redirects on its own host (private repositories'
            // small files), never to another host (the CDN's URLs are signed).
            .redirect_auth_headers(ureq::config::RedirectAuthHeaders::SameHost)
            .build()
            .into();
        Hub { endpoint: endpoint.trim_end_matches('/').to_string(), token, agent, retry: Retry { times: 3, pause: Duration::from_secs(2) } }
    }

    /// Resumes a transfer cut off mid-body `times` times within one pull, pausing `pause` times
    /// the try's number before each (default: 3 times, 2 s).
    pub fn with_retries(mut self, times: u32, pause: Duration) -> Hub {
        self.retry = Retry { times, pause };
        self
    }

    fn info(&self, org: &str, repo: &str, name: &str) -> Result<RepoInfo> {
        let url = format!("{}/api/models/{org}/{repo}?blobs=true", self.endpoint);
        let mut request = self.agent.get(&url);
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let mut response = request.call().map_err(|e| Error(format!("{name}: cannot reach the hub at {}: {e}", self.endpoint)))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(status_error(status, &url, name));
        }
        let body = response.body_mut().with_config().limit(64 << 20).read_to_vec().map_err(|e| Error(format!("{name}: reading the hub's answer: {e}")))?;
        serde_json::from_slice(&body).map_err(|e| Error(format!("{name}: the hub's model info is not what herd expects: {e}")))
    }

    /// Fetches `org/repo` (a GGUF file picked by `quant`, or the safetensors folder) into
    /// `dir` (the store's `hf.co/ORG/REPO`) and returns the model's path.
    pub(crate) fn pull(&self, dir: &Path, org: &str, repo: &str, quant: Option<&str>, name: &str, progress: &mut dyn Progress) -> Result<PathBuf> {
        progress.say(&format!("herd: asking {} about {org}/{repo}", self.endpoint));
        let info = self.info(org, repo, name)?;
        let revision = info.sha.clone().unwrap_or_else(|| "main".to_string());
        let ggufs: Vec<String> = info.siblings.iter().map(|s| s.rfilename.clone()).filter(|f| f.to_ascii_lowercase().ends_with(".gguf")).collect();
        if !ggufs.is_empty() {
            let file = match pick_gguf(&ggufs, quant) {
                Ok(file) => file.to_string(),
                Err(Pick::NoMatch) => return Err(Error(format!("{name}: no GGUF file of {org}/{repo} matches '{}' (tags: {})", quant.unwrap_or(""), tags(&ggufs)))),
                Err(Pick::Ambiguous(found)) => return Err(Error(format!("{name}: several GGUF files fit ({}); name one, e.g. hf.co/{org}/{repo}:{}", found.join(", "), found[0]))),
            };
            if is_split(&file) {
                return Err(Error(format!("{name}: {file} is one part of a split GGUF file, which herd does not read; pick another quantization")));
            }
            let sibling = info.siblings.iter().find(|s| s.rfilename == file).expect("picked from the siblings");
            let local = safe_file_name(&file, name)?;
            fs::create_dir_all(dir).map_err(|e| Error(format!("cannot create {}: {e}", dir.display())))?;
            let dest = dir.join(local);
            if !dest.is_file() {
                self.fetch_file(org, repo, &revision, &file, &dest, &sibling.expect(), progress)?;
                progress.say(&format!("herd: saved {}", dest.display()));
            }
            if quant.is_none() {
                let mark = dir.join(crate::DEFAULT_MARK);
                fs::write(&mark, local).map_err(|e| Error(format!("cannot write {}: {e}", mark.display())))?;
            }
            return Ok(dest);
        }
        if let Some(quant) = quant {
            return Err(Error(format!("{name}: {org}/{repo} has no GGUF files, so no ':{quant}' to pick; hf.co/{org}/{repo} fetches its safetensors folder")));
        }
        let wanted: Vec<&Sibling> = info
            .siblings
            .iter()
            .filter(|s| !s.rfilename.contains('/'))
            .filter(|s| FOLDER_FILES.contains(&s.rfilename.as_str()) || s.rfilename.ends_with(".safetensors") || s.rfilename.ends_with(".safetensors.index.json"))
            .collect();
        if !wanted.iter().any(|s| s.rfilename.ends_with(".safetensors")) || !wanted.iter().any(|s| s.rfilename == "config.json") {
            return Err(Error(format!("{name}: {org}/{repo} has neither GGUF files nor a safetensors model (config.json and *.safetensors)")));
        }
        // The folder is filled under REPO.partial and renamed whole, so a half-fetched folder
        // is never taken for a model; its files resume one by one.
        let staging = dir.with_file_name(format!("{repo}.partial"));
        fs::create_dir_all(&staging).map_err(|e| Error(format!("cannot create {}: {e}", staging.display())))?;
        for sibling in &wanted {
            let dest = staging.join(safe_file_name(&sibling.rfilename, name)?);
            if dest.is_file() {
                continue;
            }
            self.fetch_file(org, repo, &revision, &sibling.rfilename, &dest, &sibling.expect(), progress)?;
        }
        fs::rename(&staging, dir).map_err(|e| Error(format!("cannot move {} to {}: {e}", staging.display(), dir.display())))?;
        progress.say(&format!("herd: saved {}", dir.display()));
        Ok(dir.to_path_buf())
    }

    #[allow(clippy::too_many_arguments)]
    fn fetch_file(&self, org: &str, repo: &str, revision: &str, file: &str, dest: &Path, expect: &Expect, progress: &mut dyn Progress) -> Result<()> {
        let url = format!("{}/{org}/{repo}/resolve/{}/{}", self.endpoint, encode_path(revision), encode_path(file));
        let size = expect.n_bytes.map_or(String::new(), |n| format!(" ({:.1} MiB)", n as f64 / (1 << 20) as f64));
        progress.say(&format!("herd: fetching {file}{size}"));
        download(&self.agent, &url, self.token.as_deref(), dest, expect, file, self.retry, progress)
    }
}

/// The error for an HTTP status the hub should not have answered.
pub(crate) fn status_error(status: u16, url: &str, what: &str) -> Error {
    Error(match status {
        401 | 403 => format!("{what}: the hub refused access ({status} at {url}): the repository is private or gated, or does not exist; set HF_TOKEN to a token that may read it (and accept the model's terms on its page)"),
        404 => format!("{what}: not found on the hub (404 at {url}); check the name"),
        429 => format!("{what}: the hub is rate-limiting us (429 at {url}); wait, or set HF_TOKEN"),
        _ => format!("{what}: the hub answered {status} at {url}"),
    })
}

fn tags(files: &[String]) -> String {
    files.iter().map(|f| quant_tag(f).unwrap_or_else(|| f.clone())).collect::<Vec<_>>().join(", ")
}

/// Percent-encodes what a URL path cannot carry as is (a space in a file name, say); `/` stays.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `-00001-of-00003.gguf`
fn is_split(file: &str) -> bool {
    let lower = file.to_ascii_lowercase();
    lower.contains("-of-") && lower.split(['-', '.']).any(|w| w.len() == 5 && w.bytes().all(|b| b.is_ascii_digit()))
}

/// The last path component of a hub file name, refused if it could leave the folder.
fn safe_file_name<'a>(file: &'a str, name: &str) -> Result<&'a str> {
    let base = file.rsplit('/').next().unwrap_or(file);
    if base.is_empty() || base.starts_with('.') || base.contains(['\\', '\0']) || file.split('/').any(|c| c == "..") {
        return Err(Error(format!("{name}: the hub lists a file named {file:?}, which herd will not write")));
    }
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded_and_split_files_recognised() {
        assert_eq!(encode_path("sub dir/Qwen Test-Q4_K_M.gguf"), "sub%20dir/Qwen%20Test-Q4_K_M.gguf");
        assert_eq!(encode_path("a+b#c?.gguf"), "a%2Bb%23c%3F.gguf");
        assert!(is_split("Llama-3.1-70B-Q4_K_M-00001-of-00002.gguf"));
        assert!(!is_split("tiny-Q4_K_M.gguf"));
        assert!(safe_file_name("../x.gguf", "n").is_err() && safe_file_name(".hidden", "n").is_err());
        assert_eq!(safe_file_name("BF16/x-BF16.gguf", "n").unwrap(), "x-BF16.gguf");
    }
}
