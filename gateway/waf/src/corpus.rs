//! Lines of a JSON-lines request corpus as inspector requests: our benign set
//! (`tests/waf/benign.jsonl`), the CRS regression sample, and the OWASP CRS suite in the same
//! format (`method`, `uri`, `headers`, `body`, plus labels the caller reads from `doc`). For the
//! tools and tests that replay a corpus in process; the gateway never reads one.

use crate::Request;

/// One request of a corpus.
#[derive(Debug, Clone)]
pub struct Line {
    /// The whole line (labels: `expect`, `category`, `meta`...).
    pub doc: serde_json::Value,
    method: String,
    uri: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Option<Vec<u8>>,
}

impl Line {
    pub fn parse(line: &str) -> Result<Line, String> {
        let doc: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let text = |k: &str, default: &str| doc[k].as_str().unwrap_or(default).to_string();
        // Names in lower case, as the gateway hands them to inspection (Pingora's header map
        // holds them so; HTTP/2 sends them so): in-process measurements then do the work the
        // gateway does, and inspection reads names without regard to case either way.
        let headers = doc["headers"]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| {
                        let value = v.as_str().unwrap_or("").as_bytes().to_vec();
                        (k.to_ascii_lowercase(), value)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Line {
            method: text("method", "GET"),
            uri: text("uri", "/"),
            body: doc["body"].as_str().map(|b| b.as_bytes().to_vec()),
            headers,
            doc,
        })
    }

    pub fn method(&self) -> &str {
        &self.method
    }

    /// The request target as written in the corpus.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The request, borrowed from the line.
    pub fn request(&self) -> Request<'_> {
        Request {
            method: &self.method,
            uri: self.uri.as_bytes(),
            headers: self
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_slice()))
                .collect(),
            // Lowered when the line was read, as Pingora gives them.
            names_lower: true,
            body: self.body.as_deref(),
            body_truncated: false,
        }
    }
}

/// Every line of the file at `path`; `Err` names the first line that is not a request.
pub fn read(path: &std::path::Path) -> Result<Vec<Line>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(i, l)| Line::parse(l).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1)))
        .collect()
}
