//! The `--log` and `--log-format` of runc: text or JSON lines that containerd reads back.

use std::io::Write;

/// Where and how messages go.
pub struct Logger {
    file: Option<std::fs::File>,
    json: bool,
    pub debug: bool,
}

impl Logger {
    pub fn new(path: Option<&str>, format: &str, debug: bool) -> Result<Logger, String> {
        let json = match format {
            "json" => true,
            "text" => false,
            other => return Err(format!("invalid log-format: {other}")),
        };
        let file = match path {
            Some(p) if !p.is_empty() => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| format!("open log file {p}: {e}"))?,
            ),
            _ => None,
        };
        Ok(Logger { file, json, debug })
    }

    /// Writes one record; errors also go to stderr so a person sees them.
    pub fn log(&mut self, level: &str, msg: &str) {
        if level == "debug" && !self.debug {
            return;
        }
        let time = berth_runtime::state::now_rfc3339();
        let line = if self.json {
            let v = serde_json::json!({"level": level, "msg": msg, "time": time});
            format!("{v}\n")
        } else {
            format!("time=\"{time}\" level={level} msg={msg:?}\n")
        };
        match &mut self.file {
            Some(f) => {
                let _ = f.write_all(line.as_bytes());
            }
            None if level != "error" => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
            None => {}
        }
        if level == "error" {
            eprintln!("berth-runc: {msg}");
        }
    }
}
