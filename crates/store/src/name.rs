//! Model names: a packaged model (`smollm2-135m`, `gemma3-270m`, ...) or a hub repository
//! (`hf.co/ORG/REPO[:QUANT]`), and how a quantization tag picks one GGUF file of several.

use std::fmt;

use crate::packaged::{find_known, KnownModel, KNOWN_MODELS};
use crate::{Error, Result};

/// A name herd can fetch into its model folder.
#[derive(Clone, Debug)]
pub enum ModelName {
    Packaged(KnownModel),
    /// `hf.co/ORG/REPO[:QUANT]`: a GGUF file of the repository picked by `quant` (matched
    /// case-insensitively against the file names), or its safetensors folder when it has no
    /// GGUF files.
    Hub { org: String, repo: String, quant: Option<String> },
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ModelName::Packaged(m) => f.write_str(m.name),
            ModelName::Hub { org, repo, quant: None } => write!(f, "hf.co/{org}/{repo}"),
            ModelName::Hub { org, repo, quant: Some(q) } => write!(f, "hf.co/{org}/{repo}:{q}"),
        }
    }
}

impl ModelName {
    /// Parses a name. Anything that could reach outside the model folder (`..`, an absolute
    /// path, NUL, a backslash) is refused, as is a name herd does not know.
    pub fn parse(text: &str) -> Result<ModelName> {
        let refuse = |why: &str| Err(Error(format!("'{}' is not a model name: {why}", text.escape_debug())));
        if text.contains('\0') {
            return refuse("it holds a NUL byte");
        }
        if text.starts_with('/') || text.contains('\\') || text.split('/').any(|c| c == "..") {
            return refuse("a name cannot be an absolute path or hold '..' or '\\'");
        }
        let hub = ["hf.co/", "huggingface.co/", "https://huggingface.co/", "https://hf.co/"].iter().find_map(|p| text.strip_prefix(p));
        let Some(rest) = hub else {
            return match find_known(text) {
                Some(model) => Ok(ModelName::Packaged(model)),
                None => refuse(&format!("herd knows no model of that name (known: {}, or hf.co/ORG/REPO[:QUANT])", known_names())),
            };
        };
        let (path, quant) = match rest.split_once(':') {
            Some((path, quant)) => (path, Some(quant)),
            None => (rest, None),
        };
        let parts: Vec<&str> = path.split('/').collect();
        let [org, repo] = parts[..] else {
            return refuse("a hub name is hf.co/ORG/REPO or hf.co/ORG/REPO:QUANT");
        };
        for part in [org, repo].into_iter().chain(quant) {
            if part.is_empty() || part.starts_with('.') || !part.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
                return refuse(&format!("'{}' may hold only letters, digits, '-', '_' and '.', and not start with '.'", part.escape_debug()));
            }
        }
        Ok(ModelName::Hub { org: org.into(), repo: repo.into(), quant: quant.map(str::to_string) })
    }
}

/// The packaged models' names, for messages.
pub fn known_names() -> String {
    KNOWN_MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
}

/// The quantization tag in a GGUF file name: the last `-`/`.`-separated word that looks like
/// one (`Q4_K_M`, `IQ3_XS`, `F16`, `BF16`, ...), upper-cased.
pub fn quant_tag(file: &str) -> Option<String> {
    let stem = file.strip_suffix(".gguf").or_else(|| file.strip_suffix(".GGUF")).unwrap_or(file);
    let stem = stem.rsplit('/').next().unwrap_or(stem);
    stem.split(['-', '.']).rev().map(|w| w.to_ascii_uppercase()).find(|w| {
        let b = w.as_bytes();
        let q = |i: usize| b.len() > i && b[i].is_ascii_digit();
        matches!(w.as_str(), "F16" | "BF16" | "F32") || (w.starts_with('Q') && q(1)) || (w.starts_with("IQ") && q(2)) || (w.starts_with("TQ") && q(2))
    })
}

/// Why no file was picked.
#[derive(Debug, PartialEq)]
pub(crate) enum Pick {
    NoMatch,
    /// Several files fit; their tags (or names).
    Ambiguous(Vec<String>),
}

