//! Stop strings over streamed text: text is released only once it can no longer be the start
//! of a stop string, and generation ends at the first full match, which is never printed.

pub struct StopMatcher {
    stops: Vec<String>,
    pending: String,
}

/// What to do with newly generated text.
#[derive(Debug, PartialEq, Eq)]
pub struct StopResult {
    /// Text that is now safe to show.
    pub emit: String,
    /// A stop string was matched: generation ends.
    pub stopped: bool,
}

impl StopMatcher {
    pub fn new(stops: &[String]) -> StopMatcher {
        StopMatcher { stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(), pending: String::new() }
    }

    /// Feeds generated text; returns what may be shown and whether a stop string matched.
    pub fn push(&mut self, text: &str) -> StopResult {
        self.pending.push_str(text);
        let first_match = self.stops.iter().filter_map(|s| self.pending.find(s.as_str())).min();
        if let Some(at) = first_match {
            let emit = self.pending[..at].to_string();
            self.pending.clear();
            return StopResult { emit, stopped: true };
        }
        // Hold back the longest tail that is a proper prefix of some stop string.
        let held = self
            .stops
            .iter()
            .flat_map(|s| (1..s.len()).filter(|&n| s.is_char_boundary(n)).map(move |n| &s[..n]))
            .filter(|prefix| self.pending.ends_with(prefix))
            .map(str::len)
            .max()
            .unwrap_or(0);
        let cut = self.pending.len() - held;
        let emit = self.pending[..cut].to_string();
        self.pending.drain(..cut);
        StopResult { emit, stopped: false }
    }

    /// Ends the stream: whatever was held back is released.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut m = StopMatcher::new(&stops);
        let mut out = String::new();
        for p in pieces {
            let r = m.push(p);
            out += &r.emit;
            if r.stopped {
                return (out, true);
            }
        }
        out += &m.finish();
        (out, false)
    }

    #[test]
    fn stop_strings() {
        let cases: &[(&[&str], &[&str], &str, bool)] = &[
            (&[], &["a", "b"], "ab", false),
            (&["END"], &["hello E", "N", "D more"], "hello ", true),
            (&["END"], &["hello E", "N", "d"], "hello ENd", false),
            (&["\n\n", "x"], &["ab\n", "\ncd"], "ab", true),
            (&["ab", "b"], &["cab"], "c", true),
            (&["é!"], &["café", "?"], "café?", false),
            (&[""], &["text"], "text", false),
        ];
        for (stops, pieces, want, stopped) in cases {
            assert_eq!(run(stops, pieces), (want.to_string(), *stopped), "stops {stops:?} pieces {pieces:?}");
        }
    }
}