/// The GGUF file of `files` that `quant` names: the one whose tag equals it (ignoring case),
/// else the only one whose name holds it. Without a tag: the only file, else the Q4_K_M one,
/// else the choice is the user's (`Ambiguous`).
/// Vision projectors (`mmproj*`) are never picked.
pub(crate) fn pick_gguf<'a>(files: &'a [String], quant: Option<&str>) -> std::result::Result<&'a str, Pick> {
    let files: Vec<&String> = files.iter().filter(|f| !f.rsplit('/').next().unwrap_or(f).to_ascii_lowercase().starts_with("mmproj")).collect();
    let tag_or_name = |f: &str| quant_tag(f).unwrap_or_else(|| f.to_string());
    let default = quant.is_none();
    let quant = match quant {
        Some(q) => q.to_ascii_uppercase(),
        None if files.len() == 1 => return Ok(files[0]),
        None => "Q4_K_M".to_string(),
    };
    let exact: Vec<&&String> = files.iter().filter(|f| quant_tag(f).as_deref() == Some(quant.as_str())).collect();
    let matching: Vec<&&String> = if exact.is_empty() { files.iter().filter(|f| f.to_ascii_uppercase().contains(&quant)).collect() } else { exact };
    match matching[..] {
        [one] => Ok(one),
        [] if default && !files.is_empty() => Err(Pick::Ambiguous(files.iter().map(|f| tag_or_name(f)).collect())),
        [] => Err(Pick::NoMatch),
        _ => Err(Pick::Ambiguous(matching.iter().map(|f| tag_or_name(f)).collect())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_unsafe_ones_are_refused() {
        let ok = |t: &str| ModelName::parse(t).unwrap_or_else(|e| panic!("{t}: {e}")).to_string();
        assert_eq!(ok("smollm2-135m"), "smollm2-135m-instruct");
        assert_eq!(ok("smollm2-135m-instruct"), "smollm2-135m-instruct");
        assert_eq!(ok("gemma3-270m"), "gemma3-270m");
        assert_eq!(ok("hf.co/unsloth/gemma-3-270m-it-GGUF:q4_k_m"), "hf.co/unsloth/gemma-3-270m-it-GGUF:q4_k_m");
        assert_eq!(ok("huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct"), "hf.co/HuggingFaceTB/SmolLM2-135M-Instruct");
        for bad in ["hf.co/../etc", "hf.co/a/..", "/etc/passwd", "../x", "hf.co/a/b/c", "hf.co/a", "hf.co/a/b\0", "hf.co/a/.git", "hf.co/a/b:", "hf.co/a/b:../x", "hf.co/a\\b/c", "llama", "hf.co//b"] {
            assert!(ModelName::parse(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(ModelName::parse("gemma3").unwrap_err().to_string().contains("known: smollm2-135m-instruct, gemma3-270m"));
    }

    #[test]
    fn tags_pick_one_file() {
        assert_eq!(quant_tag("SmolLM2-135M-Instruct-Q4_K_M.gguf").as_deref(), Some("Q4_K_M"));
        assert_eq!(quant_tag("qwen2.5-0.5b-instruct-q8_0.gguf").as_deref(), Some("Q8_0"));
        assert_eq!(quant_tag("gemma-3-270m-it-BF16.gguf").as_deref(), Some("BF16"));
        assert_eq!(quant_tag("model.IQ4_XS.gguf").as_deref(), Some("IQ4_XS"));
        assert_eq!(quant_tag("model.gguf"), None);
        let files: Vec<String> = ["m-Q4_K_M.gguf", "m-Q4_K_S.gguf", "m-Q8_0.gguf", "mmproj-m-F16.gguf", "m-F16.gguf"].map(String::from).to_vec();
        assert_eq!(pick_gguf(&files, Some("q4_k_m")), Ok("m-Q4_K_M.gguf"));
        assert_eq!(pick_gguf(&files, Some("Q8_0")), Ok("m-Q8_0.gguf"));
        assert_eq!(pick_gguf(&files, Some("f16")), Ok("m-F16.gguf"), "the projector is never picked");
        assert_eq!(pick_gguf(&files, None), Ok("m-Q4_K_M.gguf"), "Q4_K_M by default");
        assert_eq!(pick_gguf(&files, Some("Q4_K")), Err(Pick::Ambiguous(vec!["Q4_K_M".into(), "Q4_K_S".into()])));
        assert_eq!(pick_gguf(&files, Some("Q2_K")), Err(Pick::NoMatch));
        let one = vec!["x-Q8_0.gguf".to_string()];
        assert_eq!(pick_gguf(&one, None), Ok("x-Q8_0.gguf"));
        let two: Vec<String> = vec!["x-Q8_0.gguf".into(), "x-Q6_K.gguf".into()];
        assert_eq!(pick_gguf(&two, None), Err(Pick::Ambiguous(vec!["Q8_0".into(), "Q6_K".into()])));
    }
}
